"""Conversation memory: the history a stateless model needs, within its context window.

The Chat Completions API keeps nothing between calls
(https://platform.openai.com/docs/guides/conversation-state): the client
sends the whole conversation every time. ``Conversation`` keeps it, and

* commits a turn only when its answer arrived whole: on any error, a
  stream broken halfway included, the history is exactly as before the
  call (the partial answer stays on the error);
* sends what the trimming plan says fits the budget
  (``rawchat.protocol.trimming``: turns, strategies, the low-water mark),
  asking the model for the summary when a ``Summarize`` plan calls for one;
* keeps named threads (topics), and saves to JSON atomically;
* takes one turn at a time, also when shared between threads.

This module is the shell around that pure plan: it holds the history and
each thread's ``TrimState``, calls the client, and writes files.
"""

from __future__ import annotations

import json
import threading
import weakref
from dataclasses import dataclass, field
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    Optional,
    Tuple,
)

from ..errors import InvalidRequestError
from ..protocol.completion import Completion
from ..protocol.request import validate_messages
from ..protocol.tokens import counter_for, message_tokens
from ..protocol.trimming import (
    STRATEGIES,
    DropOldest,
    Strategy,
    TrimPlan,
    TrimReport,
    TrimState,
    budget_for,
    context_window_for,
    plan_trim,
)
from ..storage import atomic_write

if TYPE_CHECKING:  # pragma: no cover
    from ..client.client import Client
    from ..client.stream import Stream

__all__ = ["Conversation", "TurnStream"]

FORMAT = "rawchat.conversation/1"


@dataclass
class _Thread:
    """One thread's history, each message's token count and pin, and its trimming state."""

    messages: List[Dict[str, Any]] = field(default_factory=list)
    tokens: List[int] = field(default_factory=list)
    pinned: List[bool] = field(default_factory=list)
    trim: TrimState = field(default_factory=TrimState)


class Conversation:
    """A system prompt, then turns; sent within a token budget.

    ``context_window`` defaults to the table's value for the model of each
    call; ``reserve`` (room for the reply) to the call's ``max_tokens``, or a
    quarter of the window up to 4,096 tokens. ``counter`` counts the tokens
    of a text: the heuristic by default, or ``tokens.exact_counter()``.

    One turn at a time. A conversation may be shared between threads, and
    its turns are serialized: ``ask()`` holds the conversation's lock from
    preparing the request until the answer is committed, so an ``ask()``
    from another thread waits its turn and then sends the history with the
    first turn in it. A streamed turn does not hold the lock while the
    caller reads: from ``stream()`` until that stream completes, fails or
    is closed, another turn (``ask()``, ``stream()``), ``add()`` or
    ``reset()`` is refused with ``InvalidRequestError`` (waiting instead
    would hang a caller that asks again from inside its own ``with`` block).
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
        # Reentrant: a hook running inside a turn may still read the conversation.
        self._lock = threading.RLock()
        self._open_stream: Optional[object] = None  # the open streamed turn's token

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
        with self._lock:
            self._threads.setdefault(name, _Thread())
            self.thread = name

    def reset(self, keep_system: bool = True) -> None:
        """Forget the current thread's turns (and the system prompt, if asked)."""
        with self._lock:
            self._refuse_while_streaming("reset")
            self._threads[self.thread] = _Thread()
            if not keep_system:
                self.system = None

    def add(self, message: Mapping[str, Any], *, pinned: bool = False) -> None:
        """Append a message as it is; ``pinned`` keeps its turn from ever being trimmed.

        The history is checked as a whole before the next request is sent.
        """
        count = self.counter or counter_for(self.model or "")
        with self._lock:
            self._refuse_while_streaming("add a message")
            thread = self._current
            thread.messages.append(dict(message))
            thread.tokens.append(message_tokens(message, count))
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
        """Send ``text`` (and/or ``tool_results``: call id -> output); commit on success.

        Another thread's turn waits until this one is committed or failed.
        """
        model = model or self.model or client.settings.model
        new = self._new_messages(text, tool_results)
        with self._lock:
            self._refuse_while_streaming("ask")
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
    ) -> TurnStream:
        """Like ``ask``, streamed; the turn is committed when the stream completes.

        Until the stream completes, fails or is closed, the next turn is
        refused (see the class docstring): read it in a ``with`` block.
        """
        model = model or self.model or client.settings.model
        new = self._new_messages(text, tool_results)
        with self._lock:
            self._refuse_while_streaming("start another turn")
            messages, commit = self._prepare(client, model, new, params)
            stream = client.stream(messages, model=model, on_complete=commit, **params)
            token = self._open_stream = object()
        return TurnStream(stream, lambda: self._stream_ended(token))

    def _stream_ended(self, token: object) -> None:
        # No lock: only this token's end clears it, and only once.
        if self._open_stream is token:
            self._open_stream = None

    def _refuse_while_streaming(self, what: str) -> None:
        if self._open_stream is not None:
            raise InvalidRequestError(
                f"cannot {what}: a streamed turn of this conversation is still open",
                hint="read that stream to its end or close it (leave its `with` "
                "block) first; a conversation takes one turn at a time",
            )

    @staticmethod
    def _new_messages(
        text: Optional[str], tool_results: Optional[Mapping[str, str]]
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
        """The messages to send now, and the function that commits the turn.

        Nothing is changed here: the history, the thread's trimming state and
        ``last_trim`` change only when ``commit`` is called with the answer.
        """
        thread = self._current
        count = self.counter or counter_for(model)
        validate_messages([*self.messages, *new])  # before anything else: fail early
        messages = thread.messages + new
        tokens = thread.tokens + [message_tokens(m, count) for m in new]
        pinned = thread.pinned + [False] * len(new)
        reserve = self.reserve or params.get("max_completion_tokens") or params.get("max_tokens")
        plan = plan_trim(
            messages,
            tokens,
            pinned,
            budget=budget_for(self.context_window or context_window_for(model), reserve),
            state=thread.trim,
            system=self.system,
            strategy=self.strategy,
            count=count,
        )
        if plan.to_summarize:
            plan = plan.with_summary(self._summarize(client, model, plan), count)
        sent = plan.messages

        def commit(completion: Completion) -> None:
            reply = completion.message.to_dict()
            thread.messages = [*messages, reply]
            thread.tokens = [*tokens, message_tokens(reply, count)]
            thread.pinned = [*pinned, False]
            thread.trim = plan.state
            self.last_trim = plan.report
            self.last_sent = sent

        return sent, commit

    @staticmethod
    def _summarize(client: Client, model: str, plan: TrimPlan) -> str:
        """The model's summary of the dropped turns the plan folds."""
        done = client.chat(plan.summary_request(), model=model, max_tokens=plan.summary_tokens)
        return done.content.strip()

    # -- saving ---------------------------------------------------------------------

    def to_dict(self) -> Dict[str, Any]:
        with self._lock:  # not half a turn
            return self._as_dict()

    def _as_dict(self) -> Dict[str, Any]:
        return {
            "format": FORMAT,
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
                    "start": t.trim.start,
                    "summary": t.trim.summary,
                    "summary_upto": t.trim.summary_upto,
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
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
            raise InvalidRequestError(
                f"cannot load a conversation from {path}: {exc}",
                hint="the file should be one written by Conversation.save()",
            ) from exc

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, strategy: Optional[Strategy] = None
    ) -> Conversation:
        if not isinstance(data, Mapping):
            raise ValueError(f"a saved conversation is a JSON object, not a {type(data).__name__}")
        if data.get("format") != FORMAT:
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
                trim=TrimState(
                    start=int(saved.get("start", 0)),
                    summary=saved.get("summary"),
                    summary_upto=int(saved.get("summary_upto", 0)),
                ),
            )
        conversation.thread = data.get("thread", "main")
        conversation._threads.setdefault(conversation.thread, _Thread())
        return conversation


class TurnStream:
    """The ``Stream`` of one conversation turn, as ``Conversation.stream()`` returns it.

    It reads as the client's ``Stream`` (``rawchat.client.stream``) does:
    ``with``, iteration, ``text()``, ``completion``, ``close()``, and the
    stream's other attributes pass through to ``stream``. It also tells its
    conversation when the turn is over, so the next one may start: when the
    stream completes, fails, or is closed (or dropped unread).
    """

    def __init__(self, stream: Stream, ended: Callable[[], None]) -> None:
        self.stream = stream
        # Called once, by whichever comes first: an end seen here, or the
        # garbage collector taking a stream nobody read or closed.
        self._ended = weakref.finalize(self, ended)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.stream, name)

    def __enter__(self) -> TurnStream:
        try:
            self.stream.__enter__()
        except BaseException:
            self._ended()
            raise
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __iter__(self) -> Iterator[Any]:
        return self._watched(self.stream)

    def text(self) -> Iterator[str]:
        """The first choice's text deltas, each as soon as its bytes arrive."""
        return self._watched(self.stream.text())

    @property
    def completion(self) -> Completion:
        """The assembled answer; reads the rest of the stream if needed."""
        try:
            return self.stream.completion
        finally:
            self._ended()

    def close(self) -> None:
        """Stop reading and release the connection; the conversation is free again."""
        try:
            self.stream.close()
        finally:
            self._ended()

    def _watched(self, items: Iterable[Any]) -> Iterator[Any]:
        try:
            # Not `yield from`: it would close the stream's own iterator too
            # when the caller leaves this loop early.
            for item in items:  # noqa: UP028
                yield item
        except GeneratorExit:
            # The caller stopped reading this loop; the stream stays open
            # (another loop may read on) until it is closed.
            raise
        except BaseException:
            self._ended()
            raise
        self._ended()
