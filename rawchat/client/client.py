"""``Client``: the protocol core, the transport and the policies, glued.

One call, end to end (https://platform.openai.com/docs/api-reference/chat)::

    build_chat_request()      request.py    messages -> HTTPRequest
    Call                      call.py       attempts: keys, pacing, breaker, retries
      Transport.open()        transport.py  HTTPRequest -> status + headers
      error_from_response()   response.py   4xx/5xx -> typed error
    completion_from_response()              response.py   body -> Completion
    Stream                    stream.py     bytes -> chunks -> Completion

When the endpoint fails for good, the ``fallbacks`` are tried in order, and
at last the response ``cache`` (``fallback.py``). A ``Client`` is safe to
share across threads: one pooled ``requests.Session``, and every policy
keeps its state behind a lock.

Time and chance come in from outside (``sleep``, ``clock``, ``wall_clock``,
``random``), so tests run whole schedules without waiting.
"""

from __future__ import annotations

import json
import os
import random as _random
import threading
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import requests

from ..errors import (
    APIConnectionError,
    APIError,
    CircuitOpenError,
    ConfigError,
    InternalServerError,
    InvalidRequestError,
    InvalidResponseError,
    NoKeyAvailableError,
    RateLimitError,
)
from ..policies.hooks import Hooks
from ..protocol.completion import Completion
from ..protocol.http import Headers, HTTPRequest, HTTPResponse, fingerprint
from ..protocol.request import build_chat_request, build_request
from ..protocol.response import completion_from_response, parse_completion
from ..protocol.retry import RetryPolicy
from ..protocol.settings import DEFAULT_TIMEOUT, PROFILES, Settings, TimeoutLike
from ..protocol.tokens import Calibration, estimate_messages
from .attempts import Call
from .stream import Stream
from .transport import Transport

if TYPE_CHECKING:  # pragma: no cover
    # The optional policies load only for the clients that use them.
    from ..policies.breaker import CircuitBreaker
    from ..policies.fallback import Fallback, ResponseCache
    from ..policies.keys import KeyPool
    from ..policies.pacing import Pacer, RetryBudget
    from ..policies.usage import UsageMeter
    from .trace import Trace

__all__ = ["Client"]


class Client:
    """A Chat Completions client for OpenAI and compatible servers.

    ``api_key`` and ``base_url`` default to ``OPENAI_API_KEY`` and
    ``OPENAI_BASE_URL`` (or a ``profile``'s variables, see ``config.py``).
    ``timeout`` is seconds, ``(connect, read)`` or a ``Timeout``; ``read``
    is the longest silence allowed between two reads. ``deadline`` bounds a
    whole call, retries and waits included. ``max_retries`` is a shortcut
    for ``retry=RetryPolicy(max_retries=...)``. Pass ``session`` to use your
    own ``requests.Session`` (proxies, certificates, adapters), ``trace``
    to see every exchange on the wire (``rawchat.client.trace``), and ``usage`` to
    count tokens and cost and enforce budgets (``rawchat.policies.usage``).

    Resilience, each optional: ``keys`` (a ``KeyPool``, or a list of keys)
    for failover between keys; ``pacer`` to stay under rate limits;
    ``breaker`` (a ``CircuitBreaker``, or True for the defaults);
    ``retry_budget`` against retry storms; ``fallbacks`` (``Fallback``
    endpoints or models, tried in order); ``cache`` (a ``ResponseCache``)
    to answer, marked degraded, when everything is down; ``hooks`` to
    observe it all.
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
        keys: Any = None,
        pacer: Optional[Pacer] = None,
        breaker: Any = None,
        retry_budget: Optional[RetryBudget] = None,
        fallbacks: Sequence[Fallback] = (),
        cache: Optional[ResponseCache] = None,
        hooks: Optional[Hooks] = None,
        environ: Optional[Mapping[str, str]] = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        random: Callable[[], float] = _random.random,
    ) -> None:
        if keys is not None:
            from ..policies.keys import KeyPool

            if not isinstance(keys, KeyPool):
                keys = KeyPool(keys)
        if keys is not None and api_key is None and keys.keys:
            api_key = keys.keys[0].key  # for settings; each attempt picks from the pool
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
            environ=os.environ if environ is None else environ,
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
        self._calibration_lock = threading.Lock()
        self.keys: Optional[KeyPool] = keys
        self.pacer = pacer
        if breaker is True:
            from ..policies.breaker import CircuitBreaker

            breaker = CircuitBreaker(self.settings.base_url)
        self.breaker: Optional[CircuitBreaker] = breaker or None
        self.retry_budget = retry_budget
        self.cache = cache
        self.hooks = hooks or Hooks()
        self.transport = Transport(session, pool_maxsize=pool_maxsize, clock=clock, trace=trace)
        self.fallbacks: List[Tuple[Client, Optional[str]]] = []
        for fallback in fallbacks:
            target = self
            if not fallback.same_endpoint:
                target = Client(
                    fallback.api_key,
                    fallback.base_url,
                    profile=fallback.profile,
                    max_retries=self.retry.max_retries,
                    timeout=timeout,
                    deadline=deadline,
                    breaker=True if self.breaker else None,  # one of its own
                    trace=trace,
                    usage=usage,
                    hooks=self.hooks,
                    environ=environ,
                    sleep=sleep,
                    clock=clock,
                    wall_clock=wall_clock,
                    random=random,
                )
            self.fallbacks.append((target, fallback.model))

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
        model = model or self.settings.model
        failure: Optional[APIError] = None
        for target, target_model, degraded in self._targets(model):
            try:
                completion = target._chat_once(messages, target_model, extra_headers, params)
            except _FALL_THROUGH as exc:
                failure = failure or exc
                self._degrade(target_model, exc)
                continue
            if degraded:
                completion = replace(completion, degraded=True)
            if self.cache is not None:  # a fallback's answer is a real answer too
                self.cache.put(_cache_key(model, messages, params), completion)
            return completion
        return self._from_cache(model, messages, params, failure)

    def _chat_once(
        self,
        messages: Sequence[Any],
        model: str,
        extra_headers: Optional[Mapping[str, str]],
        params: Mapping[str, Any],
    ) -> Completion:
        request = build_chat_request(
            self.settings, messages, model=model, extra_headers=extra_headers, **params
        )
        estimate = self._before(model, request, params)
        call = Call(self, request, model, self.calibration.correct(model, estimate))
        response = call.send()
        completion = completion_from_response(response)
        if call.retries:
            completion = replace(completion, retries_taken=call.retries)
        self._after(model, estimate, completion, call.key_label)
        return completion

    def _targets(self, model: str) -> List[Tuple[Client, str, bool]]:
        """This endpoint, then each fallback: (client, model, whether degraded)."""
        targets = [(self, model, False)]
        targets += [
            (client, fallback_model or model, True) for client, fallback_model in self.fallbacks
        ]
        return targets

    def _degrade(self, model: str, error: APIError) -> None:
        self.hooks.emit("degraded", model=model, error=error, detail="trying the next fallback")

    def _cached(
        self, model: str, messages: Sequence[Any], params: Mapping[str, Any], failure: Any
    ) -> Dict[str, Any]:
        """The cached answer to this request, or ``failure`` raised."""
        cached = self.cache.get(_cache_key(model, messages, params)) if self.cache else None
        if cached is None:
            raise failure
        self.hooks.emit("degraded", model=model, error=failure, detail="answered from the cache")
        return cached

    def _from_cache(
        self, model: str, messages: Sequence[Any], params: Mapping[str, Any], failure: Any
    ) -> Completion:
        return replace(
            parse_completion(self._cached(model, messages, params, failure)), degraded=True
        )

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
        Fallbacks are tried while no content has arrived.
        """
        model = model or self.settings.model

        def request_for(target: Client, target_model: str) -> HTTPRequest:
            return build_chat_request(
                target.settings,
                messages,
                model=target_model,
                stream=True,
                include_usage=include_usage,
                extra_headers=extra_headers,
                **params,
            )

        # Built now, not on entering the stream, so bad messages are refused at once.
        primary = request_for(self, model)
        targets = iter(self._targets(model))
        state: Dict[str, Any] = {}

        def open_next(failure: Optional[APIError]) -> Tuple[Any, int]:
            if failure is not None and state.get("call") is not None:
                try:  # the current target's own retries first
                    return state["call"].open_stream(failure), state["call"].retries
                except _FALL_THROUGH as exc:
                    failure = exc
                    self._degrade(state["model"], exc)
            for target, target_model, degraded in targets:
                if target is self and target_model == model:
                    request = primary
                else:
                    request = request_for(target, target_model)
                estimate = target._before(target_model, request, params)
                call = Call(
                    target,
                    request,
                    target_model,
                    target.calibration.correct(target_model, estimate),
                )
                state.update(
                    call=call,
                    target=target,
                    model=target_model,
                    estimate=estimate,
                    degraded=degraded,
                )
                try:
                    return call.open_stream(), call.retries
                except _FALL_THROUGH as exc:
                    failure = failure or exc
                    self._degrade(target_model, exc)
            cached = self._cached(model, messages, params, failure)
            state.update(degraded=True, call=None, from_cache=True)
            return _CachedSource(cached), 0

        def finished(completion: Completion) -> Completion:
            if state.get("call") is not None:
                target = state["target"]
                target._after(
                    state["model"], state["estimate"], completion, state["call"].key_label
                )
            if self.cache is not None and not state.get("from_cache"):
                self.cache.put(_cache_key(model, messages, params), completion)
            if on_complete is not None:
                on_complete(replace(completion, degraded=bool(state.get("degraded"))))
            return replace(completion, degraded=bool(state.get("degraded")))

        return Stream(
            open_next, clock=self._clock, deadline=self._deadline_at(), on_complete=finished
        )

    def _deadline_at(self) -> Optional[float]:
        return self._clock() + self.deadline if self.deadline is not None else None

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

    def _after(self, model: str, estimate: int, completion: Completion, key: str) -> None:
        if completion.usage is None:
            return
        with self._calibration_lock:
            self.calibration.observe(model, estimate, completion.usage.prompt_tokens)
        if self.pacer is not None:
            self.pacer.correct(key, self.calibration.correct(model, estimate),
                               completion.usage.total_tokens, self._clock())  # fmt: skip
        if self.usage is not None:
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
        return Call(self, build_request(self.settings, method, path, json), None).send()


# Failures that are the endpoint's, not the request's: worth another endpoint.
_FALL_THROUGH = (
    APIConnectionError,
    InternalServerError,
    RateLimitError,
    CircuitOpenError,
    NoKeyAvailableError,
)


def _cache_key(model: str, messages: Sequence[Any], params: Mapping[str, Any]) -> str:
    from ..policies.fallback import cache_key  # only clients with a cache get here

    return cache_key(model, list(messages), params)


class _CachedSource:
    """A cached answer, shaped like a response for ``Stream`` to read."""

    status_code = 200
    url = "cache"

    def __init__(self, data: Dict[str, Any]) -> None:
        self.headers = Headers({"content-type": "application/json"})
        self._body = json.dumps(data).encode("utf-8")

    def read(self) -> bytes:
        return self._body

    def close(self) -> None:
        pass
