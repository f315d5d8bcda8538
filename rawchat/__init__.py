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
the network            ``transport.py`` (the only module importing requests),
                       ``chunked.py`` (HTTP/1.1 chunked framing)
offline server         ``rawchat.simulator``
command line           ``cli.py``
=====================  =====================================================

Every name below is imported on first use (PEP 562), so ``import rawchat``
costs next to nothing and a program pays only for the parts it touches:
``rawchat.Client`` loads the client and ``requests``; the simulator, the
command line, conversations and the resilience policies load when used.
``_EXPORTS`` says which module holds each name.
"""

from __future__ import annotations

from .version import __version__

# Where each public name lives: one hop from here to its wire concept. The
# exception classes in __all__ that are not listed here live in errors.py.
_EXPORTS = {
    "errors": "errors",
    "Client": "client",
    "Choice": "completion",
    "Completion": "completion",
    "FunctionCall": "completion",
    "Message": "completion",
    "ToolCall": "completion",
    "Usage": "completion",
    "PROFILES": "config",
    "Settings": "config",
    "Timeout": "config",
    "Conversation": "conversation",
    "DropOldest": "conversation",
    "KeepFirstAndRecent": "conversation",
    "Summarize": "conversation",
    "TrimReport": "conversation",
    "CircuitBreaker": "breaker",
    "Fallback": "fallback",
    "ResponseCache": "fallback",
    "Event": "hooks",
    "Hooks": "hooks",
    "KeyPool": "keys",
    "Pacer": "ratelimit",
    "RetryBudget": "ratelimit",
    "RetryPolicy": "retry",
    "SSEParser": "sse",
    "ServerSentEvent": "sse",
    "Stream": "stream",
    "UsageMeter": "usage",
    "HTTPRequest": "wire",
    "HTTPResponse": "wire",
    "Simulator": "simulator",
}

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


def __getattr__(name: str):  # type: ignore[no-untyped-def]
    module = _EXPORTS.get(name) or ("errors" if name in __all__ else None)
    if module is None:
        raise AttributeError(f"module 'rawchat' has no attribute {name!r}")
    from importlib import import_module

    value = import_module(f"{__name__}.{module}")
    if name != module:  # a name inside the module, not the module itself
        value = getattr(value, name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__():  # type: ignore[no-untyped-def]
    return sorted({*globals(), *_EXPORTS})


# Type checkers and IDEs read the real imports; at run time they are lazy.
TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from . import errors
    from .breaker import CircuitBreaker
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
        CircuitOpenError,
        ConfigError,
        ConflictError,
        ContextOverflowError,
        IncompleteStreamError,
        InternalServerError,
        InvalidRequestError,
        InvalidResponseError,
        NoKeyAvailableError,
        NotFoundError,
        PacingDeadlineError,
        PermissionDeniedError,
        RateLimitError,
        RawchatError,
        StreamError,
        UnprocessableEntityError,
    )
    from .fallback import Fallback, ResponseCache
    from .hooks import Event, Hooks
    from .keys import KeyPool
    from .ratelimit import Pacer, RetryBudget
    from .retry import RetryPolicy
    from .simulator import Simulator
    from .sse import ServerSentEvent, SSEParser
    from .stream import Stream
    from .usage import UsageMeter
    from .wire import HTTPRequest, HTTPResponse
