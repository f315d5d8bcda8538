"""One logical call to one endpoint: its attempts, and the policies around each.

Around every attempt, in this order::

    breaker.before()         an open circuit fails the call at once
    keys.acquire()           a healthy key from the pool (or the client's key)
    pacer.reserve()          wait for a rate-limit slot, unless past the deadline
    transport.open()         the request itself
    keys.release()           429 cools the key down, 401/403/quota retire it
    breaker.record()         server-side failures count against the endpoint
    pacer.observe()          x-ratelimit-* headers tighten the buckets
    retry.decide()           then sleep and go again, or raise with the history

Each policy is optional and pure; the time comes from the client's clock.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, List, Optional, Tuple, Union

from ..errors import APIConnectionError, APIError, APIStatusError, APITimeoutError
from ..policies.breaker import is_failure
from ..protocol.http import HTTPRequest, HTTPResponse, fingerprint
from ..protocol.request import with_api_key
from ..protocol.response import ErrorContext, error_from_response
from ..protocol.retry import Decision
from .transport import StreamingResponse

if TYPE_CHECKING:  # pragma: no cover
    from ..policies.keys import PooledKey
    from ..protocol.settings import Timeout
    from .client import Client

__all__ = ["Call"]

log = logging.getLogger("rawchat")


class Call:
    """The attempts of one request against ``client``'s endpoint."""

    def __init__(
        self, client: Client, request: HTTPRequest, model: Optional[str], tokens: int = 0
    ) -> None:
        self.client = client
        self.request = request
        self.model = model
        self.tokens = tokens  # estimated prompt tokens, for pacing
        self.retries = 0
        self.history: List[Tuple[int, str, float]] = []
        self.started = client._clock()
        self.deadline_at = self.started + client.deadline if client.deadline is not None else None
        self.key_label = ""  # fingerprint of the key the last attempt used

    def send(self) -> HTTPResponse:
        """Attempts until a 2xx response is read whole, or the policy gives up."""
        while True:
            outcome = self._attempt(stream=False)
            if isinstance(outcome, HTTPResponse):
                return outcome
            self._after_failure(outcome)

    def open_stream(self, failure: Optional[APIError] = None) -> StreamingResponse:
        """Attempts until a 2xx response's headers are in; the body is unread."""
        if failure is not None:
            self._after_failure(failure)
        while True:
            outcome = self._attempt(stream=True)
            if isinstance(outcome, StreamingResponse):
                return outcome
            self._after_failure(outcome)

    def time_left(self) -> Optional[float]:
        if self.deadline_at is None:
            return None
        return self.deadline_at - self.client._clock()

    def _attempt(self, stream: bool) -> Union[HTTPResponse, StreamingResponse, APIError]:
        """One request: a 2xx response, or the error it ended in (not raised)."""
        client = self.client
        settings = client.settings
        now = client._clock()
        if client.breaker is not None:
            client.breaker.before(now)
        request, pooled = self.request, None
        if client.keys is not None:
            pooled = client.keys.acquire(now, client._wall_clock())
            request = with_api_key(request, settings, pooled.key)
            self.key_label = pooled.fingerprint
        else:
            self.key_label = fingerprint(settings.api_key) if settings.api_key else ""
        if client.pacer is not None:
            wait = client.pacer.reserve(
                self.key_label, self.tokens, now, time_left=self.time_left()
            )
            if wait > 0:
                client._sleep(wait)
        attempt = self.retries + 1
        client.hooks.emit(
            "request", method=request.method, url=request.url, model=self.model or "",
            attempt=attempt, key=self.key_label,
        )  # fmt: skip
        log.debug("%s %s (attempt %d)", request.method, request.url, attempt)
        status: Optional[int] = None
        result: Union[HTTPResponse, StreamingResponse, APIError]
        headers: Any = {}
        try:
            source = client.transport.open(request, self._timeout())
            status, headers = source.status_code, source.headers
            if status < 300 and stream:
                result = source
            else:
                body = source.read(deadline=self.deadline_at, clock=client._clock)
                response = source.response(body, client._clock() - source.started)
                result = response if status < 300 else self._error(response, pooled)
        except APIConnectionError as exc:
            status, result = None, exc
        self._settle(pooled, status, headers, result)
        client.hooks.emit(
            "response", method=request.method, url=request.url, model=self.model or "",
            attempt=attempt, key=self.key_label, status=status,
            elapsed=client._clock() - now,
            error=result if isinstance(result, APIError) else None,
        )  # fmt: skip
        return result

    def _error(self, response: HTTPResponse, pooled: Optional[PooledKey]) -> APIStatusError:
        client = self.client
        settings = client.settings
        key = pooled.key if pooled is not None else settings.api_key
        source = "the key pool" if pooled is not None else settings.key_source
        return error_from_response(
            response,
            ErrorContext(
                key=key,
                key_source=source,
                key_variable=settings.key_variable,
                model=self.model,
                profile=settings.profile,
                now=client._wall_clock(),
            ),
        )

    def _settle(
        self, pooled: Optional[PooledKey], status: Optional[int], headers: Any, result: Any
    ) -> None:
        """Tell each policy how the attempt went."""
        client = self.client
        now = client._clock()
        code = getattr(result, "code", None)
        if pooled is not None and client.keys is not None:
            retry_after = getattr(result, "retry_after", None)
            client.keys.release(pooled, now, status=status, code=code, retry_after=retry_after)
        if client.breaker is not None:
            client.breaker.record(is_failure(status), now)
        if client.pacer is not None and headers:
            client.pacer.observe(self.key_label, headers, now)
        if client.retry_budget is not None:
            client.retry_budget.record(not is_failure(status))

    def _timeout(self) -> Timeout:
        timeout = self.client.settings.timeout
        left = self.time_left()
        if left is None:
            return timeout
        if left <= 0:
            raise APITimeoutError(
                f"the call's deadline of {self.client.deadline:g} s has passed",
                hint="raise Client(deadline=...) or lower max_retries",
            )
        return type(timeout)(min(timeout.connect, left), min(timeout.read, left))

    def _decide(self, error: APIError) -> Decision:
        client = self.client
        status = error.status_code if isinstance(error, APIStatusError) else None
        code = getattr(error, "code", None)
        if client.keys is not None and (status in (401, 403) or code == "insufficient_quota"):
            # That key is out of rotation now; another may work, at once.
            healthy = any(p.retired is None for p in client.keys.keys)
            if healthy:
                return Decision(True, 0.0, "key refused; trying another key")
        decision = client.retry.decide(
            self.retries,
            status=status,
            headers=error.headers if isinstance(error, APIStatusError) else {},
            code=code,
            rand=client._random(),
            now=client._wall_clock(),
            time_left=self.time_left(),
        )
        if (
            decision.retry
            and client.retry_budget is not None
            and not client.retry_budget.allows_retry()
        ):
            return Decision(False, reason="the retry budget is spent: most recent calls failed")
        return decision

    def _after_failure(self, error: APIError) -> None:
        """Sleep before the next attempt, or raise ``error`` with its history."""
        client = self.client
        decision = self._decide(error)
        status = error.status_code if isinstance(error, APIStatusError) else None
        what = f"{status}" if status is not None else type(error).__name__
        self.history.append((self.retries + 1, what, decision.delay if decision.retry else 0.0))
        method, url = self.request.method, self.request.url
        if not decision.retry:
            error.attempts = tuple(self.history)
            if decision.server_wait is not None and isinstance(error, APIStatusError):
                # Too long to sleep through: say so, and leave the wait to the caller.
                error.retry_after = decision.server_wait
                error.hint = f"{error.hint}; not retried: {decision.reason}".lstrip("; ")
            log.info("%s %s failed (%s); not retrying: %s", method, url, what, decision.reason)
            client.hooks.emit("error", method=method, url=url, model=self.model or "",
                              attempt=self.retries + 1, status=status, error=error,
                              detail=decision.reason)  # fmt: skip
            raise error
        log.info(
            "%s %s failed (%s); retry %d of %d in %.2f s",
            method, url, what, self.retries + 1, client.retry.max_retries, decision.delay,
        )  # fmt: skip
        client.hooks.emit("retry", method=method, url=url, model=self.model or "",
                          attempt=self.retries + 1, status=status, error=error,
                          delay=decision.delay, detail=decision.reason)  # fmt: skip
        if decision.delay:
            client._sleep(decision.delay)
        self.retries += 1
