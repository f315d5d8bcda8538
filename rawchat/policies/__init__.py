"""Policies: what decides around each attempt, apart from the wire itself.

Each policy is a small object that keeps its own state behind a lock and is
told the time instead of reading a clock, so its tests are tables:

=====================  ==================================================
``RetryPolicy``        when to try again and how long to wait
                       (``rawchat.protocol.retry``: it is pure)
``KeyPool``            several keys: failover and key health (``keys.py``)
``Pacer``              stay under requests/tokens per minute (``pacing.py``)
``RetryBudget``        no retry storms (``pacing.py``)
``CircuitBreaker``     stop calling an endpoint that keeps failing (``breaker.py``)
``Fallback``           another model or endpoint when this one fails (``fallback.py``)
``ResponseCache``      answers to repeat, marked degraded, when all is down
``Hooks``              callbacks on request, response, retry, error (``hooks.py``)
``UsageMeter``         tokens, cost and budgets (``usage.py``)
=====================  ==================================================

A client takes them as one frozen value, every field optional::

    from rawchat.policies import KeyPool, Pacer, Policies

    client = rawchat.Client(policies=Policies(keys=KeyPool(["sk-a...", "sk-b..."]),
                                              pacer=Pacer(requests_per_minute=500)))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence, Tuple, Union

from ..protocol.retry import RetryPolicy
from .breaker import CircuitBreaker
from .fallback import Fallback, ResponseCache
from .hooks import Event, Hooks
from .keys import KeyPool
from .pacing import Pacer, RetryBudget
from .usage import UsageMeter

__all__ = [
    "CircuitBreaker",
    "Event",
    "Fallback",
    "Hooks",
    "KeyPool",
    "Pacer",
    "Policies",
    "ResponseCache",
    "RetryBudget",
    "RetryPolicy",
    "UsageMeter",
]


@dataclass(frozen=True)
class Policies:
    """The policies a ``Client`` applies, each optional.

    ``retry``: a ``RetryPolicy`` (default: ``RetryPolicy(max_retries=...)``
    from the client's ``max_retries``). ``keys``: a ``KeyPool``, or a list
    of keys to make one. ``breaker``: a ``CircuitBreaker``, or ``True`` for
    one with default settings on the client's endpoint. ``fallbacks`` are
    tried in order once the endpoint fails for good, then the ``cache``.
    """

    retry: Optional[RetryPolicy] = None
    keys: Union[KeyPool, Sequence[str], None] = None
    pacer: Optional[Pacer] = None
    breaker: Union[CircuitBreaker, bool, None] = None
    retry_budget: Optional[RetryBudget] = None
    fallbacks: Tuple[Fallback, ...] = field(default=())
    cache: Optional[ResponseCache] = None
    hooks: Optional[Hooks] = None
    usage: Optional[UsageMeter] = None

    def __post_init__(self) -> None:
        if not isinstance(self.fallbacks, tuple):
            object.__setattr__(self, "fallbacks", tuple(self.fallbacks))
        if self.keys is not None and not isinstance(self.keys, KeyPool):
            object.__setattr__(self, "keys", KeyPool(self.keys))
