"""rawchat: the OpenAI Chat Completions protocol by hand, on top of ``requests``.

Start here; each wire concept is one module away:

=====================  =====================================================
``rawchat.Client``     ``client.py``: chat(), stream(), models(), request()
request body, headers  ``request.py`` (and ``wire.py``: HTTPRequest, curl)
settings, profiles     ``config.py``: keys, base URLs, timeouts
answers and errors     ``response.py``, ``completion.py``, ``errors.py``
streaming              ``sse.py`` -> ``chunks.py`` -> ``accumulate.py``,
                       tied together in ``stream.py``
retries                ``retry.py``: RetryPolicy
conversation memory    ``conversation.py`` (``tokens.py`` counts)
usage and cost         ``usage.py``: UsageMeter
resilience             ``keys.py``, ``ratelimit.py``, ``breaker.py``,
                       ``fallback.py``, ``hooks.py``, tied in ``call.py``
concurrency            ``batch.py`` (rawchat batch), ``aio.py`` (AsyncClient)
the network            ``transport.py`` (the only module importing requests)
offline server         ``rawchat.simulator``
command line           ``cli.py``
=====================  =====================================================

The simulator and the command line are imported only when used.
"""

from __future__ import annotations

from typing import Any

from . import errors
from .breaker import CircuitBreaker, CircuitOpenError
from .client import Client
from .completion import Choice, Completion, FunctionCall, Message, ToolCall, Usage
from .config import PROFILES, Settings, Timeout
from .conversation import Conversation, DropOldest, KeepFirstAndRecent, Summarize, TrimReport
from .errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    BudgetExceededError,
    ConfigError,
    ConflictError,
    ContextOverflowError,
    IncompleteStreamError,
    InternalServerError,
    InvalidRequestError,
    InvalidResponseError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RawchatError,
    StreamError,
    UnprocessableEntityError,
)
from .fallback import Fallback, ResponseCache
from .hooks import Event, Hooks
from .keys import KeyPool, NoKeyAvailableError
from .ratelimit import Pacer, PacingDeadlineError, RetryBudget
from .retry import RetryPolicy
from .sse import ServerSentEvent, SSEParser
from .stream import Stream
from .usage import UsageMeter
from .version import __version__
from .wire import HTTPRequest, HTTPResponse

__all__ = [
    "PROFILES",
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "BudgetExceededError",
    "Choice",
    "CircuitBreaker",
    "CircuitOpenError",
    "Client",
    "Completion",
    "ConfigError",
    "ConflictError",
    "ContextOverflowError",
    "Conversation",
    "DropOldest",
    "Event",
    "Fallback",
    "FunctionCall",
    "HTTPRequest",
    "HTTPResponse",
    "Hooks",
    "IncompleteStreamError",
    "InternalServerError",
    "InvalidRequestError",
    "InvalidResponseError",
    "KeepFirstAndRecent",
    "KeyPool",
    "Message",
    "NoKeyAvailableError",
    "NotFoundError",
    "Pacer",
    "PacingDeadlineError",
    "PermissionDeniedError",
    "RateLimitError",
    "RawchatError",
    "ResponseCache",
    "RetryBudget",
    "RetryPolicy",
    "SSEParser",
    "ServerSentEvent",
    "Settings",
    "Simulator",
    "Stream",
    "StreamError",
    "Summarize",
    "Timeout",
    "ToolCall",
    "TrimReport",
    "UnprocessableEntityError",
    "Usage",
    "UsageMeter",
    "__version__",
    "errors",
]


def __getattr__(name: str) -> Any:
    # The simulator pulls in http.server; load it only for those who use it.
    if name == "Simulator":
        from .simulator import Simulator

        return Simulator
    raise AttributeError(f"module 'rawchat' has no attribute {name!r}")
