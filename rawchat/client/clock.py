"""Time and chance, as one value a client is given.

The protocol layer never reads a clock: retry timing, pacing and the
breaker are told ``now`` and hand back how long to wait. The edge that
does wait needs four things, and takes them together so a test can swap
them all at once (a fake clock whose ``sleep`` moves its ``monotonic``
time, a fixed ``random`` for the jitter)::

    sleep       wait between attempts and for a pacing slot (``Client``)
    asleep      the same wait on the event loop (``AsyncClient``): awaited
    monotonic   elapsed time, timeouts and the call's deadline
    wall        Unix time, for ``Retry-After: <HTTP-date>`` and key cool-downs
    random      the full jitter between retries (``protocol/retry.py``)

``Deadline`` is when one call must be over, on that clock's monotonic time.
"""

from __future__ import annotations

import asyncio
import random as _random
import time
from dataclasses import dataclass
from typing import Awaitable, Callable, Optional

__all__ = ["Clock", "Deadline"]


@dataclass(frozen=True)
class Clock:
    """How a client waits, measures time and draws jitter; the defaults are the real ones."""

    sleep: Callable[[float], None] = time.sleep
    monotonic: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    random: Callable[[], float] = _random.random
    asleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    def deadline(self, seconds: Optional[float]) -> Deadline:
        """A deadline ``seconds`` from now (``None``: no deadline)."""
        if seconds is None:
            return Deadline()
        return Deadline(seconds, self.monotonic() + seconds)


@dataclass(frozen=True)
class Deadline:
    """When a whole call must be over: ``seconds`` after its start, ``at`` on the clock."""

    seconds: Optional[float] = None
    at: Optional[float] = None

    def left(self, now: float) -> Optional[float]:
        """Seconds left at ``now`` (negative once passed); ``None`` without a deadline."""
        return None if self.at is None else self.at - now
