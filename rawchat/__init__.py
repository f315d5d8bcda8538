"""rawchat: the OpenAI protocols by hand, on top of ``requests``.

The folders are the layers; each imports only the ones below it::

    rawchat/
      errors.py       every exception rawchat raises, as one tree (below all layers)
      protocol/       the wire, pure: bytes and values in, bytes and values out
                      (HTTP values, request building, answers and error hints,
                      SSE, chunks, accumulation, retry timing, token estimates,
                      the trimming plan); no network, clock, randomness or os
      policies/       what decides around each attempt: keys, pacing, breaker,
                      fallbacks and cache, hooks, usage meter
      client/         the edge that does I/O: the requests transport, the
                      attempt loop, Client, Stream, AsyncClient, traces
      conversation/   Conversation: history, the budget plan applied, saving
      cli/            the rawchat command: ask, chat, curl, doctor, replay...
      simulator/      an OpenAI-compatible server on loopback (protocol only)

This module is the front door: the names a user meets in the README's first
pages, each loaded on first use (PEP 562), so ``import rawchat`` costs next
to nothing and a program pays only for the parts it touches. Everything
else is imported from its own module; every error class is in
``rawchat.errors``.
"""

from __future__ import annotations

from .version import __version__

# Where each public name lives.
_HOMES = {
    "errors": "errors",
    "Client": "client.client",
    "AsyncClient": "client.aio",
    "Stream": "client.stream",
    "TranscriptStream": "client.audio",
    "SpeechStream": "client.audio",
    "Clock": "client.clock",
    "Policies": "policies",
    "Completion": "protocol.completion",
    "ToolCall": "protocol.completion",
    "Usage": "protocol.completion",
    "Response": "protocol.responses",
    "Transcription": "protocol.audio",
    "Timeout": "protocol.settings",
    "RetryPolicy": "protocol.retry",
    "SSEParser": "protocol.sse",
    "ServerSentEvent": "protocol.sse",
    "UsageMeter": "policies.usage",
    "Conversation": "conversation.conversation",
    "DropOldest": "protocol.trimming",
    "KeepFirstAndRecent": "protocol.trimming",
    "Summarize": "protocol.trimming",
    "Relevant": "protocol.trimming",
    "TrimReport": "protocol.trimming",
    "Simulator": "simulator",
    "RawchatError": "errors",
    "ConfigError": "errors",
    "APIError": "errors",
    "APIConnectionError": "errors",
    "APITimeoutError": "errors",
    "APIStatusError": "errors",
    "BadRequestError": "errors",
    "AuthenticationError": "errors",
    "NotFoundError": "errors",
    "RateLimitError": "errors",
    "InternalServerError": "errors",
    "StreamError": "errors",
    "IncompleteStreamError": "errors",
}

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncClient",
    "AuthenticationError",
    "BadRequestError",
    "Client",
    "Clock",
    "Completion",
    "ConfigError",
    "Conversation",
    "DropOldest",
    "IncompleteStreamError",
    "InternalServerError",
    "KeepFirstAndRecent",
    "NotFoundError",
    "Policies",
    "RateLimitError",
    "RawchatError",
    "Relevant",
    "Response",
    "RetryPolicy",
    "SSEParser",
    "ServerSentEvent",
    "Simulator",
    "SpeechStream",
    "Stream",
    "StreamError",
    "Summarize",
    "Timeout",
    "ToolCall",
    "TranscriptStream",
    "Transcription",
    "TrimReport",
    "Usage",
    "UsageMeter",
    "__version__",
    "errors",
]


def __getattr__(name: str):  # type: ignore[no-untyped-def]
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'rawchat' has no attribute {name!r}")
    from importlib import import_module

    module = import_module(f"{__name__}.{home}")
    value = module if name == home else getattr(module, name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__():  # type: ignore[no-untyped-def]
    return list(__all__)


# Type checkers and IDEs read the real imports; at run time they stay lazy.
TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from . import errors
    from .client.aio import AsyncClient
    from .client.audio import SpeechStream, TranscriptStream
    from .client.client import Client
    from .client.clock import Clock
    from .client.stream import Stream
    from .conversation.conversation import Conversation
    from .errors import (
        APIConnectionError,
        APIError,
        APIStatusError,
        APITimeoutError,
        AuthenticationError,
        BadRequestError,
        ConfigError,
        IncompleteStreamError,
        InternalServerError,
        NotFoundError,
        RateLimitError,
        RawchatError,
        StreamError,
    )
    from .policies import Policies
    from .policies.usage import UsageMeter
    from .protocol.audio import Transcription
    from .protocol.completion import Completion, ToolCall, Usage
    from .protocol.responses import Response
    from .protocol.retry import RetryPolicy
    from .protocol.settings import Timeout
    from .protocol.sse import ServerSentEvent, SSEParser
    from .protocol.trimming import (
        DropOldest,
        KeepFirstAndRecent,
        Relevant,
        Summarize,
        TrimReport,
    )
    from .simulator import Simulator
del TYPE_CHECKING
