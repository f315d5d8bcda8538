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
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import typing
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Sequence

from ..protocol.completion import Completion
from ..storage import atomic_write

__all__ = ["Fallback", "ResponseCache", "cache_key", "completion_to_dict"]


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
