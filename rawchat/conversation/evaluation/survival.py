"""Tier A, no model: which planted facts survive in what a strategy sends.

Each ``Dialogue`` is replayed through the real trimming plan
(``rawchat.protocol.trimming.plan_trim``), one request per model answer, the
thread's ``TrimState`` carried from one request to the next as
``Conversation`` carries it; a ``Summarize`` plan gets its summary from
``extractive_summary()``, the same text the simulator writes. After the last
turn each probe is planned from the final state (not committed: probes do
not feed each other), and what it would send is searched for the answer:

* ``kept``: the answer's exact text is in the messages sent before the
  probe (a kept turn, a tool result, or the summary);
* ``stale``: an updated fact's old value is there and the new one is not;
* prompt tokens of every request, summary requests included, and their
  price from ``rawchat.policies.usage.PRICES``;
* prefix stability: the share of each request's bytes (its messages as
  JSON) that repeat the previous request's beginning byte for byte, which
  is what prompt caches reward.

Budgets are shares of the whole history's tokens; two bounds frame them:
``full-history`` (nothing dropped) and ``no-history`` (the system prompt
and the new message only).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ...errors import ContextOverflowError
from ...policies.usage import PRICES, Price, price_for
from ...protocol.completion import Usage
from ...protocol.tokens import estimate_messages, estimate_text, message_tokens
from ...protocol.trimming import (
    STRATEGIES,
    Strategy,
    TrimState,
    extractive_summary,
    plan_trim,
)
from .synthetic import DEPTHS, Dialogue, Fact

__all__ = [
    "BOUNDS",
    "SHARES",
    "Cell",
    "ProbeOutcome",
    "Row",
    "history_tokens",
    "replay",
    "request_points",
    "rows",
    "survival",
]

#: The budgets measured by default, as shares of the whole history's tokens.
SHARES = (0.25, 0.5, 0.75)
#: The two bounds: everything sent, nothing but the new message sent.
BOUNDS = ("full-history", "no-history")


@dataclass(frozen=True)
class ProbeOutcome:
    """What one probe's request carried.

    ``present``: the ids of every planted fact whose answer the request
    carried (what the context knew, whatever was asked).
    """

    fact: str
    kind: str
    depth: str
    kept: bool
    stale: bool
    prompt_tokens: int
    present: Tuple[str, ...] = ()


@dataclass(frozen=True)
class Cell:
    """One strategy at one budget over one dialogue.

    ``share`` is the budget as a share of the history (``None`` for a
    bound); token counts cover the whole replay, probes and summary
    requests included; ``cost`` is in US dollars (``None``: no price).
    """

    dialogue: str
    strategy: str
    share: Optional[float]
    budget: int
    probes: Tuple[ProbeOutcome, ...]
    requests: int
    prompt_tokens: int
    completion_tokens: int
    summary_calls: int
    prefix_stability: float
    cost: Optional[float]
    refused: int = 0

    @property
    def planted(self) -> Tuple[ProbeOutcome, ...]:
        """The probes whose answer was said (``absent`` probes have none to keep)."""
        return tuple(p for p in self.probes if p.kind != "absent")


def history_tokens(dialogue: Dialogue, count: Callable[[str], int] = estimate_text) -> int:
    """The prompt tokens of the whole history sent at once: the budget's 100 %."""
    head = [{"role": "system", "content": dialogue.system}]
    return estimate_messages(head + dialogue.messages, count=count)


def request_points(turn: Sequence[Dict[str, Any]]) -> List[int]:
    """Where in a turn the model is asked: before each assistant message that
    answers in words (a scripted tool call is not asked for)."""
    return [
        i
        for i in range(len(turn) - 1)
        if turn[i + 1].get("role") == "assistant" and not turn[i + 1].get("tool_calls")
    ]


def replay(
    dialogue: Dialogue,
    strategy: Optional[Strategy],
    budget: int,
    *,
    share: Optional[float] = None,
    bound: str = "",
    count: Callable[[str], int] = estimate_text,
    model: str = "gpt-4o-mini",
    prices: Dict[str, Price] = PRICES,
) -> Cell:
    """Replay ``dialogue`` under ``strategy`` within ``budget`` tokens.

    ``bound`` ("full-history" or "no-history") replaces the strategy by a bound.
    """
    if bound not in ("", *BOUNDS):
        raise ValueError(f"bound is one of {', '.join(BOUNDS)}")
    if not bound and strategy is None:
        raise ValueError("a strategy, or a bound")
    system = dialogue.system
    history: List[Dict[str, Any]] = []
    tokens: List[int] = []
    state = TrimState()
    usage = {"prompt": 0, "completion": 0, "requests": 0, "summaries": 0, "refused": 0}
    stability: List[float] = []
    previous = b""

    def send(
        pending: List[Dict[str, Any]], state: TrimState
    ) -> Tuple[List[Dict[str, Any]], TrimState]:
        messages = history + pending
        counts = tokens + [message_tokens(m, count) for m in pending]
        if bound == "no-history":
            last = _last_turn_start(messages)
            sent = [{"role": "system", "content": system}, *messages[last:]]
            usage["prompt"] += estimate_messages(sent, count=count)
        elif bound == "full-history":
            sent = [{"role": "system", "content": system}, *messages]
            usage["prompt"] += estimate_messages(sent, count=count)
        else:
            assert strategy is not None
            try:
                plan = plan_trim(
                    messages,
                    counts,
                    [False] * len(messages),
                    budget=budget,
                    state=state,
                    system=system,
                    strategy=strategy,
                    count=count,
                )
            except ContextOverflowError:
                usage["refused"] += 1
                return [], state
            if plan.to_summarize:
                request = plan.summary_request()
                summary = extractive_summary(request, plan.summary_tokens, count)
                usage["prompt"] += estimate_messages(request, count=count)
                usage["completion"] += count(summary)
                usage["summaries"] += 1
                plan = plan.with_summary(summary, count)
            sent, state = plan.messages, plan.state
            usage["prompt"] += plan.report.tokens_sent
        usage["requests"] += 1
        return sent, state

    for turn in dialogue.turns:
        for point in request_points(turn):
            sent, state = send(list(turn[: point + 1]), state)
            if not sent:
                continue  # refused: nothing went out
            body = json.dumps(sent, ensure_ascii=False).encode("utf-8")
            if previous:
                stability.append(_common_prefix(previous, body) / len(body))
            previous = body
        history.extend(dict(m) for m in turn)
        tokens.extend(message_tokens(m, count) for m in turn)

    outcomes = []
    for fact in dialogue.facts:
        before = usage["prompt"]
        sent, _ = send([Dialogue.probe(fact)], state)
        outcomes.append(_outcome(fact, dialogue.facts, sent[:-1], usage["prompt"] - before))
    price = price_for(model, prices)
    cost = None
    if price is not None:
        cost = price.cost(
            Usage(prompt_tokens=usage["prompt"], completion_tokens=usage["completion"])
        )
    return Cell(
        dialogue=dialogue.name,
        strategy=bound or (strategy.name if strategy else ""),
        share=None if bound else share,
        budget=budget,
        probes=tuple(outcomes),
        requests=usage["requests"],
        prompt_tokens=usage["prompt"],
        completion_tokens=usage["completion"],
        summary_calls=usage["summaries"],
        prefix_stability=sum(stability) / len(stability) if stability else 1.0,
        cost=cost,
        refused=usage["refused"],
    )


def survival(
    dialogues: Sequence[Dialogue],
    strategies: Sequence[Strategy] = tuple(s() for s in STRATEGIES.values()),
    shares: Sequence[float] = SHARES,
    *,
    bounds: bool = True,
    count: Callable[[str], int] = estimate_text,
    model: str = "gpt-4o-mini",
    progress: Optional[Callable[[int, int], None]] = None,
) -> List[Cell]:
    """Every strategy at every budget share over every dialogue (and the two
    bounds, unless ``bounds=False``). ``progress(done, total)`` is called after
    each cell."""
    jobs: List[Tuple[Dialogue, Optional[Strategy], Optional[float], str]] = []
    for dialogue in dialogues:
        if bounds:
            jobs += [(dialogue, None, None, bound) for bound in BOUNDS]
        jobs += [(dialogue, s, share, "") for s in strategies for share in shares]
    cells = []
    for done, (dialogue, strategy, share, bound) in enumerate(jobs, 1):
        full = history_tokens(dialogue, count)
        budget = full * 10 if bound else int(full * (share or 1.0))
        cells.append(
            replay(dialogue, strategy, budget, share=share, bound=bound, count=count, model=model)
        )
        if progress is not None:
            progress(done, len(jobs))
    return cells


@dataclass(frozen=True)
class Row:
    """One strategy at one budget share, its cells summed over every dialogue:
    facts kept (of those planted), by depth, stale values without their
    update, prompt tokens per request, prefix stability and cost."""

    strategy: str
    share: Optional[float]
    kept: int
    planted: int
    stale: int
    by_depth: Tuple[Tuple[str, int, int], ...]
    tokens_per_request: float
    prompt_tokens: int
    prefix_stability: float
    summary_calls: int
    cost: Optional[float]
    refused: int = 0

    @property
    def kept_share(self) -> float:
        return self.kept / self.planted if self.planted else 0.0

    @property
    def label(self) -> str:
        return self.strategy if self.share is None else f"{self.strategy} @{self.share:.0%}"


def rows(cells: Sequence[Cell]) -> List[Row]:
    """The cells summed per (strategy, share), in the order they first appear."""
    groups: Dict[Tuple[str, Optional[float]], List[Cell]] = {}
    for cell in cells:
        groups.setdefault((cell.strategy, cell.share), []).append(cell)
    result = []
    for (strategy, share), group in groups.items():
        probes = [p for c in group for p in c.planted]
        requests = sum(c.requests for c in group)
        costs = [c.cost for c in group]
        result.append(
            Row(
                strategy=strategy,
                share=share,
                kept=sum(p.kept for p in probes),
                planted=len(probes),
                stale=sum(p.stale for p in probes),
                by_depth=tuple(
                    (
                        d,
                        sum(p.kept for p in probes if p.depth == d),
                        sum(p.depth == d for p in probes),
                    )
                    for d in DEPTHS
                ),
                tokens_per_request=sum(c.prompt_tokens for c in group) / max(requests, 1),
                prompt_tokens=sum(c.prompt_tokens for c in group),
                prefix_stability=sum(c.prefix_stability for c in group) / len(group),
                summary_calls=sum(c.summary_calls for c in group),
                cost=None if None in costs else sum(c for c in costs if c is not None),
                refused=sum(c.refused for c in group),
            )
        )
    return result


def _outcome(
    fact: Fact, facts: Sequence[Fact], context: Sequence[Dict[str, Any]], tokens: int
) -> ProbeOutcome:
    text = _context_text(context)
    kept = bool(fact.answer) and fact.answer in text
    stale = bool(fact.stale) and fact.stale in text and not kept
    present = tuple(f.id for f in facts if f.answer and f.answer in text)
    return ProbeOutcome(fact.id, fact.kind, fact.depth, kept, stale, tokens, present)


def _context_text(messages: Sequence[Dict[str, Any]]) -> str:
    """Everything a reader of these messages can see: contents and tool call arguments."""
    parts = []
    for message in messages:
        content = message.get("content")
        parts.append(
            content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)
        )
        for call in message.get("tool_calls") or ():
            parts.append(str((call.get("function") or {}).get("arguments", "")))
    return "\n".join(parts)


def _last_turn_start(messages: Sequence[Dict[str, Any]]) -> int:
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].get("role") not in ("assistant", "tool"):
            return index
    return 0


def _common_prefix(a: bytes, b: bytes) -> int:
    size = min(len(a), len(b))
    for index in range(size):
        if a[index] != b[index]:
            return index
    return size
