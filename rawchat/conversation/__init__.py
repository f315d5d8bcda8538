"""Conversations: the history a stateless Chat Completions model needs, kept for it.

``Conversation`` (``conversation.py``) holds each thread's messages, sends
what the pure trimming plan (``rawchat.protocol.trimming``) fits into the
model's context window, commits a turn only when its answer arrived whole,
and saves to JSON atomically. ``tokenizer.py`` gives exact token counts
when a tokenizer is installed.
See https://platform.openai.com/docs/guides/conversation-state.
"""

from __future__ import annotations

from ..protocol.trimming import (
    DropOldest,
    KeepFirstAndRecent,
    Relevant,
    Strategy,
    Summarize,
    TrimReport,
)
from .conversation import Conversation

__all__ = [
    "Conversation",
    "DropOldest",
    "KeepFirstAndRecent",
    "Relevant",
    "Strategy",
    "Summarize",
    "TrimReport",
]
