"""Fallbacks and degradation: keep answering when the endpoint does not.

``Fallback`` names an alternative: another model on the same endpoint (a
cheaper one, say), or another endpoint altogether (a second provider). A
client tries its primary, then each fallback in order, moving on only for
failures that are the server's (5xx, 429, timeouts, connection errors, an
open circuit, no usable key); a 400 would fail the same anywhere.

``ResponseCache`` remembers answers by an exact match of model, messages
and parameters, in memory or on disk. When every endpoint is down, a cached
answer is returned with ``Completion.degraded`` set, so the caller can tell
(and say so to its user).

``Route`` is one call's way through them, wrapped around the attempt loop
(``rawchat.client.attempts``) the same way for whole and streamed answers::

    route.run(attempt, from_cache)   attempt(target) for each target in order,
                                     past failures that are the server's,
                                     then the cached answer, or the first failure
    await route.run_async(...)       the same, for an attempt that is awaited
    route.answered(completion)       marked degraded if it is; remembered in the cache
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import typing
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import (
    Any,
    Awaitable,
    Callable,
    Dict,
    Generic,
    Iterator,
    Mapping,
    Optional,
    Sequence,
    TypeVar,
)

from ..errors import (
    APIConnectionError,
    APIError,
    CircuitOpenError,
    InternalServerError,
    NoKeyAvailableError,
    RateLimitError,
)
from ..protocol.completion import Completion
from ..storage import atomic_write
from .hooks import Hooks

__all__ = [
    "FALL_THROUGH",
    "Fallback",
    "ResponseCache",
    "Route",
    "Target",
    "cache_key",
    "completion_to_dict",
]

E = TypeVar("E")
T = TypeVar("T")

#: Failures that are the endpoint's, not the request's: worth another endpoint.
FALL_THROUGH = (
    APIConnectionError,
    InternalServerError,
    RateLimitError,
    CircuitOpenError,
    NoKeyAvailableError,
)


@dataclass(frozen=True)
class Fallback:
    """An alternative to try: ``model`` on this endpoint, or another endpoint.

    Left out, ``base_url``/``api_key``/``profile`` are the primary's and
    ``model`` is the requested one.
    """

    model: Optional[str] = None
    base_url: Optional[str] = None
    api_key: Optional[str] = None
    profile: Optional[str] = None

    @property
    def same_endpoint(self) -> bool:
        return self.base_url is None and self.api_key is None and self.profile is None


def cache_key(model: str, messages: Sequence[Any], params: Mapping[str, Any]) -> str:
    """An exact-match key: the SHA-256 of the canonical JSON of the request."""
    canonical = json.dumps(
        {"model": model, "messages": list(messages), "params": dict(params)},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def completion_to_dict(completion: Completion) -> Dict[str, Any]:
    """A completion as a plain chat completion object (what ``parse_completion`` reads)."""
    choices = []
    for choice in completion.choices:
        message = choice.message.to_dict()
        if choice.message.reasoning:
            message["reasoning_content"] = choice.message.reasoning
        choices.append(
            {"index": choice.index, "message": message, "finish_reason": choice.finish_reason}
        )
    usage = completion.usage
    return {
        "id": completion.id,
        "object": "chat.completion",
        "created": completion.created,
        "model": completion.model,
        "choices": choices,
        "usage": None
        if usage is None
        else {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
        },
    }


class ResponseCache:
    """Exact-match answers, newest ``max_entries`` in memory, optionally on disk."""

    def __init__(self, path: Optional[str] = None, *, max_entries: int = 1000) -> None:
        self.path = path
        self.max_entries = max_entries
        self._memory: typing.OrderedDict[str, Dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()
        if path:
            os.makedirs(path, exist_ok=True)

    def get(self, key: str) -> Optional[Dict[str, Any]]:
        with self._lock:
            if key in self._memory:
                self._memory.move_to_end(key)
                return self._memory[key]
        if self.path:
            try:
                with open(os.path.join(self.path, key + ".json"), encoding="utf-8") as saved:
                    return json.load(saved)
            except (OSError, ValueError):
                return None
        return None

    def put(self, key: str, completion: Completion) -> None:
        data = completion_to_dict(completion)
        with self._lock:
            self._memory[key] = data
            self._memory.move_to_end(key)
            while len(self._memory) > self.max_entries:
                self._memory.popitem(last=False)
        if self.path:
            atomic_write(
                os.path.join(self.path, key + ".json"), json.dumps(data, ensure_ascii=False)
            )


@dataclass(frozen=True)
class Target(Generic[E]):
    """One place to ask: an ``endpoint`` (the client's), a ``model``, and
    whether an answer from there is ``degraded`` (every fallback's is)."""

    endpoint: E
    model: str
    degraded: bool = False


class Route(Generic[E]):
    """One call's way through its targets, then the cache.

    ``key`` is the request's ``cache_key`` (unused without a ``cache``).
    ``target`` is the target tried last, ``failure`` the first failure met.
    The targets are tried once each, across calls of ``run``: a stream that
    breaks before any content reached its caller resumes where it was.
    """

    def __init__(
        self,
        targets: Sequence[Target[E]],
        *,
        hooks: Hooks,
        cache: Optional[ResponseCache] = None,
        key: str = "",
    ) -> None:
        self.model = targets[0].model  # the one asked for: the cache knows it by this
        self.hooks = hooks
        self.cache = cache
        self.key = key
        self.target: Target[E] = targets[0]
        self.failure: Optional[APIError] = None
        self.from_cache = False
        self._pending: Iterator[Target[E]] = iter(targets)

    @property
    def degraded(self) -> bool:
        return self.from_cache or self.target.degraded

    def run(
        self, attempt: Callable[[Target[E]], T], from_cache: Callable[[Dict[str, Any]], T]
    ) -> T:
        """``attempt`` each target left until one answers; then the cache, or raise."""
        for target in self._targets():
            try:
                return attempt(target)
            except FALL_THROUGH as exc:
                self.failed(exc)
        return from_cache(self._cached())

    async def run_async(
        self,
        attempt: Callable[[Target[E]], Awaitable[T]],
        from_cache: Callable[[Dict[str, Any]], T],
    ) -> T:
        """``run()`` for an ``attempt`` that is awaited (``AsyncClient``)."""
        for target in self._targets():
            try:
                return await attempt(target)
            except FALL_THROUGH as exc:
                self.failed(exc)
        return from_cache(self._cached())

    def _targets(self) -> Iterator[Target[E]]:
        """The targets not tried yet, each the current one while it is tried."""
        for target in self._pending:
            self.target = target
            yield target

    def _cached(self) -> Dict[str, Any]:
        """Every target failed: the cached answer, or raise the first failure."""
        cached = self.cache.get(self.key) if self.cache is not None else None
        if cached is None:
            assert self.failure is not None
            raise self.failure
        self.from_cache = True
        self.hooks.emit(
            "degraded", model=self.model, error=self.failure, detail="answered from the cache"
        )
        return cached

    def failed(self, error: APIError) -> None:
        """The current target failed for good with ``error``: say so, and move on."""
        self.failure = self.failure or error
        self.hooks.emit(
            "degraded", model=self.target.model, error=error, detail="trying the next fallback"
        )

    def answered(self, completion: Completion) -> Completion:
        """The answer as the caller gets it; a fresh one is remembered for bad days."""
        if self.cache is not None and not self.from_cache:
            self.cache.put(self.key, completion)  # a fallback's answer is a real answer too
        return replace(completion, degraded=self.degraded)
