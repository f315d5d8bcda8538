"""Counting tokens: estimates that need no tokenizer at all.

Models bill and limit by BPE tokens, and the client must know roughly how
many it is about to send to stay inside a context window or a budget.

* ``estimate_text()``: a fast heuristic that counts CJK characters, Latin
  words, digit runs and punctuation separately, with weights fitted to the
  ``o200k_base`` encoding of GPT-4o-class models (the fit and its error are
  in ``tests/data/token_counts.json`` and ``benchmarks/README.md``).
* ``estimate_messages()``: adds the chat format's overhead: each message is
  wrapped in a few special tokens, a ``name`` costs one more, the reply is
  primed with three, and tool definitions are sent as JSON text
  (https://cookbook.openai.com/examples/how_to_count_tokens_with_tiktoken).
* ``Calibration``: corrects estimates per model from the
  ``usage.prompt_tokens`` the server reports.

Exact counts, from an installed tokenizer, are ``rawchat.conversation.tokenizer``'s.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any, Callable, Dict, Mapping, Optional, Sequence

__all__ = [
    "Calibration",
    "counter_for",
    "encoding_for_model",
    "estimate_messages",
    "estimate_text",
]

# One alternation, scanned once: which class each match belongs to is the
# group that matched. Order matters: CJK before \w, which also matches it.
_PIECES = re.compile(
    r"(?P<cjk>[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff])"
    r"|(?P<word>[A-Za-z]+)"
    r"|(?P<digits>[0-9]+)"
    r"|(?P<other>[^\W\d_A-Za-z]+)"  # letters of other scripts
    r"|(?P<newline>\n[ \t]*)"
    r"|(?P<punct>[^\w\s])"
)

# Weights fitted on English, Chinese and code samples. The encodings differ
# most on CJK text: o200k_base packs about 1.4 characters into a token,
# cl100k_base (GPT-4, GPT-3.5) about one.
_CJK = {"o200k_base": 0.72, "cl100k_base": 1.08}
_WORD_CHARS = 8.0  # a Latin word is one token per this many letters, at least one
_DIGITS = 3  # digits group in threes
_OTHER_CHARS = 2.5
_PUNCT = 0.6

MESSAGE_OVERHEAD = 3
NAME_OVERHEAD = 1
REPLY_PRIMING = 3
TOOL_OVERHEAD = 8


def encoding_for_model(model: str) -> str:
    """The BPE encoding a model uses; o200k-like for models of other makers."""
    name = model.lower().rsplit("/", 1)[-1]
    if name.startswith(("gpt-4-", "gpt-3.5")) or name == "gpt-4":
        return "cl100k_base"
    return "o200k_base"


def estimate_text(text: str, encoding: str = "o200k_base") -> int:
    """About how many tokens ``text`` is, without a tokenizer."""
    cjk = _CJK.get(encoding, _CJK["o200k_base"])
    total = 0.0
    for match in _PIECES.finditer(text):
        kind = match.lastgroup
        size = match.end() - match.start()
        if kind == "cjk":
            total += cjk
        elif kind == "word":
            total += max(1.0, size / _WORD_CHARS)
        elif kind == "digits":
            total += -(-size // _DIGITS)
        elif kind == "other":
            total += max(1.0, size / _OTHER_CHARS)
        elif kind == "punct":
            total += _PUNCT
        else:  # a newline and its indentation
            total += 1.0
    return round(total)


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
    return ""


def counter_for(model: str = "") -> Callable[[str], int]:
    """The heuristic counter for ``model``'s encoding."""
    return functools.partial(estimate_text, encoding=encoding_for_model(model))


def estimate_messages(
    messages: Sequence[Mapping[str, Any]],
    *,
    tools: Optional[Sequence[Any]] = None,
    model: str = "",
    count: Optional[Callable[[str], int]] = None,
) -> int:
    """Tokens of a whole request's prompt: messages, their framing, and tools.

    ``count`` counts plain text (default: the heuristic for ``model``).
    """
    count = count or counter_for(model)
    total = REPLY_PRIMING
    for message in messages:
        total += message_tokens(message, count)
    if tools:
        total += TOOL_OVERHEAD + count(json.dumps(list(tools), ensure_ascii=False))
    return total


def message_tokens(message: Mapping[str, Any], count: Callable[[str], int] = estimate_text) -> int:
    """One message's tokens, framing included."""
    total = MESSAGE_OVERHEAD + count(_content_text(message.get("content")))
    if message.get("name"):
        total += NAME_OVERHEAD + count(str(message["name"]))
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        total += count(str(function.get("name", ""))) + count(str(function.get("arguments", "")))
        total += MESSAGE_OVERHEAD
    return total


class Calibration:
    """Per-model correction of estimates, learned from reported usage.

    After each answer, ``observe(model, estimated, reported)`` folds the
    ratio into a moving average; ``correct(model, estimate)`` applies it.
    """

    def __init__(self, weight: float = 0.3) -> None:
        self.weight = weight
        self.factors: Dict[str, float] = {}

    def observe(self, model: str, estimated: int, reported: int) -> None:
        if estimated <= 0 or reported <= 0:
            return
        ratio = reported / estimated
        old = self.factors.get(model)
        self.factors[model] = ratio if old is None else old + self.weight * (ratio - old)

    def correct(self, model: str, estimate: int) -> int:
        return round(estimate * self.factors.get(model, 1.0))
