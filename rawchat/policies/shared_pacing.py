"""Pacing shared by many processes and hosts: the ``Pacer``'s buckets kept in Redis.

One organisation's rate limit is shared by every worker that uses its
keys (https://platform.openai.com/docs/guides/rate-limits); ten processes
with a ``Pacer`` each all believe they own the whole limit and together
draw 429s. ``SharedPacer`` keeps the request and token buckets in Redis
(https://redis.io/docs/latest/develop/interact/programmability/eval-intro/)
and has the ``Pacer``'s interface and rules: ``reserve`` queues a request
for its slot and returns the wait, and fails at once with
``PacingDeadlineError`` (reserving nothing) when that wait would pass the
deadline; ``observe`` tightens the buckets to the ``x-ratelimit-*``
headers; ``correct`` fixes a token estimate with the usage reported.

Each of those is one Lua script, so refill, check and take happen
atomically in Redis however many workers race. Scripts are sent by hash
(``EVALSHA``) and in full only when Redis does not know them yet
(``NoScriptError``: after a restart or a ``SCRIPT FLUSH``). Time is
Redis's own clock (``TIME``), the one clock all hosts share; a wait is a
duration, so the caller's ``now`` still times the sleep.

If Redis cannot be reached, the pacer falls back to an in-process
``Pacer`` at ``fallback_share`` of the limits (each worker then owns only
its share), logs that once, and tries Redis again every
``retry_interval`` seconds; when Redis answers, it is used again and that
is logged once too. The ``redis`` package is imported by this module only,
when a ``SharedPacer`` is made: ``pip install 'rawchat[redis]'``.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from typing import Any, List, Mapping, Optional

from ..errors import ConfigError, PacingDeadlineError
from ..protocol.ratelimit import parse_duration
from .pacing import Pacer

__all__ = ["SharedPacer"]

log = logging.getLogger("rawchat.pacing")

#: KEYS: the request bucket, the token bucket. ARGV: operation, now ("" for
#: Redis's clock), then per bucket its capacity and rate (0: no such limit),
#: then the operation's arguments. Levels are kept as "%.17g" strings, and
#: results returned as strings, since Redis turns a Lua number into an integer.
SCRIPT = """
local op = ARGV[1]
local now
if ARGV[2] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
else
  now = tonumber(ARGV[2])
end
local buckets = {}
for i = 1, 2 do
  local capacity = tonumber(ARGV[1 + 2 * i])
  local rate = tonumber(ARGV[2 + 2 * i])
  if capacity > 0 then
    local stored = redis.call('HMGET', KEYS[i], 'level', 'updated')
    local level = tonumber(stored[1]) or capacity
    local updated = tonumber(stored[2]) or now
    if now > updated then
      level = math.min(capacity, level + (now - updated) * rate)
      updated = now
    end
    buckets[i] = {key = KEYS[i], level = level, updated = updated,
                  capacity = capacity, rate = rate}
  end
end
local function save(b)
  redis.call('HSET', b.key, 'level', string.format('%.17g', b.level),
             'updated', string.format('%.17g', b.updated))
  -- Once full again a bucket is the same as no bucket: let it go.
  redis.call('EXPIRE', b.key, math.ceil((b.capacity - b.level) / b.rate) + 60)
end
if op == 'reserve' then
  local needs = {1, tonumber(ARGV[7])}
  local wait = 0
  for i, b in pairs(buckets) do
    local missing = needs[i] - b.level
    if missing > 0 and missing / b.rate > wait then wait = missing / b.rate end
  end
  if ARGV[8] ~= '' and wait > tonumber(ARGV[8]) then
    return {'deadline', string.format('%.17g', wait)}
  end
  for i, b in pairs(buckets) do
    b.level = b.level - needs[i]
    save(b)
  end
  return {'ok', string.format('%.17g', wait)}
elseif op == 'correct' then
  local b = buckets[2]
  if b then
    b.level = b.level - (tonumber(ARGV[8]) - tonumber(ARGV[7]))
    save(b)
  end
  return {'ok', '0'}
elseif op == 'observe' then
  for i, b in pairs(buckets) do
    local left = ARGV[5 + 2 * i]
    if left ~= '' then
      left = tonumber(left)
      local reset = tonumber(ARGV[6 + 2 * i])
      if left < b.level then b.level = left end
      if left <= 0 and reset > 0 then
        b.level = math.min(b.level, 1 - reset * b.rate)
      end
      save(b)
    end
  end
  return {'ok', '0'}
end
return redis.error_reply('unknown operation ' .. op)
"""

_SHA = hashlib.sha1(SCRIPT.encode("utf-8")).hexdigest()


def _import_redis() -> Any:
    try:
        import redis
    except ImportError:
        raise ConfigError(
            "SharedPacer needs the redis client, which is not installed",
            hint="pip install 'rawchat[redis]'",
        ) from None
    return redis


class SharedPacer:
    """A ``Pacer`` whose buckets live in Redis, shared by every process using ``redis_url``.

    ``requests_per_minute``, ``tokens_per_minute`` and ``burst`` are the
    ``Pacer``'s. ``fallback_share``: the part of the limits this process
    keeps to while Redis is unreachable (with N workers, ``1 / N`` stays
    under the limit). ``prefix`` names the Redis keys (one hash per key
    and bucket). ``server_time=False`` takes the caller's ``now`` instead
    of Redis's clock (all callers must then share one clock, as tests do).
    ``client`` is a ready ``redis.Redis`` to use instead of ``redis_url``.
    """

    def __init__(
        self,
        requests_per_minute: Optional[float] = None,
        tokens_per_minute: Optional[float] = None,
        *,
        redis_url: str = "redis://127.0.0.1:6379/0",
        burst: Optional[float] = None,
        fallback_share: float = 0.5,
        retry_interval: float = 5.0,
        prefix: str = "rawchat:pacer",
        server_time: bool = True,
        socket_timeout: float = 0.5,
        client: Any = None,
    ) -> None:
        if not 0 < fallback_share <= 1:
            raise ConfigError(
                f"fallback_share is {fallback_share!r}; it is a part of the limit",
                hint="give a number above 0 and at most 1 (1 / the number of workers)",
            )
        self._redis_module = _import_redis()
        self.requests_per_minute = requests_per_minute
        self.tokens_per_minute = tokens_per_minute
        self.burst = burst
        self.fallback_share = fallback_share
        self.retry_interval = retry_interval
        self.prefix = prefix
        self.server_time = server_time
        self._client = client or self._redis_module.Redis.from_url(
            redis_url, socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout
        )
        self.fallback = Pacer(
            requests_per_minute and requests_per_minute * fallback_share,
            tokens_per_minute and tokens_per_minute * fallback_share,
            burst=burst and max(1.0, burst * fallback_share),
        )
        self._lock = threading.Lock()
        self._retry_at: Optional[float] = None  # set while Redis is down
        #: How many calls went to the in-process fallback.
        self.fallback_calls = 0

    @property
    def degraded(self) -> bool:
        """Redis was unreachable at the last attempt: the fallback is pacing."""
        return self._retry_at is not None

    def reserve(
        self, key: str, tokens: int, now: float, *, time_left: Optional[float] = None
    ) -> float:
        """Reserve one request of about ``tokens`` tokens; return the seconds to wait.

        Raises ``PacingDeadlineError`` (reserving nothing) when the wait would
        not end before ``time_left`` runs out.
        """
        deadline = "" if time_left is None else repr(float(time_left))
        reply = self._run("reserve", key, now, [str(int(tokens)), deadline])
        if reply is None:
            return self.fallback.reserve(key, tokens, now, time_left=time_left)
        outcome, wait = reply
        if outcome == "deadline":
            raise PacingDeadlineError(
                f"the rate limit needs a {wait:.2f} s wait, more than the "
                f"{max(time_left or 0.0, 0):.2f} s this call has left",
                wait=wait,
                hint="raise the deadline, or send less: the limit is the provider's",
            )
        return wait

    def correct(self, key: str, estimated: int, actual: int, now: float) -> None:
        """The server reported ``actual`` tokens for a reservation of ``estimated``."""
        if self._run("correct", key, now, [str(int(estimated)), str(int(actual))]) is None:
            self.fallback.correct(key, estimated, actual, now)

    def observe(self, key: str, headers: Mapping[str, str], now: float) -> None:
        """Tighten the buckets to what ``x-ratelimit-*`` headers say is left."""
        args = []
        for name in ("requests", "tokens"):
            remaining = headers.get(f"x-ratelimit-remaining-{name}")
            reset = parse_duration(headers.get(f"x-ratelimit-reset-{name}") or "") or 0.0
            try:
                left = "" if remaining is None else repr(float(remaining))
            except ValueError:
                left = ""
            args += [left, repr(reset)]
        if self._run("observe", key, now, args) is None:
            self.fallback.observe(key, headers, now)

    def _run(self, op: str, key: str, now: float, args: List[str]) -> Optional[tuple]:
        """Run the script on ``key``'s buckets: ``(outcome, number)``, or None
        when Redis is unreachable and the fallback must answer."""
        with self._lock:
            if self._retry_at is not None and now < self._retry_at:
                self.fallback_calls += 1
                return None
        rpm, tpm = self.requests_per_minute or 0.0, self.tokens_per_minute or 0.0
        argv = [op, "" if self.server_time else repr(float(now))]
        argv += [
            repr(float(self.burst or rpm)),
            repr(rpm / 60.0),
            repr(float(tpm)),
            repr(tpm / 60.0),
        ]
        argv += args
        keys = [f"{self.prefix}:{key}:requests", f"{self.prefix}:{key}:tokens"]
        errors = self._redis_module.exceptions
        try:
            try:
                reply = self._client.evalsha(_SHA, 2, *keys, *argv)
            except errors.NoScriptError:
                reply = self._client.eval(SCRIPT, 2, *keys, *argv)
        except (errors.ConnectionError, errors.TimeoutError, OSError) as exc:
            with self._lock:
                if self._retry_at is None:
                    log.warning(
                        "rawchat: Redis is unreachable (%s); pacing in this process at "
                        "%g of the limit until it answers",
                        exc,
                        self.fallback_share,
                    )
                self._retry_at = now + self.retry_interval
                self.fallback_calls += 1
            return None
        with self._lock:
            if self._retry_at is not None:
                log.warning("rawchat: Redis answers again; pacing is shared again")
                self._retry_at = None
        outcome, number = reply
        return _text(outcome), float(_text(number))

    def __repr__(self) -> str:
        return (
            f"SharedPacer(requests_per_minute={self.requests_per_minute!r}, "
            f"tokens_per_minute={self.tokens_per_minute!r}, prefix={self.prefix!r})"
        )


def _text(value: Any) -> str:
    return value.decode("ascii") if isinstance(value, bytes) else str(value)
