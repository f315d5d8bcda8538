"""The attempt loop: one request to one endpoint, tried until it answers or a policy gives up.

``Client`` (``client.py``) builds the request and hands over everything the
loop needs as values: the ``Endpoint`` (settings, transport, resolved
policies), the ``Clock``, the call's ``Deadline``, the estimated prompt
tokens for pacing, and the ``RetryPolicy`` when the call brings its own.
The loop never sees the client. Retry timing follows
https://platform.openai.com/docs/guides/error-codes and
``protocol/retry.py``; a streamed answer is handed back once its headers
are in, and ``stream.py`` reads its body.

Around every attempt, in this order::

    breaker.before()         an open circuit fails the call at once
    keys.acquire()           a healthy key from the pool (or the settings' key)
    pacer.reserve()          wait for a rate-limit slot, unless past the deadline
    transport.open()         the request itself, its timeouts and its head cut to the deadline
    keys.release()           429 cools the key down, 401/403/quota retire it
    breaker.record()         server-side failures count against the endpoint
    pacer.observe()          x-ratelimit-* headers tighten the buckets
    retry_budget.record()    the share of calls that fail
    retry.decide()           then sleep and go again, or raise with the history

Each policy is optional and keeps its own state; it is told the time.
Fallbacks and the cache are not here: they wrap this loop
(``policies/fallback.py``).

The loop is written once, as steps that do no I/O and never sleep
(``_begin``, ``_sending``, ``_answered``, ``_ended``, ``_failed``): each
returns what to wait for or what happened. Two small drivers run them, as
h11 is driven by blocking and by asyncio code alike: ``send()`` and
``open_stream()`` sleep with ``Clock.sleep`` and call a ``Transport``;
``send_async()`` and ``open_stream_async()`` await ``Clock.asleep`` and an
``AsyncTransport`` (``aio_transport.py``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, List, Optional, Tuple, Union

from ..errors import APIConnectionError, APIError, APIStatusError, APITimeoutError
from ..policies import Policies
from ..policies.breaker import is_failure
from ..policies.keys import PooledKey
from ..protocol.http import HTTPRequest, HTTPResponse, fingerprint, redact_url
from ..protocol.request import with_api_key
from ..protocol.response import ErrorContext, error_from_response
from ..protocol.retry import Decision, RetryPolicy
from ..protocol.settings import Settings, Timeout
from .clock import Clock, Deadline
from .transport import StreamingResponse, Transport

if TYPE_CHECKING:  # pragma: no cover
    from .aio_transport import AsyncStreamingResponse, AsyncTransport

__all__ = ["Call", "Endpoint"]

log = logging.getLogger("rawchat")


@dataclass(frozen=True)
class Endpoint:
    """Where attempts go and what decides around them.

    ``policies`` are resolved: ``retry`` and ``hooks`` are set, ``keys`` is a
    ``KeyPool`` or ``None``, ``breaker`` a ``CircuitBreaker`` or ``None``.
    """

    settings: Settings
    transport: Union[Transport, AsyncTransport]
    policies: Policies


@dataclass(frozen=True)
class _Attempt:
    """One attempt on its way: its number, the request as sent (with its
    key), the key it took from the pool, when it began, and how long pacing
    asks it to wait before sending."""

    number: int
    request: HTTPRequest
    pooled: Optional[PooledKey]
    began: float
    wait: float


class Call:
    """The attempts of one request against one endpoint.

    ``model`` names the model in hooks and error hints; ``tokens`` is the
    estimated prompt size the pacer reserves. ``retry`` is this call's
    policy: the endpoint's, unless the call brings one. ``retries`` and
    ``history`` (attempt, status or error, delay) grow as it goes;
    ``key_label`` is the fingerprint of the key the last attempt used.
    ``errors`` turns a 4xx/5xx into its typed error: ``error_from_response``,
    or an API's own mapping with its hints (``responses_error``).
    """

    def __init__(
        self,
        endpoint: Endpoint,
        request: HTTPRequest,
        *,
        clock: Clock,
        deadline: Deadline,
        model: Optional[str] = None,
        tokens: int = 0,
        retry: Optional[RetryPolicy] = None,
        errors: Callable[[HTTPResponse, ErrorContext], APIStatusError] = error_from_response,
    ) -> None:
        retry = retry if retry is not None else endpoint.policies.retry
        assert retry is not None  # the client resolves the endpoint's policy
        self.retry: RetryPolicy = retry
        self.endpoint = endpoint
        self.request = request
        self.clock = clock
        self.deadline = deadline
        self.model = model
        self.tokens = tokens
        self.retries = 0
        self.history: List[Tuple[int, str, float]] = []
        self.key_label = ""
        self.errors = errors

    def time_left(self) -> Optional[float]:
        return self.deadline.left(self.clock.monotonic())

    # -- the blocking driver ------------------------------------------------

    def send(self) -> HTTPResponse:
        """Attempts until a 2xx response is read whole, or the policy gives up."""
        while True:
            outcome = self._attempt(stream=False)
            if not isinstance(outcome, APIError):
                return outcome
            self._wait(self._failed(outcome))

    def open_stream(self, failure: Optional[APIError] = None) -> StreamingResponse:
        """Attempts until a 2xx response's headers are in; the body is left unread.

        ``failure`` is how the previous response of this call broke off
        before any content was handed over: it counts as a failed attempt.
        """
        if failure is not None:
            self._wait(self._failed(failure))
        while True:
            outcome = self._attempt(stream=True)
            if not isinstance(outcome, APIError):
                return outcome
            self._wait(self._failed(outcome))

    def _attempt(self, stream: bool) -> Any:
        """One request: a 2xx response, or the error it ended in (not raised)."""
        attempt = self._begin()
        self._wait(attempt.wait)
        status: Optional[int] = None
        headers: Any = {}
        try:
            transport: Any = self.endpoint.transport
            source = transport.open(
                attempt.request, self._sending(attempt), deadline=self.deadline.at
            )
            status, headers = source.status_code, source.headers
            if status < 300 and stream:
                result = source
            else:
                body = source.read(deadline=self.deadline.at, clock=self.clock.monotonic)
                result = self._answered(attempt, source, body)
        except APIConnectionError as exc:
            status, result = None, exc
        return self._ended(attempt, status, headers, result)

    def _wait(self, seconds: float) -> None:
        if seconds > 0:
            self.clock.sleep(seconds)

    # -- the asyncio driver -------------------------------------------------

    async def send_async(self) -> HTTPResponse:
        """``send()`` on the event loop."""
        while True:
            outcome = await self._attempt_async(stream=False)
            if not isinstance(outcome, APIError):
                return outcome
            await self._wait_async(self._failed(outcome))

    async def open_stream_async(self, failure: Optional[APIError] = None) -> AsyncStreamingResponse:
        """``open_stream()`` on the event loop."""
        if failure is not None:
            await self._wait_async(self._failed(failure))
        while True:
            outcome = await self._attempt_async(stream=True)
            if not isinstance(outcome, APIError):
                return outcome
            await self._wait_async(self._failed(outcome))

    async def _attempt_async(self, stream: bool) -> Any:
        attempt = self._begin()
        await self._wait_async(attempt.wait)
        status: Optional[int] = None
        headers: Any = {}
        try:
            transport: Any = self.endpoint.transport
            source = await transport.open(
                attempt.request, self._sending(attempt), deadline=self.deadline.at
            )
            status, headers = source.status_code, source.headers
            if status < 300 and stream:
                result = source
            else:
                body = await source.read()  # the transport holds it to the deadline
                result = self._answered(attempt, source, body)
        except APIConnectionError as exc:
            status, result = None, exc
        return self._ended(attempt, status, headers, result)

    async def _wait_async(self, seconds: float) -> None:
        if seconds > 0:
            await self.clock.asleep(seconds)

    # -- the steps of one attempt: no I/O, no sleeping ----------------------

    def _begin(self) -> _Attempt:
        """The breaker, a key, then a pacing slot: what to send, after how long a wait."""
        settings, policies, clock = self.endpoint.settings, self.endpoint.policies, self.clock
        now = clock.monotonic()
        if policies.breaker is not None:
            policies.breaker.before(now)
        request, pooled = self.request, None
        if policies.keys is not None:
            pooled = policies.keys.acquire(now, clock.wall())
            request = with_api_key(request, settings, pooled.key)
            self.key_label = pooled.fingerprint
        else:
            self.key_label = fingerprint(settings.api_key) if settings.api_key else ""
        wait = 0.0
        if policies.pacer is not None:
            wait = policies.pacer.reserve(
                self.key_label, self.tokens, now, time_left=self.time_left()
            )
        return _Attempt(self.retries + 1, request, pooled, now, wait)

    def _sending(self, attempt: _Attempt) -> Timeout:
        """The attempt is going out now: say so; its timeouts, cut to the deadline."""
        request = attempt.request
        self._emit("request", request, attempt=attempt.number, key=self.key_label)
        log.debug("%s %s (attempt %d)", request.method, redact_url(request.url), attempt.number)
        return self._timeout()

    def _answered(
        self, attempt: _Attempt, source: Any, body: bytes
    ) -> Union[HTTPResponse, APIStatusError]:
        """A response read whole: the response if 2xx, else its typed error."""
        response = source.response(body, self.clock.monotonic() - source.started)
        return response if response.status_code < 300 else self._error(response, attempt.pooled)

    def _ended(self, attempt: _Attempt, status: Optional[int], headers: Any, result: Any) -> Any:
        """Tell each policy and the hooks how the attempt went; ``result`` passes through."""
        self._settle(attempt.pooled, status, headers, result)
        self._emit(
            "response", attempt.request, attempt=attempt.number, key=self.key_label,
            status=status, elapsed=self.clock.monotonic() - attempt.began,
            error=result if isinstance(result, APIError) else None,
        )  # fmt: skip
        return result

    def _timeout(self) -> Timeout:
        timeout = self.endpoint.settings.timeout
        left = self.time_left()
        if left is None:
            return timeout
        if left <= 0:
            raise APITimeoutError(
                f"the call's deadline of {self.deadline.seconds:g} s has passed",
                hint="raise Client(deadline=...) or lower max_retries",
            )
        return type(timeout)(min(timeout.connect, left), min(timeout.read, left))

    def _error(self, response: HTTPResponse, pooled: Optional[PooledKey]) -> APIStatusError:
        settings = self.endpoint.settings
        return self.errors(
            response,
            ErrorContext(
                key=pooled.key if pooled is not None else settings.api_key,
                key_source="the key pool" if pooled is not None else settings.key_source,
                key_variable=settings.key_variable,
                model=self.model,
                profile=settings.profile,
                now=self.clock.wall(),
            ),
        )

    def _settle(
        self, pooled: Optional[PooledKey], status: Optional[int], headers: Any, result: Any
    ) -> None:
        """Tell each policy how the attempt went."""
        policies = self.endpoint.policies
        now = self.clock.monotonic()
        if pooled is not None and policies.keys is not None:
            policies.keys.release(
                pooled, now, status=status, code=getattr(result, "code", None),
                retry_after=getattr(result, "retry_after", None),
            )  # fmt: skip
        if policies.breaker is not None:
            policies.breaker.record(is_failure(status), now)
        if policies.pacer is not None and headers:
            policies.pacer.observe(self.key_label, headers, now)
        if policies.retry_budget is not None:
            policies.retry_budget.record(not is_failure(status))

    # -- between attempts -------------------------------------------------

    def _decide(self, error: APIError) -> Decision:
        policies = self.endpoint.policies
        status = error.status_code if isinstance(error, APIStatusError) else None
        code = getattr(error, "code", None)
        keys = policies.keys
        refused = status in (401, 403) or code == "insufficient_quota"
        if refused and keys is not None and any(p.retired is None for p in keys.keys):
            # That key is out of rotation now; another may work, at once.
            return Decision(True, 0.0, "key refused; trying another key")
        decision = self.retry.decide(
            self.retries,
            status=status,
            headers=error.headers if isinstance(error, APIStatusError) else {},
            code=code,
            rand=self.clock.random(),
            now=self.clock.wall(),
            time_left=self.time_left(),
            # Only a connection error can say the request never left; a
            # stream that broke off was, like any answer, received first.
            request_sent=getattr(error, "request_sent", True),
        )
        budget = policies.retry_budget
        if decision.retry and budget is not None and not budget.allows_retry():
            return Decision(False, reason="the retry budget is spent: most recent calls failed")
        return decision

    def _failed(self, error: APIError) -> float:
        """How long to wait before the next attempt; or raise ``error`` with its history."""
        decision = self._decide(error)
        status = error.status_code if isinstance(error, APIStatusError) else None
        what = f"{status}" if status is not None else type(error).__name__
        attempt = self.retries + 1
        self.history.append((attempt, what, decision.delay if decision.retry else 0.0))
        method, url = self.request.method, redact_url(self.request.url)
        if not decision.retry:
            error.attempts = tuple(self.history)
            if decision.server_wait is not None and isinstance(error, APIStatusError):
                # Too long to sleep through: say so, and leave the wait to the caller.
                error.retry_after = decision.server_wait
                error.hint = f"{error.hint}; not retried: {decision.reason}".lstrip("; ")
            log.info("%s %s failed (%s); not retrying: %s", method, url, what, decision.reason)
            self._emit("error", self.request, attempt=attempt, status=status, error=error,
                       detail=decision.reason)  # fmt: skip
            raise error
        log.info(
            "%s %s failed (%s); retry %d of %d in %.2f s", method, url, what, attempt,
            self.retry.max_retries, decision.delay,
        )  # fmt: skip
        self._emit("retry", self.request, attempt=attempt, status=status, error=error,
                   delay=decision.delay, detail=decision.reason)  # fmt: skip
        self.retries += 1
        return decision.delay

    def _emit(self, kind: str, request: HTTPRequest, **fields: Any) -> None:
        hooks = self.endpoint.policies.hooks
        if hooks is not None:
            url = redact_url(request.url)
            hooks.emit(kind, method=request.method, url=url, model=self.model or "", **fields)
