"""When to try again, and how long to wait first: a pure retry policy.

``RetryPolicy.decide()`` looks at the outcome of one attempt and returns a
``Decision``: retry after ``delay`` seconds, or stop and say why. It never
sleeps and never reads a clock or a random source; the caller passes the
random number, the wall-clock time (for ``Retry-After`` dates) and the time
left before its deadline, then sleeps itself. So the schedule is a table
you can test, print, and plot.

What is retried: 408 Request Timeout, 409 Conflict, 429 Too Many Requests
(but not ``insufficient_quota``: an empty account does not refill by
waiting), every 5xx, and connection failures. The server can overrule the
statuses with ``x-should-retry: true`` or ``false``, as OpenAI's own SDKs
honour.

Connection failures come in two kinds, told apart by the caller
(``APIConnectionError.request_sent``). A connection that was never made
(DNS, refused, connect timeout, TLS, proxy) never carried the request:
retrying it cannot run the request twice, so it is always retried. A
failure after the request went out (a read timeout, a connection reset
while waiting for the answer, a response that broke off) may mean the
server received the request and is working on it, or has finished. Those
are retried too by default (``resend=True``): a model call that stalls is
usually worth one more try, and the price is that the server may see the
request twice, and bill both. ``resend=False`` stops there, for requests
that must not run twice or are too dear to pay for twice.

How long: the server's word first, ``retry-after-ms`` (milliseconds, an
OpenAI extension) then ``Retry-After`` (seconds or an HTTP-date, RFC 9110
section 10.2.3, https://www.rfc-editor.org/rfc/rfc9110#name-retry-after).
A server wait above ``max_server_wait`` is not slept through: the error is
raised with the wait on it, so the caller can decide. Otherwise
exponential backoff: retry ``n`` (from 1) waits up to::

    min(max_delay, initial_delay * multiplier ** (n - 1))

which with the defaults (0.5, 2, 8) is 0.5, 1, 2, 4, 8, 8, ... seconds.
Jitter spreads clients that failed together so they do not retry together
(https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/):
``"full"`` waits ``random * cap``, ``"equal"`` waits ``cap/2 + random * cap/2``,
``"none"`` waits ``cap``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from ..errors import ConfigError

__all__ = ["RETRYABLE_STATUSES", "Decision", "RetryPolicy", "parse_http_date", "server_wait"]

RETRYABLE_STATUSES = frozenset({408, 409, 429})
JITTERS = ("full", "equal", "none")
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?\Z")


def server_wait(headers: Mapping[str, str], now: Optional[float] = None) -> Optional[float]:
    """Seconds the server asked us to wait, or ``None`` if it did not say.

    ``headers`` must look names up case-insensitively (``wire.Headers``).
    ``now`` (Unix time) is needed only for the HTTP-date form of
    ``Retry-After``; without it a date is ignored.
    """
    value = headers.get("retry-after-ms")
    if value is not None and _NUMBER.match(value.strip()):
        return float(value) / 1000.0
    value = headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    # delay-seconds is 1*DIGIT; some servers send a fraction. float() alone
    # would also take "+5", "1_000", "inf" and non-ASCII digits.
    if _NUMBER.match(value):
        return float(value)
    if now is None:
        return None
    when = parse_http_date(value)
    if when is None:
        return None
    return max(0.0, when - now)


# RFC 9110 section 5.6.7: a recipient accepts all three forms of HTTP-date.
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTH = "(" + "|".join(_MONTHS) + ")"
_TIME = r"([0-9]{2}):([0-9]{2}):([0-9]{2})"
# Only GMT is allowed; some servers write it as an RFC 5322 zone, always zero.
_GMT = "(?:GMT|UTC|[+-]0000)"
_HTTP_DATES = (
    # IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT
    (re.compile(rf"[A-Z][a-z]{{2}}, ([0-9]{{2}}) {_MONTH} ([0-9]{{4}}) {_TIME} {_GMT}\Z"), "dmy"),
    # obsolete RFC 850 form: Sunday, 06-Nov-94 08:49:37 GMT
    (re.compile(rf"[A-Z][a-z]+, ([0-9]{{2}})-{_MONTH}-([0-9]{{2}}) {_TIME} GMT\Z"), "dmy"),
    # obsolete asctime form: Sun Nov  6 08:49:37 1994
    (re.compile(rf"[A-Z][a-z]{{2}} {_MONTH} ([ 0-9][0-9]) {_TIME} ([0-9]{{4}})\Z"), "mdy"),
)


def parse_http_date(text: str) -> Optional[float]:
    """An HTTP-date (RFC 9110 section 5.6.7) as Unix time; ``None`` if it is not one.

    >>> parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT")
    784111777.0
    """
    for pattern, order in _HTTP_DATES:
        match = pattern.match(text)
        if match is None:
            continue
        if order == "dmy":
            day, month, year, hour, minute, second = match.groups()
        else:
            month, day, hour, minute, second, year = match.groups()
        full_year = int(year)
        if len(year) == 2:  # RFC 850's two digits: this century, or the last one
            full_year += 2000 if full_year < 70 else 1900
        days = _days_since_epoch(full_year, _MONTHS.index(month) + 1, int(day))
        if not (1 <= int(day) <= 31 and int(hour) < 24 and int(minute) < 60 and int(second) < 61):
            return None
        return float(days * 86400 + int(hour) * 3600 + int(minute) * 60 + int(second))
    return None


def _days_since_epoch(year: int, month: int, day: int) -> int:
    """Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant's days_from_civil)."""
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468


@dataclass(frozen=True)
class Decision:
    """What to do after a failed attempt.

    ``delay`` is meaningful only when ``retry`` is true. ``server_wait`` is
    the wait the server asked for (also when it was too long to honour).
    """

    retry: bool
    delay: float = 0.0
    reason: str = ""
    server_wait: Optional[float] = None


@dataclass(frozen=True)
class RetryPolicy:
    """How many times to retry, and the backoff between tries.

    ``max_retries``: retries after the first attempt (2 means up to 3
    requests). ``initial_delay``, ``multiplier``, ``max_delay``: the
    backoff cap sequence above. ``jitter``: ``"full"``, ``"equal"`` or
    ``"none"``. ``max_server_wait``: the longest server-requested wait to
    sleep through. ``resend``: whether to retry a connection failure after
    the request was sent, when the server may have received it (see above).
    """

    max_retries: int = 2
    initial_delay: float = 0.5
    max_delay: float = 8.0
    multiplier: float = 2.0
    jitter: str = "full"
    max_server_wait: float = 60.0
    resend: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.resend, bool):
            raise ConfigError(f"resend must be True or False, got {self.resend!r}")
        retries = self.max_retries
        if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 100:
            raise ConfigError(
                f"max_retries must be a whole number from 0 to 100, got {retries!r}",
                hint="2 means up to 3 requests; 0 turns retries off",
            )
        if self.jitter not in JITTERS:
            raise ConfigError(f"jitter must be one of {JITTERS}, got {self.jitter!r}")
        for name in ("initial_delay", "max_delay", "multiplier", "max_server_wait"):
            value = getattr(self, name)
            if not _finite_number(value) or value < (1 if name == "multiplier" else 0):
                least = "1" if name == "multiplier" else "0"
                raise ConfigError(f"{name} must be a finite number >= {least}, got {value!r}")

    def backoff(self, retry_number: int, rand: float = 1.0) -> float:
        """The wait before retry ``retry_number`` (1-based); ``rand`` in [0, 1).

        >>> policy = RetryPolicy(jitter="none")
        >>> [policy.backoff(n) for n in range(1, 7)]
        [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
        >>> RetryPolicy(jitter="full").backoff(3, rand=0.25)
        0.5
        """
        exponent = min(retry_number - 1, 64)  # beyond this the cap has long won
        cap = min(self.max_delay, self.initial_delay * self.multiplier**exponent)
        if self.jitter == "full":
            return cap * rand
        if self.jitter == "equal":
            return cap / 2 + cap / 2 * rand
        return cap

    def retryable(
        self,
        status: Optional[int],
        headers: Mapping[str, str],
        code: Optional[str] = None,
        *,
        request_sent: bool = True,
    ) -> Decision:
        """Classification alone: may this outcome be retried at all?

        ``status`` is ``None`` for a connection failure or timeout;
        ``request_sent`` is then whether the server may have received the
        request (``False`` only when the connection was never made).
        """
        should = (headers.get("x-should-retry") or "").strip().lower()
        if should == "false":
            return Decision(False, reason="the server said x-should-retry: false")
        if should == "true":
            return Decision(True, reason="the server said x-should-retry: true")
        if status is None:
            if not request_sent:
                return Decision(True, reason="the connection was never made")
            if self.resend:
                return Decision(True, reason="connection failed")
            return Decision(False, reason="the server may have received the request; resend=False")
        if status == 429 and code == "insufficient_quota":
            return Decision(False, reason="insufficient_quota is not fixed by waiting")
        if status in RETRYABLE_STATUSES or status >= 500:
            return Decision(True, reason=f"status {status}")
        return Decision(False, reason=f"status {status} is not retryable")

    def decide(
        self,
        retries_taken: int,
        *,
        status: Optional[int] = None,
        headers: Optional[Mapping[str, str]] = None,
        code: Optional[str] = None,
        rand: float = 1.0,
        now: Optional[float] = None,
        time_left: Optional[float] = None,
        request_sent: bool = True,
    ) -> Decision:
        """Retry or stop after an attempt that failed.

        ``retries_taken``: retries already made (0 after the first attempt).
        ``rand``: a random number in [0, 1) for the jitter. ``now``: Unix
        time, for ``Retry-After`` dates. ``time_left``: seconds until the
        caller's deadline, which a retry must not oversleep.
        ``request_sent``: for a connection failure (``status`` ``None``),
        whether the server may have received the request.
        """
        headers = headers if headers is not None else {}
        verdict = self.retryable(status, headers, code, request_sent=request_sent)
        if not verdict.retry:
            return verdict
        if retries_taken >= self.max_retries:
            return Decision(False, reason=f"gave up after {retries_taken} retries")
        wait = server_wait(headers, now) if status is not None else None
        if wait is not None and wait > self.max_server_wait:
            return Decision(
                False,
                reason=f"the server asked to wait {wait:g} s, over the "
                f"{self.max_server_wait:g} s this policy sleeps through",
                server_wait=wait,
            )
        delay = wait if wait is not None else self.backoff(retries_taken + 1, rand)
        if time_left is not None and delay >= time_left:
            return Decision(
                False,
                reason=f"a {delay:.2f} s wait would pass the deadline "
                f"({max(time_left, 0.0):.2f} s left)",
                server_wait=wait,
            )
        return Decision(True, delay=delay, reason=verdict.reason, server_wait=wait)


def _finite_number(value: Any) -> bool:
    # NaN fails every comparison, so `value == value` rules it out.
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and value == value
        and abs(value) != float("inf")
    )
