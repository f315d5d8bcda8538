"""Pacing and key health shared by many processes and hosts, kept in Redis.

One organisation's rate limit is shared by every worker that uses its
keys (https://platform.openai.com/docs/guides/rate-limits); ten processes
with a ``Pacer`` each all believe they own the whole limit and together
draw 429s, and each ``KeyPool`` learns alone that a key was revoked or is
cooling down. Two policies keep that state in Redis
(https://redis.io/docs/latest/develop/interact/programmability/eval-intro/):

* ``SharedPacer`` keeps the request and token buckets, with the ``Pacer``'s
  interface and rules: ``reserve`` queues a request for its slot and
  returns the wait, and fails at once with ``PacingDeadlineError``
  (reserving nothing) when that wait would pass the deadline; ``observe``
  tightens the buckets to the ``x-ratelimit-*`` headers; ``correct`` fixes
  a token estimate with the usage reported.
* ``SharedKeyPool`` is a ``KeyPool`` whose cool-downs and retirements all
  workers see: when one worker gets a 429 with ``Retry-After`` on key A,
  every worker skips A until the same moment; when one gets a 401, 403 or
  ``insufficient_quota``, every worker takes A out of rotation. Selection,
  in-flight counts and expiry dates stay in each process. It is a
  ``KeyPool`` (not a store handed to one) so that ``Policies(keys=...)``
  takes it as it is, as ``Policies(pacer=...)`` takes a ``SharedPacer``
  in place of a ``Pacer``; ``shared()`` turns the ones of a ``Policies``
  value into their shared forms.

Each update is one Lua script, so read, check and write happen atomically
in Redis however many workers race. Scripts are sent by hash
(``EVALSHA``) and in full only when Redis does not know them yet
(``NoScriptError``: after a restart or a ``SCRIPT FLUSH``). Time is
Redis's own: the pacer's buckets refill on its clock (``TIME``), the one
clock all hosts share, and a cool-down is a key that expires after the
server's wait (``PX``), read back as the time it has left (``PTTL``). What
goes back to a caller is a duration, so the caller's ``now`` still times
the sleep. Keys are stored under a hash of the API key, never the key.

If Redis cannot be reached, each policy falls back to its in-process form
(the pacer at ``fallback_share`` of the limits, since each worker then
owns only its share; the pool to what this process has seen), logs that
once, and tries Redis again every ``retry_interval`` seconds; when Redis
answers, it is used again and that is logged once too. The ``redis``
package is imported by this module only, when a policy is made:
``pip install 'rawchat[redis]'``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import threading
from typing import TYPE_CHECKING, Any, List, Mapping, Optional, Sequence

from ..errors import ConfigError, PacingDeadlineError
from ..protocol.ratelimit import parse_duration
from .keys import KeyPool, KeySpec, PooledKey, verdict
from .keys import log as keys_log
from .pacing import Pacer

if TYPE_CHECKING:  # pragma: no cover
    from . import Policies

__all__ = ["SharedKeyPool", "SharedPacer", "shared"]

log = logging.getLogger("rawchat.pacing")

DEFAULT_URL = "redis://127.0.0.1:6379/0"

#: KEYS: the request bucket, the token bucket. ARGV: operation, now ("" for
#: Redis's clock), then per bucket its capacity and rate (0: no such limit),
#: then the operation's arguments. Levels are kept as "%.17g" strings, and
#: results returned as strings, since Redis turns a Lua number into an integer.
PACER_SCRIPT = """
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

#: KEYS: per API key, its cool-down and its retirement. ARGV: the operation,
#: then its arguments. ``read`` answers, per API key, the milliseconds of
#: cool-down left (negative: none) and why it was retired ("" : it is not).
KEYS_SCRIPT = """
local op = ARGV[1]
if op == 'read' then
  local health = {}
  for i = 1, #KEYS, 2 do
    health[#health + 1] = tostring(redis.call('PTTL', KEYS[i]))
    health[#health + 1] = redis.call('GET', KEYS[i + 1]) or ''
  end
  return health
elseif op == 'cool' then
  -- The last answer's wait counts, as in a KeyPool: a later 429 sets it again.
  local ms = tonumber(ARGV[2])
  if ms > 0 then
    redis.call('SET', KEYS[1], '1', 'PX', ms)
  else
    redis.call('DEL', KEYS[1])
  end
  return {'ok'}
elseif op == 'retire' then
  -- The first reason given stays, as in a KeyPool.
  if redis.call('SET', KEYS[1], ARGV[2], 'NX', 'EX', ARGV[3]) then
    return {'retired'}
  end
  return {'already'}
end
return redis.error_reply('unknown operation ' .. op)
"""


def _import_redis() -> Any:
    try:
        import redis
    except ImportError:
        raise ConfigError(
            "shared pacing and key health need the redis client, which is not installed",
            hint="pip install 'rawchat[redis]'",
        ) from None
    return redis


class RedisScript:
    """One Lua script run on one Redis, and what to do while Redis is away.

    ``run`` returns the script's reply, or None when Redis cannot be
    reached: the caller then answers in process. The first failure is
    logged (``down`` says what happens meanwhile), Redis is not asked again
    for ``retry_interval`` seconds of the caller's clock, and the first
    answer after that is logged too (``up``).
    """

    def __init__(
        self,
        script: str,
        *,
        redis_url: str,
        client: Any,
        socket_timeout: float,
        retry_interval: float,
        logger: logging.Logger,
        down: str,
        up: str,
    ) -> None:
        self.module = _import_redis()
        self.script = script
        self.sha = hashlib.sha1(script.encode("utf-8")).hexdigest()
        self.client = client or self.module.Redis.from_url(
            redis_url, socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout
        )
        self.retry_interval = retry_interval
        self.log, self.down, self.up = logger, down, up
        self._lock = threading.Lock()
        self._retry_at: Optional[float] = None  # set while Redis is away
        #: How many calls the caller answered in process.
        self.fallback_calls = 0

    @property
    def degraded(self) -> bool:
        return self._retry_at is not None

    def run(self, keys: Sequence[str], argv: Sequence[str], now: float) -> Optional[List[Any]]:
        with self._lock:
            if self._retry_at is not None and now < self._retry_at:
                self.fallback_calls += 1
                return None
        errors = self.module.exceptions
        try:
            try:
                reply = self.client.evalsha(self.sha, len(keys), *keys, *argv)
            except errors.NoScriptError:
                reply = self.client.eval(self.script, len(keys), *keys, *argv)
        except (errors.ConnectionError, errors.TimeoutError, OSError) as exc:
            with self._lock:
                if self._retry_at is None:
                    self.log.warning("rawchat: Redis is unreachable (%s); %s", exc, self.down)
                self._retry_at = now + self.retry_interval
                self.fallback_calls += 1
            return None
        with self._lock:
            if self._retry_at is not None:
                self.log.warning("rawchat: Redis answers again; %s", self.up)
                self._retry_at = None
        return [_text(value) for value in reply]


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
        redis_url: str = DEFAULT_URL,
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
        self.requests_per_minute = requests_per_minute
        self.tokens_per_minute = tokens_per_minute
        self.burst = burst
        self.fallback_share = fallback_share
        self.prefix = prefix
        self.server_time = server_time
        self.redis = RedisScript(
            PACER_SCRIPT,
            redis_url=redis_url,
            client=client,
            socket_timeout=socket_timeout,
            retry_interval=retry_interval,
            logger=log,
            down=f"pacing in this process at {fallback_share:g} of the limit until it answers",
            up="pacing is shared again",
        )
        self.fallback = Pacer(
            requests_per_minute and requests_per_minute * fallback_share,
            tokens_per_minute and tokens_per_minute * fallback_share,
            burst=burst and max(1.0, burst * fallback_share),
        )

    @property
    def degraded(self) -> bool:
        """Redis was unreachable at the last attempt: the fallback is pacing."""
        return self.redis.degraded

    @property
    def fallback_calls(self) -> int:
        """How many calls went to the in-process fallback."""
        return self.redis.fallback_calls

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
        rpm, tpm = self.requests_per_minute or 0.0, self.tokens_per_minute or 0.0
        argv = [op, "" if self.server_time else repr(float(now))]
        argv += [
            # A burst alone is no request limit, as in a Pacer.
            repr(float(self.burst or rpm) if rpm else 0.0),
            repr(rpm / 60.0),
            repr(float(tpm)),
            repr(tpm / 60.0),
        ]
        argv += args
        keys = [f"{self.prefix}:{key}:requests", f"{self.prefix}:{key}:tokens"]
        reply = self.redis.run(keys, argv, now)
        if reply is None:
            return None
        outcome, number = reply
        return outcome, float(number)

    def __repr__(self) -> str:
        return (
            f"SharedPacer(requests_per_minute={self.requests_per_minute!r}, "
            f"tokens_per_minute={self.tokens_per_minute!r}, prefix={self.prefix!r})"
        )


class SharedKeyPool(KeyPool):
    """A ``KeyPool`` whose cool-downs and retirements are kept in Redis for every process.

    ``keys`` and ``selection`` are the ``KeyPool``'s; each process still
    picks among the usable keys by itself. Before each pick the pool reads
    every key's health from Redis, in one script; each outcome is written
    there as well as here. Redis remembers a retirement for
    ``retired_for`` seconds (a day): a process started meanwhile skips the
    key from its first request, and a process that saw it retired keeps it
    out of rotation, as a ``KeyPool`` does. While Redis is unreachable the
    pool goes on with what this process sees. ``prefix`` names the Redis
    keys; ``client`` is a ready ``redis.Redis`` to use instead of ``redis_url``.
    """

    def __init__(
        self,
        keys: Sequence[KeySpec],
        *,
        selection: str = "round_robin",
        redis_url: str = DEFAULT_URL,
        retired_for: float = 86400.0,
        retry_interval: float = 5.0,
        prefix: str = "rawchat:keys",
        socket_timeout: float = 0.5,
        client: Any = None,
    ) -> None:
        if not retired_for >= 1:
            raise ConfigError(
                f"retired_for is {retired_for!r}; Redis keeps a retirement for whole seconds",
                hint="give at least 1 second",
            )
        self.retired_for = retired_for
        self.prefix = prefix
        self.redis = RedisScript(
            KEYS_SCRIPT,
            redis_url=redis_url,
            client=client,
            socket_timeout=socket_timeout,
            retry_interval=retry_interval,
            logger=keys_log,
            down="key health is kept in this process until it answers",
            up="key health is shared again",
        )
        super().__init__(keys, selection=selection)

    @property
    def degraded(self) -> bool:
        """Redis was unreachable at the last attempt: key health is this process's."""
        return self.redis.degraded

    def _name(self, pooled: PooledKey, what: str) -> str:
        digest = hashlib.sha256(pooled.key.encode("utf-8")).hexdigest()[:24]
        return f"{self.prefix}:{digest}:{what}"

    def acquire(self, now: float, wall_now: float) -> PooledKey:
        """A usable key, by what every process has seen; counted as in flight here."""
        pooled = self.keys
        names = [self._name(p, what) for p in pooled for what in ("cooling", "retired")]
        health = self.redis.run(names, ["read"], now)
        if health is not None:
            learned = []
            with self._lock:
                for number, key in enumerate(pooled):
                    left, reason = int(health[2 * number]), health[2 * number + 1]
                    # Redis holds every cool-down set while it answered, and the newer
                    # ones; one seen here while it was away is lost (one more 429).
                    key.cooling_until = now + left / 1000.0 if left > 0 else float("-inf")
                    if reason and key.retired is None:
                        key.retired = reason
                        learned.append(key)
            for key in learned:
                keys_log.warning(
                    "key %s taken out of rotation by another process: %s",
                    key.fingerprint,
                    key.retired,
                )
        return super().acquire(now, wall_now)

    def release(
        self,
        pooled: PooledKey,
        now: float,
        *,
        status: Optional[int] = None,
        code: Optional[str] = None,
        retry_after: Optional[float] = None,
    ) -> None:
        """Record the outcome of a request made with ``pooled``, here and in Redis."""
        super().release(pooled, now, status=status, code=code, retry_after=retry_after)
        reason, cooldown = verdict(status, code, retry_after)
        if reason is not None:
            ttl = str(math.ceil(self.retired_for))
            self.redis.run([self._name(pooled, "retired")], ["retire", reason, ttl], now)
        elif cooldown is not None:
            milliseconds = str(max(0, math.ceil(cooldown * 1000)))
            self.redis.run([self._name(pooled, "cooling")], ["cool", milliseconds], now)

    def __repr__(self) -> str:
        return f"SharedKeyPool({len(self.keys)} keys, prefix={self.prefix!r})"


def shared(policies: Policies, redis_url: str, *, fallback_share: float = 0.5) -> Policies:
    """``policies`` with its ``Pacer`` and ``KeyPool`` kept in Redis at ``redis_url``.

    Their settings carry over (limits and burst; keys, expiry dates and
    selection); a policy that is already shared, or absent, stays as it is.
    """
    pacer, keys = policies.pacer, policies.keys
    if isinstance(pacer, Pacer):
        pacer = SharedPacer(
            pacer.requests_per_minute,
            pacer.tokens_per_minute,
            burst=pacer.burst,
            redis_url=redis_url,
            fallback_share=fallback_share,
        )
    if isinstance(keys, KeyPool) and not isinstance(keys, SharedKeyPool):
        specs = [(p.key, p.expires) for p in keys.keys]
        keys = SharedKeyPool(specs, selection=keys.selection, redis_url=redis_url)
    return dataclasses.replace(policies, pacer=pacer, keys=keys)


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
