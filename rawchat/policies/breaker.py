"""Circuit breaking: stop calling an endpoint that keeps failing, then probe it.

The classic three states (https://martinfowler.com/bliki/CircuitBreaker.html):

* **closed**: calls go through; outcomes land in a sliding window of the
  last ``window`` calls. When at least ``min_calls`` are in it and the
  share of failures reaches ``failure_rate``, the circuit opens.
* **open**: calls fail at once with ``CircuitOpenError`` (or go to a
  fallback) for ``cooldown`` seconds, sparing a struggling server.
* **half-open**: after the cool-down, up to ``probes`` calls go through.
  A success closes the circuit (with an empty window); a failure opens it
  again for another cool-down.

Failures are what the server is responsible for: 5xx, 429, timeouts and
connection errors. A 400 or 401 is the caller's problem and counts as a
success here, since the endpoint itself answered.

Pure: the caller passes ``now`` (monotonic seconds).
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Deque, Optional

from ..errors import CircuitOpenError

__all__ = ["CLOSED", "HALF_OPEN", "OPEN", "CircuitBreaker", "CircuitOpenError", "is_failure"]

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


def is_failure(status: Optional[int]) -> bool:
    """Whether an outcome counts against the endpoint (None: no response)."""
    return status is None or status == 429 or status >= 500


class CircuitBreaker:
    """One endpoint's breaker. Safe to share across threads."""

    def __init__(
        self,
        name: str = "endpoint",
        *,
        window: int = 20,
        min_calls: int = 5,
        failure_rate: float = 0.5,
        cooldown: float = 30.0,
        probes: int = 1,
    ) -> None:
        self.name = name
        self.min_calls = min_calls
        self.failure_rate = failure_rate
        self.cooldown = cooldown
        self.probes = probes
        self.state = CLOSED
        self.opened_at = 0.0
        self._outcomes: Deque[bool] = deque(maxlen=window)  # True: a failure
        self._probes_out = 0
        self._lock = threading.Lock()

    def before(self, now: float) -> None:
        """Call before each attempt: raises ``CircuitOpenError`` while open."""
        with self._lock:
            if self.state == OPEN:
                if now - self.opened_at < self.cooldown:
                    retry_in = self.cooldown - (now - self.opened_at)
                    raise CircuitOpenError(
                        f"the circuit for {self.name} is open after repeated failures; "
                        f"next probe in {retry_in:.1f} s",
                        retry_in=retry_in,
                        hint="the endpoint is failing; a fallback endpoint or model keeps "
                        "the service answering meanwhile",
                    )
                self.state, self._probes_out = HALF_OPEN, 0
            if self.state == HALF_OPEN:
                if self._probes_out >= self.probes:
                    raise CircuitOpenError(
                        f"the circuit for {self.name} is half-open and its probe is in flight",
                        retry_in=0.0,
                    )
                self._probes_out += 1

    def record(self, failed: bool, now: float) -> None:
        """Call after each attempt with whether it failed (see ``is_failure``)."""
        with self._lock:
            if self.state == HALF_OPEN:
                if failed:
                    self.state, self.opened_at = OPEN, now
                else:
                    self.state = CLOSED
                    self._outcomes.clear()
                return
            self._outcomes.append(failed)
            failures = sum(self._outcomes)
            if (
                self.state == CLOSED
                and len(self._outcomes) >= self.min_calls
                and failures / len(self._outcomes) >= self.failure_rate
            ):
                self.state, self.opened_at = OPEN, now
