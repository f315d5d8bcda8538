"""Conversation memory: the history a stateless model needs, within its context window.

The Chat Completions API keeps nothing between calls
(https://platform.openai.com/docs/guides/conversation-state): the client
sends the whole conversation every time. ``Conversation`` keeps it, and

* commits a turn only when its answer arrived whole: on any error, a
  stream broken halfway included, the history is exactly as before the
  call (the partial answer stays on the error);
* fits what it sends into a token budget, the model's context window minus
  room for the reply, with a pluggable ``Strategy``;
* keeps named threads (topics), and saves to JSON atomically.

Turns and trimming. History is cut into *turns*: a user (or system,
developer) message and everything that answers it, so an assistant's tool
calls stay with their tool results. Strategies drop whole turns, never the
system prompt, never a pinned turn, never the new one. Trimming is
incremental: the conversation remembers where its kept history starts, and
when it must move that point it moves it far enough to get under a
low-water mark (75% of the budget by default). So the start of the prompt
stays the same for many turns, which is what providers' prompt caches
reward, and each request costs one linear pass.

Strategies: ``DropOldest`` (the default), ``KeepFirstAndRecent`` (the first
turn usually states the task), and ``Summarize``, which folds dropped turns
into a running summary written by the model itself, updated only when more
turns are dropped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from ..errors import ContextOverflowError, InvalidRequestError
from ..protocol.completion import Completion
from ..protocol.request import validate_messages
from ..protocol.settings import by_model_name
from ..protocol.tokens import counter_for, message_tokens
from ..storage import atomic_write

if TYPE_CHECKING:  # pragma: no cover
    from ..client.client import Client
    from ..client.stream import Stream

__all__ = [
    "CONTEXT_WINDOWS",
    "Conversation",
    "DropOldest",
    "KeepFirstAndRecent",
    "Strategy",
    "Summarize",
    "TrimReport",
    "context_window_for",
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


@dataclass(frozen=True)
class TrimReport:
    """What fitting the last request into the budget did."""

    strategy: str
    budget: int
    tokens_sent: int
    dropped_messages: int
    dropped_tokens: int
    summarized_messages: int = 0


@dataclass
class _Thread:
    messages: List[Dict[str, Any]] = field(default_factory=list)
    tokens: List[int] = field(default_factory=list)
    pinned: List[bool] = field(default_factory=list)
    start: int = 0  # the first kept turn
    summary: Optional[str] = None
    summary_upto: int = 0  # turns before this one are in the summary


def _turns(messages: Sequence[Mapping[str, Any]]) -> List[Tuple[int, int]]:
    """``(first, end)`` message ranges: a new turn at each user/system/developer message."""
    turns: List[Tuple[int, int]] = []
    for index, message in enumerate(messages):
        if not turns or message.get("role") not in ("assistant", "tool"):
            turns.append((index, index + 1))
        else:
            turns[-1] = (turns[-1][0], index + 1)
    return turns


class Strategy:
    """How to fit a history into a budget. Subclasses set the class flags.

    ``low_water``: once trimming is needed, trim down to this share of the
    budget, so the prompt's beginning then stays put for several turns.
    """

    name = "strategy"
    keep_first = False
    summarize = False

    def __init__(self, low_water: float = 0.75) -> None:
        if not 0 < low_water <= 1:
            raise ValueError("low_water is a share of the budget, in (0, 1]")
        self.low_water = low_water

    def __repr__(self) -> str:
        return f"{type(self).__name__}(low_water={self.low_water})"


class DropOldest(Strategy):
    """Drop the oldest whole turns."""

    name = "drop-oldest"


class KeepFirstAndRecent(Strategy):
    """Keep the first turn (often the task) and the most recent ones."""

    name = "keep-first-and-recent"
    keep_first = True


class Summarize(Strategy):
    """Fold dropped turns into a summary the model writes, updated incrementally.

    ``summary_tokens`` caps the summary (it is asked for with that
    ``max_tokens`` and counted against the budget at that size).
    """

    name = "summarize"
    summarize = True
    PROMPT = (
        "You maintain a running summary of a conversation between a user and an "
        "assistant. Update the summary with the new turns below. Keep facts, "
        "decisions, names, numbers and open questions; drop pleasantries. Answer "
        "with the updated summary only."
    )

    def __init__(self, low_water: float = 0.75, summary_tokens: int = 300) -> None:
        super().__init__(low_water)
        self.summary_tokens = summary_tokens


STRATEGIES = {s.name: s for s in (DropOldest, KeepFirstAndRecent, Summarize)}


class Conversation:
    """A system prompt, then turns; sent within a token budget.

    ``context_window`` defaults to the table's value for the model of each
    call; ``reserve`` (room for the reply) to the call's ``max_tokens``, or a
    quarter of the window up to 4,096 tokens. ``counter`` counts the tokens
    of a text: the heuristic by default, or ``tokens.exact_counter()``.
    """

    def __init__(
        self,
        system: Optional[str] = None,
        context_window: Optional[int] = None,
        reserve: Optional[int] = None,
        strategy: Optional[Strategy] = None,
        *,
        model: Optional[str] = None,
        counter: Optional[Callable[[str], int]] = None,
    ) -> None:
        self.system = system
        self.counter = counter
        self.context_window = context_window
        self.reserve = reserve
        self.strategy = strategy or DropOldest()
        self.model = model
        self._threads: Dict[str, _Thread] = {"main": _Thread()}
        self.thread = "main"
        #: What fitting the last successful request did, and what it sent.
        self.last_trim: Optional[TrimReport] = None
        self.last_sent: List[Dict[str, Any]] = []

    # -- the history ----------------------------------------------------------

    @property
    def messages(self) -> List[Dict[str, Any]]:
        """The whole conversation of the current thread, as wire message dicts."""
        system = [{"role": "system", "content": self.system}] if self.system else []
        return system + [dict(m) for m in self._current.messages]

    @property
    def threads(self) -> List[str]:
        return list(self._threads)

    @property
    def _current(self) -> _Thread:
        return self._threads[self.thread]

    def switch(self, name: str) -> None:
        """Make ``name`` the current thread, creating it empty if new."""
        self._threads.setdefault(name, _Thread())
        self.thread = name

    def reset(self, keep_system: bool = True) -> None:
        """Forget the current thread's turns (and the system prompt, if asked)."""
        self._threads[self.thread] = _Thread()
        if not keep_system:
            self.system = None

    def add(self, message: Mapping[str, Any], *, pinned: bool = False) -> None:
        """Append a message as it is; ``pinned`` keeps its turn from ever being trimmed.

        The history is checked as a whole before the next request is sent.
        """
        thread = self._current
        thread.messages.append(dict(message))
        thread.tokens.append(message_tokens(message, self.counter or counter_for(self.model or "")))
        thread.pinned.append(pinned)

    # -- asking -----------------------------------------------------------------

    def ask(
        self,
        client: Client,
        text: Optional[str] = None,
        *,
        model: Optional[str] = None,
        tool_results: Optional[Mapping[str, str]] = None,
        **params: Any,
    ) -> Completion:
        """Send ``text`` (and/or ``tool_results``: call id -> output); commit on success."""
        model = model or self.model or client.settings.model
        new = self._new_messages(text, tool_results)
        messages, commit = self._prepare(client, model, new, params)
        completion = client.chat(messages, model=model, **params)
        commit(completion)
        return completion

    def stream(
        self,
        client: Client,
        text: Optional[str] = None,
        *,
        model: Optional[str] = None,
        tool_results: Optional[Mapping[str, str]] = None,
        **params: Any,
    ) -> Stream:
        """Like ``ask``, streamed; the turn is committed when the stream completes."""
        model = model or self.model or client.settings.model
        new = self._new_messages(text, tool_results)
        messages, commit = self._prepare(client, model, new, params)
        return client.stream(messages, model=model, on_complete=commit, **params)

    def _new_messages(
        self, text: Optional[str], tool_results: Optional[Mapping[str, str]]
    ) -> List[Dict[str, Any]]:
        new = [
            {"role": "tool", "tool_call_id": call_id, "content": output}
            for call_id, output in (tool_results or {}).items()
        ]
        if text is not None:
            new.append({"role": "user", "content": text})
        if not new:
            raise InvalidRequestError("nothing to send", hint="pass text, tool_results, or both")
        return new

    def _prepare(
        self, client: Client, model: str, new: List[Dict[str, Any]], params: Mapping[str, Any]
    ) -> Tuple[List[Dict[str, Any]], Callable[[Completion], None]]:
        """The messages to send now, and the function that commits the turn."""
        thread = self._current
        count = self.counter or counter_for(model)
        validate_messages([*self.messages, *new])  # before anything else: fail early
        messages = thread.messages + new
        tokens = thread.tokens + [message_tokens(m, count) for m in new]
        pinned = thread.pinned + [False] * len(new)
        window = self.context_window or context_window_for(model)
        reserve = self.reserve or params.get("max_completion_tokens") or params.get("max_tokens")
        budget = window - int(reserve or min(4096, window // 4))
        plan = self._fit(client, model, thread, messages, tokens, pinned, budget)
        start, summary, summary_upto, sent, report = plan

        def commit(completion: Completion) -> None:
            reply = completion.message.to_dict()
            thread.messages = [*messages, reply]
            thread.tokens = [*tokens, message_tokens(reply, count)]
            thread.pinned = [*pinned, False]
            thread.start, thread.summary, thread.summary_upto = start, summary, summary_upto
            self.last_trim = report
            self.last_sent = sent

        return sent, commit

    def _fit(
        self,
        client: Client,
        model: str,
        thread: _Thread,
        messages: List[Dict[str, Any]],
        tokens: List[int],
        pinned: List[bool],
        budget: int,
    ) -> Tuple[int, Optional[str], int, List[Dict[str, Any]], TrimReport]:
        strategy = self.strategy
        turns = _turns(messages)
        turn_tokens = [sum(tokens[a:b]) for a, b in turns]
        turn_pinned = [any(pinned[a:b]) for a, b in turns]
        system = [{"role": "system", "content": self.system}] if self.system else []
        fixed = sum(message_tokens(m) for m in system) + 3  # reply priming
        summary_room = strategy.summary_tokens if isinstance(strategy, Summarize) else 0
        if thread.summary:
            fixed += message_tokens({"content": SUMMARY_PREFIX + thread.summary})

        def keeps(index: int, start: int) -> bool:
            return index >= start or turn_pinned[index] or (strategy.keep_first and index == 0)

        last = len(turns) - 1
        start = min(thread.start, last)
        total = fixed + sum(t for i, t in enumerate(turn_tokens) if keeps(i, start))
        if total > budget:
            if strategy.summarize and not thread.summary:
                total += summary_room  # the summary about to exist takes room too
            target = int(budget * strategy.low_water)
            while total > target and start < last:
                if not keeps(start, start + 1):  # pinned or first: kept anyway
                    total -= turn_tokens[start]
                start += 1
            if total > budget:
                raise ContextOverflowError(
                    f"{total} tokens do not fit the budget of {budget} even with every "
                    "droppable turn dropped (the system prompt, pinned turns and the "
                    "new message are never dropped)",
                    hint="raise context_window, lower the reserve (max_tokens), or "
                    "shorten the message",
                )
        summary, summary_upto, summarized = thread.summary, thread.summary_upto, 0
        if strategy.summarize and start > summary_upto:
            folded = [
                m
                for i in range(summary_upto, start)
                if not keeps(i, start)
                for m in messages[turns[i][0] : turns[i][1]]
            ]
            if folded:
                summary = self._summarize(client, model, summary, folded, strategy)
                summarized = len(folded)
            summary_upto = start
        head = list(system)
        if summary:
            head.append({"role": "system", "content": SUMMARY_PREFIX + summary})
        kept = [i for i in range(len(turns)) if keeps(i, start)]
        sent = head + [m for i in kept for m in messages[turns[i][0] : turns[i][1]]]
        kept_set = set(kept)
        dropped = [i for i in range(len(turns)) if i not in kept_set]
        report = TrimReport(
            strategy=strategy.name,
            budget=budget,
            tokens_sent=3  # reply priming
            + sum(message_tokens(m) for m in head)
            + sum(turn_tokens[i] for i in kept),
            dropped_messages=sum(turns[i][1] - turns[i][0] for i in dropped),
            dropped_tokens=sum(turn_tokens[i] for i in dropped),
            summarized_messages=summarized,
        )
        return start, summary, summary_upto, sent, report

    @staticmethod
    def _summarize(
        client: Client,
        model: str,
        summary: Optional[str],
        messages: List[Dict[str, Any]],
        strategy: Strategy,
    ) -> str:
        lines = [f"Current summary:\n{summary or '(none yet)'}", "", "New turns:"]
        for message in messages:
            who = message.get("role", "")
            if message.get("tool_call_id"):
                who = f"tool result ({message['tool_call_id']})"
            content = message.get("content")
            text = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)
            calls = message.get("tool_calls")
            if calls:
                text = (text or "") + " [tool calls: " + json.dumps(calls, ensure_ascii=False) + "]"
            lines.append(f"{who}: {text}")
        limit = strategy.summary_tokens if isinstance(strategy, Summarize) else 300
        done = client.chat(
            [
                {"role": "system", "content": Summarize.PROMPT},
                {"role": "user", "content": "\n".join(lines)},
            ],
            model=model,
            max_tokens=limit,
        )
        return done.content.strip()

    # -- saving ---------------------------------------------------------------------

    def to_dict(self) -> Dict[str, Any]:
        return {
            "format": "rawchat.conversation/1",
            "system": self.system,
            "model": self.model,
            "context_window": self.context_window,
            "reserve": self.reserve,
            "strategy": self.strategy.name,
            "thread": self.thread,
            "threads": {
                name: {
                    "messages": t.messages,
                    "pinned": [i for i, p in enumerate(t.pinned) if p],
                    "start": t.start,
                    "summary": t.summary,
                    "summary_upto": t.summary_upto,
                }
                for name, t in self._threads.items()
            },
        }

    def save(self, path: str) -> None:
        """Write the conversation as JSON, atomically (a crash leaves the old file)."""
        atomic_write(path, json.dumps(self.to_dict(), ensure_ascii=False, indent=1) + "\n")

    @classmethod
    def load(cls, path: str, *, strategy: Optional[Strategy] = None) -> Conversation:
        """Read a saved conversation; ``strategy`` replaces the saved one's defaults."""
        try:
            with open(path, encoding="utf-8") as saved:
                data = json.load(saved)
            return cls.from_dict(data, strategy=strategy)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InvalidRequestError(
                f"cannot load a conversation from {path}: {exc}",
                hint="the file should be one written by Conversation.save()",
            ) from exc

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, strategy: Optional[Strategy] = None
    ) -> Conversation:
        if data.get("format") != "rawchat.conversation/1":
            raise ValueError(f"unknown format {data.get('format')!r}")
        chosen = strategy or STRATEGIES.get(data.get("strategy", ""), DropOldest)()
        conversation = cls(
            data.get("system"),
            data.get("context_window"),
            data.get("reserve"),
            chosen,
            model=data.get("model"),
        )
        conversation._threads = {}
        count = counter_for(data.get("model") or "")
        for name, saved in data["threads"].items():
            messages = validate_messages(saved["messages"]) if saved["messages"] else []
            pinned = set(saved.get("pinned", ()))
            conversation._threads[name] = _Thread(
                messages=messages,
                tokens=[message_tokens(m, count) for m in messages],
                pinned=[i in pinned for i in range(len(messages))],
                start=int(saved.get("start", 0)),
                summary=saved.get("summary"),
                summary_upto=int(saved.get("summary_upto", 0)),
            )
        conversation.thread = data.get("thread", "main")
        conversation._threads.setdefault(conversation.thread, _Thread())
        return conversation
