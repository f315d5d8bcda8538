"""Usage and cost: what every call consumed, what it cost, and budgets.

Every answer carries a ``usage`` block (for a stream, in the last chunk when
``stream_options.include_usage`` is set):
https://platform.openai.com/docs/api-reference/chat/object#chat/object-usage.
``UsageMeter`` adds them up per model and per key, prices them from an
editable table (US dollars per million input, cached input and output
tokens; reasoning tokens are billed as output), and enforces budgets
*before* a request would cross them, from an estimate of its size.

Prices change; the table says when it was taken (``PRICES_DATE``). Pass
your own ``prices`` for anything it lacks or gets wrong. An answer of the
Batch API (https://platform.openai.com/docs/guides/batch) costs
``BATCH_DISCOUNT`` of the listed price: ``record(..., batch=True)``.

Hooks: ``on_record`` is called with each ``Record``; each record is logged
on the ``rawchat.policies.usage`` logger; ``prometheus()`` renders the totals in the
Prometheus text exposition format
(https://prometheus.io/docs/instrumenting/exposition_formats/).
"""

from __future__ import annotations

import logging
import threading
import warnings
from dataclasses import dataclass, field
from typing import Callable, Dict, Mapping, Optional

from ..errors import BudgetExceededError
from ..protocol.completion import Usage
from ..protocol.settings import by_model_name

__all__ = [
    "BATCH_DISCOUNT",
    "PRICES",
    "PRICES_DATE",
    "Price",
    "Record",
    "Totals",
    "UsageMeter",
    "price_for",
]

log = logging.getLogger("rawchat.policies.usage")

#: When the prices below were taken from the providers' public price lists.
PRICES_DATE = "2025-08-01"
#: The share of the listed price a Batch API answer costs (half, on OpenAI).
BATCH_DISCOUNT = 0.5


@dataclass(frozen=True)
class Price:
    """US dollars per million tokens."""

    input: float
    cached_input: float
    output: float

    def cost(self, usage: Usage) -> float:
        cached = min(usage.cached_tokens, usage.prompt_tokens)
        fresh = usage.prompt_tokens - cached
        return (
            fresh * self.input + cached * self.cached_input + usage.completion_tokens * self.output
        ) / 1_000_000


PRICES: Dict[str, Price] = {
    "gpt-4o": Price(2.50, 1.25, 10.00),
    "gpt-4o-mini": Price(0.15, 0.075, 0.60),
    "gpt-4.1": Price(2.00, 0.50, 8.00),
    "gpt-4.1-mini": Price(0.40, 0.10, 1.60),
    "gpt-4.1-nano": Price(0.10, 0.025, 0.40),
    "o3": Price(2.00, 0.50, 8.00),
    "o4-mini": Price(1.10, 0.275, 4.40),
    "gpt-3.5-turbo": Price(0.50, 0.50, 1.50),
    "deepseek-chat": Price(0.27, 0.07, 1.10),
    "deepseek-reasoner": Price(0.55, 0.14, 2.19),
}


def price_for(model: str, prices: Mapping[str, Price]) -> Optional[Price]:
    """The price of ``model``: an exact entry, else the longest matching prefix
    (``gpt-4o-mini-2024-07-18`` is priced as ``gpt-4o-mini``)."""
    return by_model_name(prices, model)


@dataclass(frozen=True)
class Record:
    """One answer's usage and cost (``cost`` is None when the model has no price)."""

    model: str
    key: str
    usage: Usage
    cost: Optional[float]


@dataclass
class Totals:
    """Running totals for a model, a key, or everything."""

    requests: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    cost: float = 0.0
    unpriced_requests: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, record: Record) -> None:
        usage = record.usage
        self.requests += 1
        self.prompt_tokens += usage.prompt_tokens
        self.cached_tokens += usage.cached_tokens
        self.completion_tokens += usage.completion_tokens
        self.reasoning_tokens += usage.reasoning_tokens
        if record.cost is None:
            self.unpriced_requests += 1
        else:
            self.cost += record.cost


@dataclass
class UsageMeter:
    """Adds up usage and cost; stops (or warns) before a budget is crossed.

    ``budget_usd`` / ``budget_tokens``: limits for the meter's lifetime.
    ``on_budget``: ``"raise"`` (``BudgetExceededError``) or ``"warn"``.
    """

    prices: Mapping[str, Price] = field(default_factory=lambda: dict(PRICES))
    budget_usd: Optional[float] = None
    budget_tokens: Optional[int] = None
    on_budget: str = "raise"
    on_record: Optional[Callable[[Record], None]] = None
    prices_date: str = PRICES_DATE
    total: Totals = field(default_factory=Totals)
    by_model: Dict[str, Totals] = field(default_factory=dict)
    by_key: Dict[str, Totals] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.on_budget not in ("raise", "warn"):
            raise ValueError(f"on_budget must be 'raise' or 'warn', got {self.on_budget!r}")
        self._lock = threading.Lock()

    def record(
        self, model: str, usage: Optional[Usage], key: str = "", *, batch: bool = False
    ) -> Optional[Record]:
        """Count one answer's usage (``None`` when the server reported none);
        ``batch``: it came through the Batch API, at ``BATCH_DISCOUNT`` of the price."""
        if usage is None:
            return None
        price = price_for(model, self.prices)
        share = BATCH_DISCOUNT if batch else 1.0
        record = Record(model, key, usage, price.cost(usage) * share if price else None)
        with self._lock:
            self.total.add(record)
            self.by_model.setdefault(model, Totals()).add(record)
            self.by_key.setdefault(key, Totals()).add(record)
        cost = f"${record.cost:.6f}" if record.cost is not None else "no price"
        log.info(
            "%s: %d prompt (%d cached) + %d completion tokens, %s; total $%.6f",
            model, usage.prompt_tokens, usage.cached_tokens, usage.completion_tokens,
            cost, self.total.cost,
        )  # fmt: skip
        if self.on_record is not None:
            self.on_record(record)
        return record

    def check(self, model: str, prompt_tokens: int, max_output_tokens: int = 0) -> None:
        """Before a request: would it take the totals past a budget?

        ``prompt_tokens`` is an estimate; ``max_output_tokens`` the answer's
        cap (the worst case is priced). Raises ``BudgetExceededError`` or
        warns, as ``on_budget`` says.
        """
        problems = []
        if self.budget_tokens is not None:
            after = self.total.total_tokens + prompt_tokens + max_output_tokens
            if after > self.budget_tokens:
                problems.append(
                    f"about {after} tokens would pass the budget of {self.budget_tokens} "
                    f"({self.total.total_tokens} used)"
                )
        if self.budget_usd is not None:
            price = price_for(model, self.prices)
            if price is not None:
                worst = price.cost(Usage(prompt_tokens, max_output_tokens))
                if self.total.cost + worst > self.budget_usd:
                    problems.append(
                        f"up to ${self.total.cost + worst:.4f} would pass the budget of "
                        f"${self.budget_usd:.4f} (${self.total.cost:.4f} spent)"
                    )
        if not problems:
            return
        message = "; ".join(problems)
        if self.on_budget == "warn":
            warnings.warn(f"usage budget: {message}", stacklevel=3)
            return
        raise BudgetExceededError(
            message, hint="raise the budget, lower max_tokens, or trim the conversation"
        )

    def report(self) -> str:
        """A few lines for a person: totals, then per model."""
        lines = [_line("total", self.total)]
        lines += [_line(model, totals) for model, totals in sorted(self.by_model.items())]
        lines.append(
            f"(prices as of {self.prices_date}, USD per 1M tokens; edit UsageMeter.prices)"
        )
        return "\n".join(lines)

    def prometheus(self, prefix: str = "rawchat") -> str:
        """The per-model and per-key totals in Prometheus text format."""
        out = []
        metrics = (
            ("requests_total", "Answers counted.", "requests"),
            ("prompt_tokens_total", "Prompt tokens reported by the server.", "prompt_tokens"),
            ("cached_tokens_total", "Prompt tokens served from the prompt cache.", "cached_tokens"),
            (
                "completion_tokens_total",
                "Completion tokens, reasoning included.",
                "completion_tokens",
            ),
            ("reasoning_tokens_total", "Hidden reasoning tokens.", "reasoning_tokens"),
            ("cost_usd_total", "Estimated cost in US dollars.", "cost"),
        )
        with self._lock:
            for name, help_text, attribute in metrics:
                out.append(f"# HELP {prefix}_{name} {help_text}")
                out.append(f"# TYPE {prefix}_{name} counter")
                for model, totals in sorted(self.by_model.items()):
                    value = getattr(totals, attribute)
                    out.append(f'{prefix}_{name}{{model="{_label(model)}"}} {value:g}')
            out.append(
                f"# HELP {prefix}_key_requests_total Answers counted per API key (fingerprint)."
            )
            out.append(f"# TYPE {prefix}_key_requests_total counter")
            for key, totals in sorted(self.by_key.items()):
                out.append(f'{prefix}_key_requests_total{{key="{_label(key)}"}} {totals.requests}')
        return "\n".join(out) + "\n"


def _line(name: str, totals: Totals) -> str:
    unpriced = f", {totals.unpriced_requests} unpriced" if totals.unpriced_requests else ""
    return (
        f"{name}: {totals.requests} requests, {totals.prompt_tokens} prompt tokens "
        f"({totals.cached_tokens} cached), {totals.completion_tokens} completion "
        f"({totals.reasoning_tokens} reasoning), ${totals.cost:.6f}{unpriced}"
    )


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
