"""A pool of API keys: failover and key health, not a way around rate limits.

Rate limits belong to the organization or project, not to the key
(https://platform.openai.com/docs/guides/rate-limits), and providers' terms
forbid circumventing them. The pool exists so that one revoked, expired or
quota-exhausted key does not stop a service, and so keys can be rotated
with zero failed requests: add the new key, retire the old one, while the
client keeps running.

* Selection: ``round_robin``, ``least_recently_used``, or ``fewest_in_flight``.
* A key that got 429 cools down for the server's ``Retry-After``.
* A key that got 401 or 403, or ``insufficient_quota``, is taken out of
  rotation, with a warning that names its fingerprint (last 4 characters).
* A key past its expiry date is never used.
* ``replace()`` swaps the key set at run time (``reload_env()``,
  ``reload_file()``): requests in flight finish on the key they had.

``OPENAI_API_KEYS`` holds several keys, comma separated; a key may carry an
expiry date after ``@``: ``sk-a...,sk-b...@2026-12-31``.

Pure: the caller passes the time (monotonic for cool-downs, Unix time for
expiry dates).
"""

from __future__ import annotations

import datetime
import logging
import threading
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from ..errors import ConfigError, NoKeyAvailableError
from ..protocol.http import fingerprint
from ..protocol.settings import clean_api_key

__all__ = ["KeyPool", "NoKeyAvailableError", "PooledKey", "parse_keys", "verdict"]

log = logging.getLogger("rawchat.policies.keys")

SELECTIONS = ("round_robin", "least_recently_used", "fewest_in_flight")
DEFAULT_COOLDOWN = 1.0


@dataclass
class PooledKey:
    """One key and its health. The key itself never appears in ``repr``."""

    key: str = field(repr=False)
    expires: Optional[float] = None  # Unix time
    in_flight: int = 0
    requests: int = 0
    last_used: float = float("-inf")
    cooling_until: float = float("-inf")
    retired: Optional[str] = None  # why, once out of rotation

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.key)


KeySpec = Union[str, Tuple[str, Optional[float]]]


def parse_keys(text: str, source: str = "OPENAI_API_KEYS") -> List[Tuple[str, Optional[float]]]:
    """``"k1,k2@2026-12-31"`` (commas or newlines) -> ``[(k1, None), (k2, expiry)]``."""
    keys = []
    for number, item in enumerate(text.replace("\n", ",").split(","), 1):
        item = item.strip()
        if not item or item.startswith("#"):
            continue
        key, _, date = item.partition("@")
        expires = None
        if date:
            try:
                day = datetime.datetime.strptime(date.strip(), "%Y-%m-%d")
            except ValueError:
                raise ConfigError(
                    f"key {number} in {source} has an expiry {date!r} that is not YYYY-MM-DD"
                ) from None
            expires = day.replace(tzinfo=datetime.timezone.utc).timestamp() + 86400  # end of day
        keys.append((clean_api_key(key, f"{source} (key {number})"), expires))
    if not keys:
        raise ConfigError(f"{source} holds no keys", hint="separate keys with commas")
    return keys


def verdict(
    status: Optional[int], code: Optional[str], retry_after: Optional[float]
) -> Tuple[Optional[str], Optional[float]]:
    """What an answer says about its key: ``(why it leaves rotation, seconds to cool down)``.

    401, 403 and ``insufficient_quota`` (which comes with a 429) retire the
    key; any other 429 cools it down for the server's ``Retry-After``.
    """
    if status in (401, 403) or code == "insufficient_quota":
        return ("out of quota" if code == "insufficient_quota" else f"refused ({status})"), None
    if status == 429:
        return None, retry_after if retry_after is not None else DEFAULT_COOLDOWN
    return None, None


class KeyPool:
    """Hands out keys, learns from their outcomes. Safe to share across threads."""

    def __init__(self, keys: Sequence[KeySpec], *, selection: str = "round_robin") -> None:
        if selection not in SELECTIONS:
            raise ConfigError(f"selection must be one of {SELECTIONS}, got {selection!r}")
        self.selection = selection
        self._lock = threading.Lock()
        self._keys: List[PooledKey] = []
        self._next = 0
        self.replace(keys)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str], variable: str = "OPENAI_API_KEYS", **kw: str
    ) -> KeyPool:
        return cls(parse_keys(environ.get(variable, ""), variable), **kw)

    @property
    def keys(self) -> List[PooledKey]:
        with self._lock:
            return list(self._keys)

    def replace(self, keys: Iterable[KeySpec]) -> None:
        """Use exactly these keys from now on; health of kept keys is kept."""
        # Every key is cleaned and checked as Client(api_key=...) checks one:
        # a stray newline would otherwise reach http.client, whose error
        # quotes the whole header, key included.
        specs = []
        for number, spec in enumerate(keys, 1):
            key, expires = (spec, None) if isinstance(spec, str) else (spec[0], spec[1])
            if not isinstance(key, str):
                raise ConfigError(f"key {number} of the pool is a {type(key).__name__}, not text")
            specs.append((clean_api_key(key, f"the key pool (key {number})"), expires))
        if not specs:
            raise ConfigError("a key pool needs at least one key")
        with self._lock:
            old = {p.key: p for p in self._keys}
            self._keys = []
            for key, expires in specs:
                pooled = old.get(key) or PooledKey(key)
                pooled.expires = expires
                self._keys.append(pooled)
            removed = [p for k, p in old.items() if k not in {s[0] for s in specs}]
        for pooled in removed:
            log.info("key %s removed from the pool", pooled.fingerprint)

    def reload_env(self, environ: Mapping[str, str], variable: str = "OPENAI_API_KEYS") -> None:
        self.replace(parse_keys(environ.get(variable, ""), variable))

    def reload_file(self, path: str) -> None:
        """Keys from a file, one per line (``#`` comments allowed)."""
        with open(path, encoding="utf-8") as source:
            self.replace(parse_keys(source.read(), path))

    def acquire(self, now: float, wall_now: float) -> PooledKey:
        """A usable key, counted as in flight until ``release``."""
        with self._lock:
            usable = [
                p
                for p in self._keys
                if p.retired is None and (p.expires is None or wall_now < p.expires)
                and p.cooling_until <= now
            ]  # fmt: skip
            if not usable:
                raise self._none_available(now, wall_now)
            if self.selection == "least_recently_used":
                chosen = min(usable, key=lambda p: p.last_used)
            elif self.selection == "fewest_in_flight":
                chosen = min(usable, key=lambda p: (p.in_flight, p.last_used))
            else:
                order = self._keys[self._next :] + self._keys[: self._next]
                chosen = next(p for p in order if p in usable)
                self._next = (self._keys.index(chosen) + 1) % len(self._keys)
            chosen.in_flight += 1
            chosen.requests += 1
            chosen.last_used = now
            return chosen

    def release(
        self,
        pooled: PooledKey,
        now: float,
        *,
        status: Optional[int] = None,
        code: Optional[str] = None,
        retry_after: Optional[float] = None,
    ) -> None:
        """Record the outcome of a request made with ``pooled``."""
        reason, cooldown = verdict(status, code, retry_after)
        with self._lock:
            pooled.in_flight = max(0, pooled.in_flight - 1)
            if reason is not None and pooled.retired is None:
                pooled.retired = reason
                log.warning("key %s taken out of rotation: %s", pooled.fingerprint, reason)
            elif cooldown is not None:
                pooled.cooling_until = now + cooldown

    def _none_available(self, now: float, wall_now: float) -> NoKeyAvailableError:
        cooling = [
            p.cooling_until - now for p in self._keys if p.retired is None and p.cooling_until > now
        ]
        states = ", ".join(
            f"{p.fingerprint}: "
            + (
                p.retired
                or (
                    "expired" if p.expires is not None and wall_now >= p.expires else "cooling down"
                )
            )
            for p in self._keys
        )
        return NoKeyAvailableError(
            f"no API key is usable ({states or 'the pool is empty'})",
            retry_in=min(cooling) if cooling else None,
            hint="add a working key (KeyPool.replace / reload_env) or wait for the cool-down",
        )

    def status(self) -> Dict[str, str]:
        """Each key's state, by fingerprint, for logs and dashboards."""
        with self._lock:
            return {p.fingerprint: p.retired or "active" for p in self._keys}
