"""``Client``: the protocol core, the transport and the retry policy, glued.

One call, end to end (https://platform.openai.com/docs/api-reference/chat)::

    build_chat_request()      request.py    messages -> HTTPRequest
    Transport.open()          transport.py  HTTPRequest -> status + headers
      4xx/5xx -> error_from_response()      response.py   -> typed error
      RetryPolicy.decide()    retry.py      retry after a delay, or raise
    completion_from_response()              response.py   body -> Completion
    Stream                    stream.py     bytes -> chunks -> Completion

Time and chance come in from outside (``sleep``, ``clock``, ``wall_clock``,
``random``), so tests run a whole retry schedule without waiting.
"""

from __future__ import annotations

import logging
import random as _random
import time
from dataclasses import replace
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

import requests

from .completion import Completion
from .config import DEFAULT_TIMEOUT, PROFILES, Settings, Timeout, TimeoutLike
from .errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    ConfigError,
    InvalidRequestError,
    InvalidResponseError,
)
from .request import build_chat_request, build_request
from .response import ErrorContext, completion_from_response, error_from_response
from .retry import RetryPolicy
from .stream import Stream
from .tokens import Calibration, estimate_messages
from .trace import Trace
from .transport import StreamingResponse, Transport
from .usage import UsageMeter
from .wire import HTTPRequest, HTTPResponse, fingerprint

__all__ = ["Client"]

log = logging.getLogger("rawchat")


class Client:
    """A Chat Completions client for OpenAI and compatible servers.

    ``api_key`` and ``base_url`` default to ``OPENAI_API_KEY`` and
    ``OPENAI_BASE_URL`` (or a ``profile``'s variables, see ``config.py``).
    ``timeout`` is seconds, ``(connect, read)`` or a ``Timeout``; ``read``
    is the longest silence allowed between two reads. ``deadline`` bounds a
    whole call, retries and waits included. ``max_retries`` is a shortcut
    for ``retry=RetryPolicy(max_retries=...)``. Pass ``session`` to use your
    own ``requests.Session`` (proxies, certificates, adapters), ``trace``
    to see every exchange on the wire (``rawchat.trace``), and ``usage`` to
    count tokens and cost and enforce budgets (``rawchat.usage``).
    """

    def __init__(
        self,
        api_key: Optional[str] = None,
        base_url: Optional[str] = None,
        *,
        max_retries: int = 2,
        timeout: TimeoutLike = DEFAULT_TIMEOUT,
        profile: Optional[str] = None,
        model: Optional[str] = None,
        organization: Optional[str] = None,
        project: Optional[str] = None,
        api_version: Optional[str] = None,
        default_headers: Optional[Mapping[str, str]] = None,
        retry: Optional[RetryPolicy] = None,
        deadline: Optional[float] = None,
        session: Optional[requests.Session] = None,
        pool_maxsize: int = 10,
        trace: Optional[Trace] = None,
        usage: Optional[UsageMeter] = None,
        environ: Optional[Mapping[str, str]] = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        random: Callable[[], float] = _random.random,
    ) -> None:
        self.settings = Settings.resolve(
            api_key,
            base_url,
            profile=profile,
            model=model,
            organization=organization,
            project=project,
            api_version=api_version,
            timeout=timeout,
            max_retries=max_retries,
            headers=default_headers,
            environ=environ,
        )
        known = PROFILES.get(self.settings.profile)
        if self.settings.api_key is None and known is not None and known.key_required:
            raise ConfigError(
                f"no API key for {self.settings.base_url}",
                hint=f"set {self.settings.key_variable}, pass api_key=..., or try "
                "rawchat offline against the simulator: `rawchat ask hello`",
            )
        self.retry = retry or RetryPolicy(max_retries=max_retries)
        if deadline is not None and not deadline > 0:
            raise ConfigError(f"deadline must be a positive number of seconds, got {deadline!r}")
        self.deadline = deadline
        self._sleep = sleep
        self._clock = clock
        self._wall_clock = wall_clock
        self._random = random
        self.usage = usage
        #: Per-model correction of token estimates, from the usage servers report.
        self.calibration = Calibration()
        self.transport = Transport(session, pool_maxsize=pool_maxsize, clock=clock, trace=trace)

    def __repr__(self) -> str:
        key = fingerprint(self.settings.api_key) if self.settings.api_key else None
        return f"Client(base_url={self.settings.base_url!r}, api_key={key!r})"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def close(self) -> None:
        """Close pooled connections (only of a Session the client created)."""
        self.transport.close()

    # -- the API ----------------------------------------------------------

    def chat(
        self,
        messages: Sequence[Any],
        *,
        model: Optional[str] = None,
        extra_headers: Optional[Mapping[str, str]] = None,
        **params: Any,
    ) -> Completion:
        """Send ``messages`` and return the whole answer as a ``Completion``.

        ``params`` go into the request body as given: ``temperature``,
        ``max_tokens``, ``tools``, ``response_format``, ``n``...
        ``extra_headers`` are sent with this request only.
        """
        if "stream" in params or "include_usage" in params:
            raise InvalidRequestError(
                "chat() returns a whole answer; 'stream' is not one of its parameters",
                hint="call client.stream(...) for a streamed answer",
            )
        request = build_chat_request(
            self.settings, messages, model=model, extra_headers=extra_headers, **params
        )
        model = model or self.settings.model
        estimate = self._before(model, request, params)
        call = _Call(self, request, model)
        response = call.send()
        completion = replace(completion_from_response(response), retries_taken=call.retries)
        self._after(model, estimate, completion)
        return completion

    def stream(
        self,
        messages: Sequence[Any],
        *,
        model: Optional[str] = None,
        include_usage: bool = True,
        extra_headers: Optional[Mapping[str, str]] = None,
        on_complete: Optional[Callable[[Completion], None]] = None,
        **params: Any,
    ) -> Stream:
        """Send ``messages`` with ``stream: true``; returns a ``Stream``.

        The request goes out when the ``with`` block is entered (or on first
        iteration). ``include_usage=False`` stops asking for the final usage
        chunk, for servers that reject ``stream_options``. ``on_complete`` is
        called with the ``Completion`` once the stream has ended properly.
        """
        request = build_chat_request(
            self.settings,
            messages,
            model=model,
            stream=True,
            include_usage=include_usage,
            extra_headers=extra_headers,
            **params,
        )
        model = model or self.settings.model
        estimate = self._before(model, request, params)

        def finished(completion: Completion) -> None:
            self._after(model, estimate, completion)
            if on_complete is not None:
                on_complete(completion)

        call = _Call(self, request, model)
        return Stream(
            lambda failure: (call.open_stream(failure), call.retries),
            clock=self._clock,
            deadline=call.deadline_at,
            on_complete=finished,
        )

    def estimate_prompt(self, model: str, messages: Sequence[Any], tools: Any = None) -> int:
        """Estimated prompt tokens, corrected by what this model's usage has shown."""
        count = estimate_messages(messages, tools=tools, model=model)
        return self.calibration.correct(model, count)

    def _before(self, model: str, request: HTTPRequest, params: Mapping[str, Any]) -> int:
        body = request.json()
        raw = estimate_messages(body["messages"], tools=body.get("tools"), model=model)
        if self.usage is not None:
            cap = params.get("max_completion_tokens") or params.get("max_tokens") or 0
            self.usage.check(model, self.calibration.correct(model, raw), int(cap))
        return raw

    def _after(self, model: str, estimate: int, completion: Completion) -> None:
        if completion.usage is None:
            return
        self.calibration.observe(model, estimate, completion.usage.prompt_tokens)
        if self.usage is not None:
            key = fingerprint(self.settings.api_key) if self.settings.api_key else ""
            self.usage.record(completion.model or model, completion.usage, key)

    def models(self) -> List[Dict[str, Any]]:
        """``GET /models``: the model objects the server lists (``id``, ``owned_by``...)."""
        response = self.request("GET", "/models")
        data = response.json()
        models = data.get("data") if isinstance(data, dict) else data
        if not isinstance(models, list):
            raise InvalidResponseError("GET /models did not return a list under 'data'", body=data)
        return [m if isinstance(m, dict) else {"id": str(m)} for m in models]

    def request(self, method: str, path: str, json: Any = None) -> HTTPResponse:
        """Any other endpoint, with the same auth, retries and errors.

        ``path`` is relative to the base URL (``"/embeddings"``); ``json`` is
        the body. Returns the whole ``HTTPResponse``; 4xx/5xx raise.
        """
        return _Call(self, build_request(self.settings, method, path, json), None).send()


class _Call:
    """One logical call: its attempts, retries and deadline."""

    def __init__(self, client: Client, request: HTTPRequest, model: Optional[str]) -> None:
        self.client = client
        self.request = request
        self.model = model
        self.retries = 0
        self.history: List[tuple] = []
        self.started = client._clock()
        self.deadline_at = self.started + client.deadline if client.deadline is not None else None

    def send(self) -> HTTPResponse:
        """Attempts until a 2xx response is read whole, or the policy gives up."""
        while True:
            source = self._attempt()
            if isinstance(source, APIError):
                self._after_failure(source)
                continue
            try:
                body = source.read()
            except APIConnectionError as exc:
                self._after_failure(exc)
                continue
            return source.response(body, self.client._clock() - source.started)

    def open_stream(self, failure: Optional[APIError] = None) -> StreamingResponse:
        """Attempts until a 2xx response's headers are in; the body is unread."""
        if failure is not None:
            self._after_failure(failure)
        while True:
            source = self._attempt(stream=True)
            if not isinstance(source, APIError):
                return source
            self._after_failure(source)

    def _attempt(self, stream: bool = False) -> Any:
        """One request: a 2xx source, or the error it ended in (not raised)."""
        client = self.client
        log.debug(
            "%s %s (attempt %d)",
            self.request.method,
            self.request.url,
            self.retries + 1,
        )
        try:
            source = client.transport.open(self.request, self._timeout())
            if source.status_code < 300:
                return source
            body = source.read()
        except APIConnectionError as exc:
            return exc
        response = source.response(body, client._clock() - source.started)
        settings = client.settings
        return error_from_response(
            response,
            ErrorContext(
                key=settings.api_key,
                key_source=settings.key_source,
                key_variable=settings.key_variable,
                model=self.model,
                profile=settings.profile,
                now=client._wall_clock(),
            ),
        )

    def _timeout(self) -> Timeout:
        timeout = self.client.settings.timeout
        if self.deadline_at is None:
            return timeout
        left = self.deadline_at - self.client._clock()
        if left <= 0:
            raise APITimeoutError(
                f"the call's deadline of {self.client.deadline:g} s has passed",
                hint="raise Client(deadline=...) or lower max_retries",
            )
        return Timeout(min(timeout.connect, left), min(timeout.read, left))

    def _after_failure(self, error: APIError) -> None:
        """Sleep before the next attempt, or raise ``error`` with its history."""
        client = self.client
        status = error.status_code if isinstance(error, APIStatusError) else None
        headers = error.headers if isinstance(error, APIStatusError) else {}
        time_left = None
        if self.deadline_at is not None:
            time_left = self.deadline_at - client._clock()
        decision = client.retry.decide(
            self.retries,
            status=status,
            headers=headers,
            code=getattr(error, "code", None),
            rand=client._random(),
            now=client._wall_clock(),
            time_left=time_left,
        )
        what = f"{status}" if status is not None else type(error).__name__
        self.history.append((self.retries + 1, what, decision.delay if decision.retry else 0.0))
        if not decision.retry:
            error.attempts = tuple(self.history)
            if decision.server_wait is not None and isinstance(error, APIStatusError):
                # Too long to sleep through: say so, and leave the wait to the caller.
                error.retry_after = decision.server_wait
                error.hint = f"{error.hint}; not retried: {decision.reason}".lstrip("; ")
            log.info(
                "%s %s failed (%s); not retrying: %s",
                self.request.method,
                self.request.url,
                what,
                decision.reason,
            )
            raise error
        log.info(
            "%s %s failed (%s); retry %d of %d in %.2f s",
            self.request.method,
            self.request.url,
            what,
            self.retries + 1,
            client.retry.max_retries,
            decision.delay,
        )
        client._sleep(decision.delay)
        self.retries += 1
