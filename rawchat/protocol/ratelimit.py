"""Rate limits as servers state them, and the token bucket that models one.

Providers limit requests and tokens per minute and say how much is left in
every response (https://platform.openai.com/docs/guides/rate-limits):
``x-ratelimit-remaining-requests``, ``x-ratelimit-reset-requests`` (a
duration such as ``6m0s``, ``1s``, ``250ms``), and the same for tokens.
``parse_duration`` reads those durations; ``TokenBucket`` is the model both
sides use, the simulator to enforce a limit and the ``Pacer`` to stay under
one. Pure: the caller passes ``now`` (monotonic seconds).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

__all__ = ["TokenBucket", "parse_duration"]

_DURATION = re.compile(
    r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+(?:\.\d+)?)ms)?\Z"
)


def parse_duration(text: str) -> Optional[float]:
    """A duration of an ``x-ratelimit-reset-*`` header in seconds; None if unreadable.

    >>> parse_duration("6m0s"), parse_duration("1s"), parse_duration("250ms")
    (360.0, 1.0, 0.25)
    """
    text = text.strip()
    if not text:
        return None
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return float(text)  # some servers send bare seconds
    match = _DURATION.match(text)
    if match is None or not any(match.groups()):
        return None
    hours, minutes, seconds, millis = (float(g) if g else 0.0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds + millis / 1000


@dataclass
class TokenBucket:
    """``capacity`` units, refilled at ``rate`` per second. ``level`` may go
    negative: that is the queue of reservations already promised."""

    capacity: float
    rate: float
    level: float = 0.0
    updated: float = 0.0

    def __post_init__(self) -> None:
        self.level = self.capacity

    def refill(self, now: float) -> None:
        if now > self.updated:
            self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
            self.updated = now

    def wait_for(self, amount: float, now: float) -> float:
        """Seconds until ``amount`` would be available, without taking it."""
        self.refill(now)
        missing = amount - self.level
        return 0.0 if missing <= 0 else missing / self.rate

    def take(self, amount: float, now: float) -> None:
        self.refill(now)
        self.level -= amount
