"""Client-side pacing: stay under the rate limits instead of running into them.

Providers limit requests and tokens per minute and say how much is left in
every response (https://platform.openai.com/docs/guides/rate-limits):
``x-ratelimit-remaining-requests``, ``x-ratelimit-reset-requests`` (a
duration such as ``6m0s``, ``1s``, ``250ms``), and the same for tokens.

* ``Pacer`` holds a token bucket per key for requests/min and one for
  tokens/min. A request reserves its slot and is told how long to wait;
  reservations queue, first come first served. A request whose wait would
  pass its deadline fails at once (``PacingDeadlineError``) instead of
  waiting past its SLA. The headers tighten the buckets, and the usage the
  server reports corrects the token estimate a reservation was made with.
* ``RetryBudget`` stops retry storms, as gRPC's retry throttling does
  (https://github.com/grpc/proposal/blob/master/A6-client-retries.md):
  every failure costs a token, every success earns a fraction of one, and
  retries are allowed only while more than half the tokens are left.

Pure: the caller passes ``now`` (monotonic seconds).
"""

from __future__ import annotations

import threading
from typing import Dict, Mapping, Optional

from ..errors import PacingDeadlineError
from ..protocol.ratelimit import TokenBucket, parse_duration

__all__ = ["Pacer", "RetryBudget"]


class Pacer:
    """Request and token buckets per key; headers and usage keep them honest.

    The request bucket holds ``burst`` requests (default: a minute's worth);
    a small burst spreads requests evenly instead of sending a minute's
    worth at once.
    """

    def __init__(
        self,
        requests_per_minute: Optional[float] = None,
        tokens_per_minute: Optional[float] = None,
        *,
        burst: Optional[float] = None,
    ) -> None:
        self.requests_per_minute = requests_per_minute
        self.tokens_per_minute = tokens_per_minute
        self.burst = burst
        self._lock = threading.Lock()
        self._buckets: Dict[str, Dict[str, TokenBucket]] = {}

    def _for(self, key: str, now: float) -> Dict[str, TokenBucket]:
        buckets = self._buckets.get(key)
        if buckets is None:
            buckets = {}
            if self.requests_per_minute:
                rpm = self.requests_per_minute
                buckets["requests"] = TokenBucket(self.burst or rpm, rpm / 60.0, updated=now)
            if self.tokens_per_minute:
                tpm = self.tokens_per_minute
                buckets["tokens"] = TokenBucket(tpm, tpm / 60.0, updated=now)
            self._buckets[key] = buckets
        return buckets

    def reserve(
        self, key: str, tokens: int, now: float, *, time_left: Optional[float] = None
    ) -> float:
        """Reserve one request of about ``tokens`` tokens; return the seconds to wait.

        Raises ``PacingDeadlineError`` (reserving nothing) when the wait would
        not end before ``time_left`` runs out.
        """
        with self._lock:
            buckets = self._for(key, now)
            needs = {"requests": 1.0, "tokens": float(tokens)}
            wait = max(
                (bucket.wait_for(needs[name], now) for name, bucket in buckets.items()), default=0.0
            )
            if time_left is not None and wait > time_left:
                raise PacingDeadlineError(
                    f"the rate limit needs a {wait:.2f} s wait, more than the "
                    f"{max(time_left, 0):.2f} s this call has left",
                    wait=wait,
                    hint="raise the deadline, or send less: the limit is the provider's",
                )
            for name, bucket in buckets.items():
                bucket.take(needs[name], now)
            return wait

    def correct(self, key: str, estimated: int, actual: int, now: float) -> None:
        """The server reported ``actual`` tokens for a reservation of ``estimated``."""
        with self._lock:
            bucket = self._for(key, now).get("tokens")
            if bucket is not None:
                bucket.refill(now)
                bucket.level -= actual - estimated

    def observe(self, key: str, headers: Mapping[str, str], now: float) -> None:
        """Tighten the buckets to what ``x-ratelimit-*`` headers say is left."""
        with self._lock:
            buckets = self._for(key, now)
            for name, bucket in buckets.items():
                remaining = headers.get(f"x-ratelimit-remaining-{name}")
                reset = parse_duration(headers.get(f"x-ratelimit-reset-{name}") or "")
                if remaining is None:
                    continue
                try:
                    left = float(remaining)
                except ValueError:
                    continue
                bucket.refill(now)
                if left < bucket.level:
                    bucket.level = left
                if left <= 0 and reset:
                    # Empty until the reset: a debt that one request's worth of
                    # refill repays exactly then.
                    bucket.level = min(bucket.level, 1.0 - reset * bucket.rate)


class RetryBudget:
    """Retries allowed only while most recent calls succeed.

    ``max_tokens`` tokens to start; a failure costs 1, a success earns
    ``token_ratio``; retrying needs more than ``max_tokens / 2``.
    """

    def __init__(self, max_tokens: float = 10.0, token_ratio: float = 0.1) -> None:
        self.max_tokens = max_tokens
        self.token_ratio = token_ratio
        self.tokens = max_tokens
        self._lock = threading.Lock()

    def record(self, success: bool) -> None:
        with self._lock:
            if success:
                self.tokens = min(self.max_tokens, self.tokens + self.token_ratio)
            else:
                self.tokens = max(0.0, self.tokens - 1.0)

    def allows_retry(self) -> bool:
        with self._lock:
            return self.tokens > self.max_tokens / 2
