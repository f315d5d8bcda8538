"""Hooks: callbacks on what a client does, for logs, metrics and tracing.

Five kinds of event, each an ``Event`` value:

=============  ================================================================
``request``    an attempt is about to be sent (``attempt``, ``url``, ``key``)
``response``   an attempt got a status (``status``, ``elapsed``)
``retry``      the policy will retry after ``delay`` seconds (``error``)
``error``      the call failed for good (``error``)
``degraded``   an answer came from a fallback endpoint or model, or the cache
=============  ================================================================

Feed them to statsd, Prometheus or OpenTelemetry::

    hooks = rawchat.Hooks()
    hooks.on("retry", lambda e: statsd.increment("llm.retry"))
    client = rawchat.Client(hooks=hooks)

A hook that raises is logged and ignored: observing must not break calling.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

__all__ = ["EVENTS", "Event", "Hooks"]

log = logging.getLogger("rawchat.policies.hooks")

EVENTS = ("request", "response", "retry", "error", "degraded")


@dataclass(frozen=True)
class Event:
    """What happened. Fields that do not apply to a kind are left empty."""

    kind: str
    method: str = ""
    url: str = ""
    model: str = ""
    attempt: int = 0
    key: str = ""  # fingerprint only
    status: Optional[int] = None
    elapsed: float = 0.0
    delay: float = 0.0
    error: Optional[BaseException] = None
    detail: str = ""


Handler = Callable[[Event], None]


class Hooks:
    """A registry of handlers per event kind."""

    def __init__(self) -> None:
        self._handlers: Dict[str, List[Handler]] = {kind: [] for kind in EVENTS}
        self._lock = threading.Lock()

    def on(self, kind: str, handler: Handler) -> Handler:
        """Call ``handler`` for each event of ``kind``; returns it (usable as a decorator)."""
        if kind not in self._handlers:
            raise ValueError(f"unknown event {kind!r}; known: {', '.join(EVENTS)}")
        with self._lock:
            self._handlers[kind].append(handler)
        return handler

    def emit(self, kind: str, **fields: object) -> None:
        handlers = self._handlers[kind]
        if not handlers:
            return
        event = Event(kind, **fields)  # type: ignore[arg-type]
        for handler in list(handlers):
            try:
                handler(event)
            except Exception:  # observing must not break calling
                log.exception("a %s hook raised", kind)
