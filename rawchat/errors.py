"""Every way a chat call can fail, as one exception tree.

Error bodies follow the OpenAI convention
(https://platform.openai.com/docs/guides/error-codes)::

    {"error": {"message": "...", "type": "...", "param": null, "code": "..."}}

The tree (everything rawchat raises on purpose is a ``RawchatError``)::

    RawchatError
    ├── ConfigError                  bad local settings (key, base URL, profile)
    ├── InvalidRequestError          a request we refuse to send (bad messages)
    │   └── ContextOverflowError     it cannot be made to fit the context window
    ├── BudgetExceededError          a usage budget would be crossed
    ├── NoKeyAvailableError          every key of the pool is retired or cooling down
    ├── PacingDeadlineError          the rate limit would wait past the deadline
    └── APIError                     something went wrong talking to the server
        ├── APIConnectionError       no usable HTTP response (DNS, TCP, TLS, proxy)
        │   └── APITimeoutError      connect or read timeout, or the deadline
        ├── APIStatusError           the server answered 4xx/5xx
        │   ├── BadRequestError            400
        │   ├── AuthenticationError        401
        │   ├── PermissionDeniedError      403
        │   ├── NotFoundError              404
        │   ├── ConflictError              409
        │   ├── UnprocessableEntityError   422
        │   ├── RateLimitError             429
        │   └── InternalServerError        5xx
        ├── CircuitOpenError         the endpoint's circuit is open: not attempted
        ├── InvalidResponseError     a 2xx whose body is not a chat completion
        └── StreamError              a broken stream: bad chunk, error event
            └── IncompleteStreamError   ended before [DONE] / finish_reason

Lower-level exceptions (``requests``, ``json``) are translated at the edge and
chained with ``raise ... from exc`` so the original stays visible.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Tuple

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "BudgetExceededError",
    "CircuitOpenError",
    "ConfigError",
    "ConflictError",
    "ContextOverflowError",
    "IncompleteStreamError",
    "InternalServerError",
    "InvalidRequestError",
    "InvalidResponseError",
    "NoKeyAvailableError",
    "NotFoundError",
    "PacingDeadlineError",
    "PermissionDeniedError",
    "RateLimitError",
    "RawchatError",
    "StreamError",
    "UnprocessableEntityError",
    "status_error_class",
]


class RawchatError(Exception):
    """Base of every exception rawchat raises on purpose.

    ``hint`` says what to do about it, in one or two sentences; ``str()``
    shows the message followed by the hint.
    """

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class ConfigError(RawchatError, ValueError):
    """Local settings are unusable: a malformed key, base URL or profile."""


class InvalidRequestError(RawchatError, ValueError):
    """The request would be rejected by any server, so it is not sent."""


class ContextOverflowError(InvalidRequestError):
    """Even trimmed, the conversation does not fit the model's context window."""


class BudgetExceededError(RawchatError):
    """The request would take usage past a budget set on the ``UsageMeter``."""


class NoKeyAvailableError(RawchatError):
    """Every key of a ``KeyPool`` is retired, expired, or cooling down."""

    def __init__(self, message: str, *, retry_in: Optional[float] = None, hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.retry_in = retry_in


class PacingDeadlineError(RawchatError):
    """The ``Pacer``'s rate limit would make this request wait past its deadline."""

    def __init__(self, message: str, *, wait: float, hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.wait = wait


class APIError(RawchatError):
    """A failure while talking to the server.

    ``attempts`` is the history of tries that led here, oldest first, as
    ``(attempt number, what happened, seconds slept before the next)``.
    """

    attempts: Tuple[Tuple[int, str, float], ...] = ()


class APIConnectionError(APIError):
    """No usable HTTP response: DNS, TCP, TLS, proxy, or a dropped connection.

    ``request_sent`` says whether the server may have received the request:
    ``False`` only when the connection was never made (DNS, refused, connect
    timeout, TLS, proxy), so a retry cannot run the request twice.
    """

    request_sent: bool = True


class APITimeoutError(APIConnectionError):
    """A connect or read timeout, or the call's total deadline, ran out."""


class APIStatusError(APIError):
    """The server answered with a 4xx or 5xx status.

    ``body`` is the parsed JSON body when there was one, else the text;
    ``code``, ``type`` and ``param`` come from its ``error`` object.
    ``retry_after`` is the wait the server asked for, in seconds, if any.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        request_id: Optional[str] = None,
        body: Any = None,
        code: Optional[str] = None,
        type: Optional[str] = None,
        param: Optional[str] = None,
        hint: str = "",
        headers: Optional[Mapping[str, str]] = None,
        retry_after: Optional[float] = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.status_code = status_code
        self.request_id = request_id
        self.body = body
        self.code = code
        self.type = type
        self.param = param
        # Kept as given: the response's own ``Headers``, whose lookups ignore
        # case (``Retry-After`` is ``retry-after``). A plain dict would not.
        self.headers: Mapping[str, str] = headers if headers is not None else {}
        self.retry_after = retry_after

    def __str__(self) -> str:
        text = f"{self.status_code} {self.message}"
        if self.request_id:
            text += f" (request id {self.request_id})"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class BadRequestError(APIStatusError):
    """400: the server could not accept the request body."""


class AuthenticationError(APIStatusError):
    """401: the key is missing, mistyped, or revoked."""


class PermissionDeniedError(APIStatusError):
    """403: the key is valid but not allowed here (region, project, model)."""


class NotFoundError(APIStatusError):
    """404: wrong URL (often a base URL without ``/v1``) or unknown model."""


class ConflictError(APIStatusError):
    """409: a conflicting concurrent operation; safe to retry."""


class UnprocessableEntityError(APIStatusError):
    """422: the body parsed but failed validation (common on compatible servers)."""


class RateLimitError(APIStatusError):
    """429: too many requests or tokens, or (``code == "insufficient_quota"``)
    no credit left, which no amount of waiting fixes."""


class InternalServerError(APIStatusError):
    """5xx: the server (or a gateway in front of it) failed."""


class CircuitOpenError(APIError):
    """The endpoint's ``CircuitBreaker`` is open: the call was not attempted."""

    def __init__(self, message: str, *, retry_in: float, hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.retry_in = retry_in


class InvalidResponseError(APIError):
    """A 2xx response whose body is not a chat completion (HTML, bad JSON...)."""

    def __init__(
        self, message: str, *, status_code: int = 200, body: Any = None, hint: str = ""
    ) -> None:
        super().__init__(message, hint=hint)
        self.status_code = status_code
        self.body = body


class StreamError(APIError):
    """The stream broke: a malformed chunk, or an error sent inside the stream.

    ``partial`` is the answer assembled from what did arrive, if any: a
    ``Completion`` (``rawchat.protocol.completion``). This module sits below
    every layer, so it names that type without importing it.
    """

    def __init__(
        self,
        message: str,
        *,
        hint: str = "",
        partial: Any = None,
        code: Optional[str] = None,
        body: Any = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.partial = partial
        self.code = code
        self.body = body


class IncompleteStreamError(StreamError):
    """The stream ended before ``data: [DONE]`` and before any finish reason.

    The text in ``partial`` is a prefix of the answer, not the answer.
    """


_STATUS_CLASSES = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def status_error_class(status_code: int) -> type:
    """The ``APIStatusError`` subclass for an HTTP status code."""
    if status_code >= 500:
        return InternalServerError
    return _STATUS_CLASSES.get(status_code, APIStatusError)
