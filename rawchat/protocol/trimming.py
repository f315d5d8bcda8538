"""The trimming plan: which messages of a long conversation to send within the budget.

The Chat Completions API keeps nothing between calls
(https://platform.openai.com/docs/guides/conversation-state): the client
sends the whole conversation every time, and the model refuses a prompt
that does not fit its context window. ``plan_trim()`` decides what to send.
It is pure: history, token counts and the thread's ``TrimState`` in, a
frozen ``TrimPlan`` out (the messages to send, the state to keep if the
request succeeds, a ``TrimReport``). Asking the model, saving and
committing are the caller's (``rawchat.conversation``).

The budget is the context window minus room for the reply
(``budget_for()``). What counts against it: the system prompt, the
running summary if any, the kept turns, and the 3 tokens that prime the
reply.

Turns. History is cut into *turns*: a user (or system, developer) message
and everything that answers it, so an assistant's tool calls stay with
their tool results (a tool message without its call is rejected by the
API). Only whole turns are dropped, and never the system prompt, a pinned
turn, a turn the strategy always keeps, or the last turn (the new one).
If what remains still exceeds the budget, ``plan_trim()`` raises
``ContextOverflowError``, so nothing is sent that the server would refuse.

Low water. The state remembers ``start``, the first turn still sent. While
the prompt fits, ``start`` stays where it is, even if the history has grown
since: the beginning of the prompt is byte-identical from one request to
the next, which is what providers' prompt caches reward
(https://platform.openai.com/docs/guides/prompt-caching). When it no longer
fits, ``start`` moves forward, one turn at a time, until the total is under
the low-water mark (75% of the budget by default), not just under the
budget; the room this frees lets the next several requests go out with the
same beginning. Each request costs one linear pass over the history.

A worked sequence, ``DropOldest()``, a budget of 100 (low water 75), no
system prompt, each question and each answer 10 tokens (3 more prime the
reply). Requests 1 to 5 send every turn: 13, 33, 53, 73, 93 tokens.
Request 6 would send 113, so ``start`` moves past turns 1 and 2 (93, then
73) and requests 6 and 7 both begin at turn 3 (73 and 93 tokens); request 8
moves it to turn 5, request 10 to turn 7, and so on: the prompt's
beginning changes every other request, not every request.

Strategies choose what else survives. ``DropOldest`` drops the oldest
turns; ``KeepFirstAndRecent`` always keeps the first turn (it usually
states the task); ``Summarize`` folds the turns it drops into a running
summary written by the model itself, sent as a system message after the
system prompt. The plan cannot write that summary: it names the messages
to fold (``TrimPlan.to_summarize``) and the request to write it with
(``TrimPlan.summary_request()``); the caller asks the model and fills the
answer in with ``TrimPlan.with_summary()``. The summary is updated only
when more turns are dropped, so it too stays put between trims.
``extractive_summary()`` writes one with no model (the sentences given, in
order, cut to the cap): the offline stand-in and the baseline to beat.

``Relevant`` sets part of the budget aside (``recall_share``) once turns
are dropped, and fills it with the dropped turns that best match the new
message, ranked by Okapi BM25 over whole turns (``bm25_scores()``;
https://en.wikipedia.org/wiki/Okapi_BM25), sent in their original order
before the recent turns. It answers "what was my order number?" asked 50
turns later, which no window of recent turns does; the price is the
prompt's beginning, which changes with each question, so prompt caches
help less. It needs no model and no state beyond ``start``.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any, Callable, ClassVar, Dict, List, Mapping, Optional, Sequence, Tuple

from ..errors import ContextOverflowError
from .settings import by_model_name
from .tokens import REPLY_PRIMING, estimate_text, message_tokens

__all__ = [
    "CONTEXT_WINDOWS",
    "DEFAULT_CONTEXT_WINDOW",
    "STRATEGIES",
    "SUMMARY_PREFIX",
    "DropOldest",
    "KeepFirstAndRecent",
    "Relevant",
    "Strategy",
    "Summarize",
    "TrimPlan",
    "TrimReport",
    "TrimState",
    "bm25_scores",
    "budget_for",
    "context_window_for",
    "extractive_summary",
    "plan_trim",
    "split_turns",
]

#: Context windows in tokens, as the providers document them; a model not
#: listed gets ``DEFAULT_CONTEXT_WINDOW``. Pass ``context_window=`` to override.
CONTEXT_WINDOWS = {
    "gpt-4o": 128_000,
    "gpt-4o-mini": 128_000,
    "gpt-4.1": 1_047_576,
    "gpt-4.1-mini": 1_047_576,
    "gpt-4.1-nano": 1_047_576,
    "o1": 200_000,
    "o3": 200_000,
    "o4-mini": 200_000,
    "gpt-4-turbo": 128_000,
    "gpt-4": 8_192,
    "gpt-3.5-turbo": 16_385,
    "deepseek-chat": 65_536,
    "deepseek-reasoner": 65_536,
    "moonshot-v1-8k": 8_192,
    "moonshot-v1-32k": 32_768,
    "moonshot-v1-128k": 131_072,
    "qwen-plus": 131_072,
    "qwen-max": 32_768,
}
DEFAULT_CONTEXT_WINDOW = 8_192
SUMMARY_PREFIX = "Summary of the earlier conversation:\n"


def context_window_for(model: str) -> int:
    """The table's window for ``model`` (longest matching name prefix)."""
    window = by_model_name(CONTEXT_WINDOWS, model)
    return DEFAULT_CONTEXT_WINDOW if window is None else window


def budget_for(context_window: int, reserve: Optional[int] = None) -> int:
    """Prompt tokens allowed: the window minus room for the reply.

    ``reserve`` is that room (usually the request's ``max_tokens``); without
    one, a quarter of the window, at most 4,096 tokens.
    """
    return context_window - int(reserve or min(4096, context_window // 4))


# -- the strategies -----------------------------------------------------------------


@dataclass(frozen=True)
class Strategy:
    """How to fit a history into a budget: which turns survive, what becomes of the rest.

    ``low_water``: once trimming is needed, trim down to this share of the
    budget, so the prompt's beginning then stays put for several turns.
    """

    low_water: float = 0.75

    #: The strategy's name in reports and saved conversations.
    name: ClassVar[str] = "strategy"

    def __post_init__(self) -> None:
        if not 0 < self.low_water <= 1:
            raise ValueError("low_water is a share of the budget, in (0, 1]")

    def always_keeps(self, turn: int) -> bool:
        """Whether turn number ``turn`` (from 0) is sent however far trimming goes."""
        return False

    def summary_room(self) -> Optional[int]:
        """``None``: dropped turns are gone. A number: they are folded into a
        summary of at most that many tokens, counted against the budget."""
        return None

    def recall_room(self, budget: int) -> int:
        """Tokens set aside, once turns are dropped, for dropped turns brought
        back by their relevance to the new message (0: none are)."""
        return 0


@dataclass(frozen=True)
class DropOldest(Strategy):
    """Drop the oldest whole turns."""

    name: ClassVar[str] = "drop-oldest"


@dataclass(frozen=True)
class KeepFirstAndRecent(Strategy):
    """Keep the first turn (often the task) and the most recent ones."""

    name: ClassVar[str] = "keep-first-and-recent"

    def always_keeps(self, turn: int) -> bool:
        return turn == 0


@dataclass(frozen=True)
class Summarize(Strategy):
    """Fold dropped turns into a summary the model writes, updated incrementally.

    ``summary_tokens`` caps the summary (it is asked for with that
    ``max_tokens`` and counted against the budget at that size).
    """

    summary_tokens: int = 300

    name: ClassVar[str] = "summarize"
    PROMPT: ClassVar[str] = (
        "You maintain a running summary of a conversation between a user and an "
        "assistant. Update the summary with the new turns below. Keep facts, "
        "decisions, names, numbers and open questions; drop pleasantries. Answer "
        "with the updated summary only."
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.summary_tokens < 1:
            raise ValueError("summary_tokens is the summary's max_tokens, at least 1")

    def summary_room(self) -> int:
        return self.summary_tokens


@dataclass(frozen=True)
class Relevant(Strategy):
    """Keep the recent turns, and bring back the dropped turns most relevant
    to the new message (BM25 over turns) into ``recall_share`` of the budget.

    The recent turns are trimmed as ``DropOldest`` trims them, within the
    budget minus that share; the recalled turns are sent in their original
    order, before the recent ones. Only turns sharing words with the new
    message are recalled, so a question about nothing said before costs no
    more than ``DropOldest``.
    """

    recall_share: float = 0.5

    name: ClassVar[str] = "relevant"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.recall_share < 1:
            raise ValueError("recall_share is a share of the budget, in (0, 1)")

    def recall_room(self, budget: int) -> int:
        return int(budget * self.recall_share)


#: The strategies by name, as saved conversations record them.
STRATEGIES = {s.name: s for s in (DropOldest, KeepFirstAndRecent, Summarize, Relevant)}


# -- the plan -------------------------------------------------------------------------


@dataclass(frozen=True)
class TrimReport:
    """What fitting the last request into the budget did."""

    strategy: str
    budget: int
    tokens_sent: int
    dropped_messages: int
    dropped_tokens: int
    summarized_messages: int = 0


@dataclass(frozen=True)
class TrimState:
    """What a thread remembers between requests so that trimming stays put.

    ``start``: the first turn sent (earlier ones are dropped, unless pinned
    or always kept). ``summary``: the running summary of dropped turns, or
    ``None``. ``summary_upto``: the turns before this one are in the summary.
    """

    start: int = 0
    summary: Optional[str] = None
    summary_upto: int = 0


@dataclass(frozen=True)
class TrimPlan:
    """What to send, and what the thread's state becomes if the request succeeds.

    ``kept`` holds the kept turns' messages, in order; ``messages`` adds the
    system prompt and the summary in front. A plan whose ``to_summarize`` is
    not empty is not ready to send: ``state.summary`` is still the old
    summary, and those messages must first be folded into it (ask the model
    with ``summary_request()``, then call ``with_summary()``).
    """

    system: Optional[str]
    kept: Tuple[Dict[str, Any], ...]
    state: TrimState
    report: TrimReport
    to_summarize: Tuple[Dict[str, Any], ...] = ()
    #: The new summary's ``max_tokens``, when there is one to write.
    summary_tokens: int = 0

    @property
    def head(self) -> List[Dict[str, Any]]:
        """The system prompt and the summary, as system messages."""
        head = [{"role": "system", "content": self.system}] if self.system else []
        if self.state.summary:
            head.append({"role": "system", "content": SUMMARY_PREFIX + self.state.summary})
        return head

    @property
    def messages(self) -> List[Dict[str, Any]]:
        """The messages to send: the head, then the kept turns."""
        return self.head + list(self.kept)

    def summary_request(self) -> List[Dict[str, Any]]:
        """The messages that ask the model for the summary updated with ``to_summarize``.

        Send them with ``max_tokens=summary_tokens``.
        """
        lines = [f"Current summary:\n{self.state.summary or '(none yet)'}", "", "New turns:"]
        for message in self.to_summarize:
            who = message.get("role", "")
            if message.get("tool_call_id"):
                who = f"tool result ({message['tool_call_id']})"
            content = message.get("content")
            text = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)
            calls = message.get("tool_calls")
            if calls:
                text = (text or "") + " [tool calls: " + json.dumps(calls, ensure_ascii=False) + "]"
            lines.append(f"{who}: {text}")
        return [
            {"role": "system", "content": Summarize.PROMPT},
            {"role": "user", "content": "\n".join(lines)},
        ]

    def with_summary(self, summary: str, count: Callable[[str], int] = estimate_text) -> TrimPlan:
        """This plan with ``summary`` as the new running summary: ready to send.

        ``count`` counts a text's tokens, as it did for ``plan_trim()``.
        """
        if not self.to_summarize:
            raise ValueError("this plan has nothing to fold into a summary")

        report = replace(
            self.report,
            tokens_sent=self.report.tokens_sent
            - _summary_tokens(self.state.summary, count)
            + _summary_tokens(summary, count),
            summarized_messages=len(self.to_summarize),
        )
        state = replace(self.state, summary=summary)
        return replace(self, state=state, report=report, to_summarize=(), summary_tokens=0)


def _summary_tokens(summary: Optional[str], count: Callable[[str], int]) -> int:
    """What the summary's system message costs in the prompt (0 without one)."""
    return message_tokens({"content": SUMMARY_PREFIX + summary}, count) if summary else 0


def split_turns(messages: Sequence[Mapping[str, Any]]) -> List[Tuple[int, int]]:
    """``(first, end)`` message ranges: a new turn at each message that is not an
    assistant's or a tool's answer (user, system, developer)."""
    turns: List[Tuple[int, int]] = []
    for index, message in enumerate(messages):
        if not turns or message.get("role") not in ("assistant", "tool"):
            turns.append((index, index + 1))
        else:
            turns[-1] = (turns[-1][0], index + 1)
    return turns


def plan_trim(
    messages: Sequence[Dict[str, Any]],
    tokens: Sequence[int],
    pinned: Sequence[bool],
    *,
    budget: int,
    state: TrimState = TrimState(),
    system: Optional[str] = None,
    strategy: Strategy = DropOldest(),
    count: Callable[[str], int] = estimate_text,
) -> TrimPlan:
    """Plan the next request: ``messages`` (the history, the new message last)
    cut to fit ``budget`` as ``strategy`` says, starting from ``state``.

    ``tokens[i]`` is ``messages[i]``'s token count and ``pinned[i]`` whether
    it must never be dropped (a pinned message keeps its whole turn).
    ``count`` counts the system prompt's and the summary's tokens. Raises
    ``ContextOverflowError`` when even every droppable turn dropped is not
    enough.
    """
    if not len(messages) == len(tokens) == len(pinned):
        raise ValueError("messages, tokens and pinned must be the same length")
    turns = split_turns(messages)
    turn_tokens = [sum(tokens[a:b]) for a, b in turns]
    turn_pinned = [any(pinned[a:b]) for a, b in turns]

    def keeps(turn: int, start: int) -> bool:
        return turn >= start or turn_pinned[turn] or strategy.always_keeps(turn)

    head = [{"role": "system", "content": system}] if system else []
    fixed = REPLY_PRIMING + sum(message_tokens(m, count) for m in head)
    fixed += _summary_tokens(state.summary, count)
    summary_room = strategy.summary_room()
    recall_room = strategy.recall_room(budget)
    last = max(len(turns) - 1, 0)
    start = min(state.start, last)
    total = fixed + sum(t for i, t in enumerate(turn_tokens) if keeps(i, start))
    total += recall_room if start else 0
    if total > budget:
        if summary_room is not None and not state.summary:
            total += summary_room  # the summary about to exist takes room too
        if not start:
            total += recall_room  # so do the turns about to be recalled
        target = int(budget * strategy.low_water)
        while total > target and start < last:
            if not keeps(start, start + 1):  # pinned or always kept: it stays anyway
                total -= turn_tokens[start]
            start += 1
        if total > budget >= total - recall_room:
            recall_room -= total - budget  # a long new message takes the recall's room first
            total = budget
        if total > budget:
            raise ContextOverflowError(
                f"{total} tokens do not fit the budget of {budget} even with every "
                "droppable turn dropped (the system prompt, pinned turns and the "
                "new message are never dropped)",
                hint="raise context_window, lower the reserve (max_tokens), or shorten the message",
            )

    new_state = replace(state, start=start)
    to_summarize: Tuple[Dict[str, Any], ...] = ()
    if summary_room is not None and start > state.summary_upto:
        to_summarize = tuple(
            m
            for i in range(state.summary_upto, start)
            if not keeps(i, start)
            for m in messages[turns[i][0] : turns[i][1]]
        )
        new_state = replace(new_state, summary_upto=start)

    kept = [i for i in range(len(turns)) if keeps(i, start)]
    if recall_room > 0 and start:
        kept = sorted(kept + _recall(messages, turns, turn_tokens, start, keeps, recall_room))
    kept_tokens = sum(turn_tokens[i] for i in kept)
    kept_messages = sum(turns[i][1] - turns[i][0] for i in kept)
    return TrimPlan(
        system=system,
        kept=tuple(m for i in kept for m in messages[turns[i][0] : turns[i][1]]),
        state=new_state,
        report=TrimReport(
            strategy=strategy.name,
            budget=budget,
            tokens_sent=fixed + kept_tokens,
            dropped_messages=len(messages) - kept_messages,
            dropped_tokens=sum(turn_tokens) - kept_tokens,
        ),
        to_summarize=to_summarize,
        summary_tokens=summary_room if to_summarize and summary_room is not None else 0,
    )


def _recall(
    messages: Sequence[Mapping[str, Any]],
    turns: Sequence[Tuple[int, int]],
    turn_tokens: Sequence[int],
    start: int,
    keeps: Callable[[int, int], bool],
    room: int,
) -> List[int]:
    """The dropped turns to bring back: best BM25 match with the last turn first
    (the later turn on a tie), each that still fits ``room``."""
    texts = [_turn_text(messages[a:b]) for a, b in turns]
    scores = bm25_scores(texts[-1], texts[:-1])
    dropped = [i for i in range(start) if not keeps(i, start) and scores[i] > 0]
    chosen: List[int] = []
    for i in sorted(dropped, key=lambda i: (-scores[i], -i)):
        if turn_tokens[i] <= room:
            chosen.append(i)
            room -= turn_tokens[i]
    return chosen


def _turn_text(messages: Sequence[Mapping[str, Any]]) -> str:
    """The words of a turn: contents, and the arguments of its tool calls."""
    parts = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
        for call in message.get("tool_calls") or ():
            parts.append(str((call.get("function") or {}).get("arguments", "")))
    return "\n".join(parts)


_CJK_RANGES = "\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af"
_TERMS = re.compile(f"([{_CJK_RANGES}]+)|([^\\W_{_CJK_RANGES}]+)")


def _terms(text: str) -> List[str]:
    """A text's search terms: lower-cased words, and the character pairs of CJK
    runs (Chinese and Japanese put no spaces between words; a lone character
    stands for itself)."""
    found: List[str] = []
    for match in _TERMS.finditer(text.lower()):
        cjk = match.group(1)
        if cjk is None:
            found.append(match.group(2))
        elif len(cjk) == 1:
            found.append(cjk)
        else:
            found.extend(cjk[i : i + 2] for i in range(len(cjk) - 1))
    return found


def bm25_scores(
    query: str, documents: Sequence[str], k1: float = 1.2, b: float = 0.75
) -> List[float]:
    """Okapi BM25 score of each document for ``query``.

    For each query term t in document d: idf(t) * f * (k1 + 1) / (f + k1 *
    (1 - b + b * |d| / avgdl)), with f the count of t in d, |d| the
    document's length in terms, avgdl the mean length, and idf(t) = ln(1 +
    (N - n + 0.5) / (n + 0.5)) over N documents, n of them holding t.
    """
    bags = [Counter(_terms(d)) for d in documents]
    if not bags:
        return []
    lengths = [sum(bag.values()) for bag in bags]
    average = sum(lengths) / len(bags) or 1.0
    wanted = set(_terms(query))
    idf = {
        t: math.log(1 + (len(bags) - n + 0.5) / (n + 0.5))
        for t in wanted
        for n in [sum(1 for bag in bags if t in bag)]
    }
    scores = []
    for bag, length in zip(bags, lengths):
        norm = k1 * (1 - b + b * length / average)
        scores.append(sum(idf[t] * bag[t] * (k1 + 1) / (bag[t] + norm) for t in wanted if t in bag))
    return scores


_SENTENCE_END = re.compile(r"(?<=[.!?\u3002\uff01\uff1f])\s+|(?<=[\u3002\uff01\uff1f])|\n+")
_SPEAKER = re.compile(r"^(?:user|assistant|system|developer|tool result \([^)]*\)): ")


def extractive_summary(
    request: Sequence[Mapping[str, Any]],
    max_tokens: int,
    count: Callable[[str], int] = estimate_text,
) -> str:
    """The summary a reader with no model writes for ``TrimPlan.summary_request()``:
    the current summary's sentences, then the new turns' (speaker labels
    dropped), in order, as many whole sentences as fit ``max_tokens``.

    Nothing is rephrased or ranked: what does not fit is lost, as an answer
    cut at ``max_tokens`` loses it, so an update that arrives once the
    summary is full is missing and its old value stays.
    """
    text = str(request[-1].get("content") or "") if request else ""
    current, _, new = text.partition("\n\nNew turns:\n")
    current = (
        current[len("Current summary:\n") :]
        if current.startswith("Current summary:\n")
        else current
    )
    lines = [] if current == "(none yet)" else [current]
    lines += [_SPEAKER.sub("", line) for line in new.splitlines()]
    kept: List[str] = []
    for line in lines:
        for sentence in _SENTENCE_END.split(line):
            sentence = sentence.strip()
            if not sentence:
                continue
            if count(" ".join([*kept, sentence])) > max_tokens:
                return " ".join(kept)
            kept.append(sentence)
    return " ".join(kept)
