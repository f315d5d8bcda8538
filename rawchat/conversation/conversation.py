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
* takes one turn at a time, also when shared between threads or tasks.

It works with ``Client`` (``ask``, ``stream``) and with ``AsyncClient``
(``await ask_async``, ``async with stream_async``): one plan, one commit
rule, two drivers that only differ in how they wait for the client.

It speaks either API. With ``api="chat"`` (the default) each turn is a
Chat Completions call. With ``api="responses"``
(https://platform.openai.com/docs/guides/conversation-state) each turn is
``POST /responses``, in one of two ways:

* ``store=False`` (the default), stateless: the trimmed history goes as
  input items (messages, ``function_call`` and ``function_call_output``
  items; reasoning items with their ``encrypted_content`` when the call
  asked for ``include=["reasoning.encrypted_content"]``), the system prompt
  as ``instructions``, and ``store: false``, so the server keeps nothing;
* ``store=True``, server-side: each turn sends only what is new, with
  ``previous_response_id`` naming the last answer. The server replays the
  whole chain, and bills all of it as input tokens every turn: no trimming
  happens there (``context_window`` and the strategy do not apply), and
  ``instructions`` are not carried over from earlier responses, so the
  system prompt is sent again each turn.

The history is kept in chat's shape either way (an assistant message of a
Responses conversation also keeps its output items, under
``response_output``), so trimming, summaries and saved files are the same.

This module is the shell around that pure plan: it holds the history and
each thread's ``TrimState``, calls the client, and writes files.
"""

from __future__ import annotations

import asyncio
import json
import threading
import weakref
from dataclasses import dataclass, field
from typing import (
    TYPE_CHECKING,
    Any,
    AsyncIterator,
    Awaitable,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    Optional,
    Union,
)

from ..errors import InvalidRequestError
from ..protocol.completion import Completion
from ..protocol.request import validate_messages
from ..protocol.responses import Response
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
    from ..client.aio import AsyncClient
    from ..client.client import Client
    from ..client.stream import ResponseStream, Stream

__all__ = ["APIS", "AsyncTurnStream", "Conversation", "TurnStream"]

FORMAT = "rawchat.conversation/1"
#: The APIs a conversation can take its turns on.
APIS = ("chat", "responses")


@dataclass
class _Thread:
    """One thread's history, each message's token count and pin, and its trimming state."""

    messages: List[Dict[str, Any]] = field(default_factory=list)
    tokens: List[int] = field(default_factory=list)
    pinned: List[bool] = field(default_factory=list)
    trim: TrimState = field(default_factory=TrimState)
    #: With the Responses API and ``store``: the last answer's id, and how
    #: many of ``messages`` the server's chain holds up to it.
    response_id: Optional[str] = None
    chained: int = 0


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

    With ``AsyncClient``, ``await ask_async()`` and ``async with
    stream_async()`` keep the same rules between tasks: an ``ask_async()``
    waits for the one before it to commit or fail (on the event loop, never
    blocking it); while a turn awaits its answer or a streamed turn is open,
    another ``stream_async()``, a blocking turn, ``add()`` or ``reset()`` is
    refused with ``InvalidRequestError``.

    ``api`` is ``"chat"`` or ``"responses"``; ``store`` (Responses only)
    chains turns on the server with ``previous_response_id`` instead of
    resending the history (see the module docstring for what that costs).
    With the Responses API, ``ask()`` returns a ``Response`` and
    ``stream()`` reads as a ``ResponseStream``.
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
        api: str = "chat",
        store: bool = False,
    ) -> None:
        if api not in APIS:
            raise InvalidRequestError(
                f"api must be one of {', '.join(APIS)}, got {api!r}",
                hint='Conversation(api="responses") takes turns on POST /responses',
            )
        if store and api != "responses":
            raise InvalidRequestError(
                "store=True keeps the conversation on the server: only the Responses API does",
                hint='Conversation(api="responses", store=True)',
            )
        self.api = api
        self.store = bool(store)
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
        self._open_what = "a streamed turn"  # what holds the conversation, for the refusal
        # One per event loop: an asyncio lock belongs to the loop it first waits on.
        self._async_turns: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    # -- the history ----------------------------------------------------------

    @property
    def messages(self) -> List[Dict[str, Any]]:
        """The whole conversation of the current thread, as wire message dicts."""
        system = [{"role": "system", "content": self.system}] if self.system else []
        return system + [dict(m) for m in self._current.messages]

    @property
    def last_response_id(self) -> Optional[str]:
        """With ``store=True``: the id the next turn continues from (``None`` to start)."""
        return self._current.response_id

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
            turn = self._plan(model, new, params)
            if turn.summary_needed:
                turn.summarized(_summary_text(self._summary_asked(client, model, turn.plan)))
            answer = self._asked(client, model, turn.sent, params)
            turn.commit(answer)
        return answer  # type: ignore[no-any-return]

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
            turn = self._plan(model, new, params)
            if turn.summary_needed:
                turn.summarized(_summary_text(self._summary_asked(client, model, turn.plan)))
            stream = self._streamed(client, model, turn, params)
            token = self._held("a streamed turn")
        return TurnStream(stream, lambda: self._stream_ended(token))

    async def ask_async(
        self,
        client: AsyncClient,
        text: Optional[str] = None,
        *,
        model: Optional[str] = None,
        tool_results: Optional[Mapping[str, str]] = None,
        **params: Any,
    ) -> Completion:
        """``ask()`` with an ``AsyncClient``: the turn is committed once its
        answer is in; on any error or cancellation nothing changes.

        Another task's ``ask_async()`` waits until this one is committed or failed.
        """
        model = model or self.model or client.settings.model
        new = self._new_messages(text, tool_results)
        async with self._async_turn():
            with self._lock:
                self._refuse_while_streaming("ask")
                turn = self._plan(model, new, params)
                token = self._held("an unanswered turn")
            try:
                if turn.summary_needed:
                    asked = self._summary_asked(client, model, turn.plan)
                    turn.summarized(_summary_text(await asked))
                answer = await self._asked(client, model, turn.sent, params)
                with self._lock:
                    turn.commit(answer)
            finally:
                self._stream_ended(token)
        return answer  # type: ignore[no-any-return]

    def stream_async(
        self,
        client: AsyncClient,
        text: Optional[str] = None,
        *,
        model: Optional[str] = None,
        tool_results: Optional[Mapping[str, str]] = None,
        **params: Any,
    ) -> AsyncTurnStream:
        """``stream()`` with an ``AsyncClient``, for ``async with`` and
        ``async for``; the turn is committed when the stream completes.

        The request goes out when the block is entered. A conversation that
        needs a summary first has it made then, before the turn's request.
        """
        model = model or self.model or client.settings.model
        new = self._new_messages(text, tool_results)
        with self._lock:
            self._refuse_while_streaming("start another turn")
            turn = self._plan(model, new, params)
            # Built now when it can be, so bad parameters are refused at once.
            stream = None if turn.summary_needed else self._streamed(client, model, turn, params)
            token = self._held("a streamed turn")

        async def opened() -> Any:
            if stream is not None:
                return stream
            asked = self._summary_asked(client, model, turn.plan)
            turn.summarized(_summary_text(await asked))
            return self._streamed(client, model, turn, params)

        return AsyncTurnStream(opened, lambda: self._stream_ended(token))

    def _asked(
        self, client: Any, model: str, messages: List[Dict[str, Any]], params: Mapping[str, Any]
    ) -> Any:
        """The client's answer to one turn (or, from an ``AsyncClient``, its awaitable)."""
        if self.api == "responses":
            return client.respond(messages, model=model, **self._sent_with(params))
        return client.chat(messages, model=model, **params)

    def _streamed(self, client: Any, model: str, turn: _Turn, params: Mapping[str, Any]) -> Any:
        """The client's stream of one turn, committing the turn when it completes."""
        if self.api == "responses":
            return client.respond_stream(
                turn.sent, model=model, on_complete=turn.commit, **self._sent_with(params)
            )
        return client.stream(turn.sent, model=model, on_complete=turn.commit, **params)

    def _held(self, what: str) -> object:
        """Mark the conversation held by a turn in progress; its token ends it."""
        token = self._open_stream = object()
        self._open_what = what
        return token

    def _async_turn(self) -> asyncio.Lock:
        """The lock ``ask_async()`` turns queue on, in the running loop."""
        loop = asyncio.get_running_loop()
        with self._lock:
            lock = self._async_turns.get(loop)
            if lock is None:
                lock = self._async_turns[loop] = asyncio.Lock()
        return lock  # type: ignore[no-any-return]

    def _sent_with(self, params: Mapping[str, Any]) -> Dict[str, Any]:
        """The Responses parameters a turn adds: the system prompt, the
        storage choice, and the chain's last link."""
        sent = dict(params)
        if self.system:
            sent.setdefault("instructions", self.system)
        sent["store"] = self.store
        if self.store and self._current.response_id:
            sent["previous_response_id"] = self._current.response_id
        return sent

    def _stream_ended(self, token: object) -> None:
        # No lock: only this token's end clears it, and only once.
        if self._open_stream is token:
            self._open_stream = None

    def _refuse_while_streaming(self, what: str) -> None:
        if self._open_stream is not None:
            raise InvalidRequestError(
                f"cannot {what}: {self._open_what} of this conversation is still open",
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

    def _plan(self, model: str, new: List[Dict[str, Any]], params: Mapping[str, Any]) -> _Turn:
        """What to send now (once a summary, if the plan needs one, is in),
        and how to commit the turn.

        Nothing is changed here: the history, the thread's trimming state and
        ``last_trim`` change only when the turn is committed with its answer.
        """
        thread = self._current
        count = self.counter or counter_for(model)
        validate_messages([*self.messages, *new])  # before anything else: fail early
        messages = thread.messages + new
        tokens = thread.tokens + [message_tokens(m, count) for m in new]
        pinned = thread.pinned + [False] * len(new)
        reserve = (
            self.reserve
            or params.get("max_completion_tokens")
            or params.get("max_tokens")
            or params.get("max_output_tokens")
        )
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
        return _Turn(self, thread, messages, tokens, pinned, plan, count)

    def _summary_asked(self, client: Any, model: str, plan: TrimPlan) -> Any:
        """The model asked for the summary of the dropped turns the plan folds:
        its answer (or, from an ``AsyncClient``, its awaitable)."""
        if self.api == "responses":
            request = plan.summary_request()
            return client.respond(
                request[1:], model=model, instructions=request[0]["content"],
                max_output_tokens=plan.summary_tokens, store=False,
            )  # fmt: skip
        return client.chat(plan.summary_request(), model=model, max_tokens=plan.summary_tokens)

    # -- saving ---------------------------------------------------------------------

    def to_dict(self) -> Dict[str, Any]:
        with self._lock:  # not half a turn
            return self._as_dict()

    def _as_dict(self) -> Dict[str, Any]:
        saved = {
            "format": FORMAT,
            "system": self.system,
            "model": self.model,
            "context_window": self.context_window,
            "reserve": self.reserve,
            "strategy": self.strategy.name,
            "thread": self.thread,
            "threads": {name: self._thread_dict(t) for name, t in self._threads.items()},
        }
        if self.api != "chat":  # a chat conversation's file is as it always was
            saved.update(api=self.api, store=self.store, last_response_id=self.last_response_id)
        return saved

    def _thread_dict(self, thread: _Thread) -> Dict[str, Any]:
        saved = {
            "messages": thread.messages,
            "pinned": [i for i, p in enumerate(thread.pinned) if p],
            "start": thread.trim.start,
            "summary": thread.trim.summary,
            "summary_upto": thread.trim.summary_upto,
        }
        if self.api != "chat":
            saved.update(last_response_id=thread.response_id, chained=thread.chained)
        return saved

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
            api=data.get("api", "chat"),
            store=bool(data.get("store", False)),
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
                response_id=saved.get("last_response_id"),
                chained=int(saved.get("chained", 0)),
            )
        conversation.thread = data.get("thread", "main")
        conversation._threads.setdefault(conversation.thread, _Thread())
        return conversation


class _Turn:
    """One turn, planned: what it sends and how it is committed.

    ``summarized(text)`` folds the model's summary in when the plan asked
    for one (``summary_needed``); ``commit(answer)`` writes the turn into
    the history. Both drivers, blocking and asyncio, use it alike.
    """

    def __init__(
        self,
        conversation: Conversation,
        thread: _Thread,
        messages: List[Dict[str, Any]],
        tokens: List[int],
        pinned: List[bool],
        plan: TrimPlan,
        count: Callable[[str], int],
    ) -> None:
        self.conversation = conversation
        self.thread = thread
        self.messages = messages
        self.tokens = tokens
        self.pinned = pinned
        self.plan = plan
        self.count = count
        self.chained = conversation.store and thread.response_id is not None
        self.summary_needed = bool(plan.to_summarize) and not self.chained

    def summarized(self, summary: str) -> None:
        self.plan = self.plan.with_summary(summary, self.count)
        self.summary_needed = False

    @property
    def sent(self) -> List[Dict[str, Any]]:
        """The messages (or Responses input items) this turn sends."""
        conversation, sent = self.conversation, self.plan.messages
        if conversation.api == "responses":
            if self.chained:  # the server holds the rest of the chain
                sent = _input_items(self.messages[self.thread.chained :], self.messages)
            else:
                skip = 1 if conversation.system else 0  # the system prompt goes as instructions
                sent = _input_items(sent[skip:], self.messages)
        return sent

    def commit(self, answer: Any) -> None:
        thread, conversation = self.thread, self.conversation
        sent = self.sent  # as it was sent, before the chain moves on
        if isinstance(answer, Response):
            reply = _reply_message(answer)
            thread.response_id = answer.id if conversation.store else None
            thread.chained = len(self.messages) + 1
        else:
            reply = answer.message.to_dict()
        thread.messages = [*self.messages, reply]
        thread.tokens = [*self.tokens, message_tokens(reply, self.count)]
        thread.pinned = [*self.pinned, False]
        thread.trim = self.plan.state
        conversation.last_trim = self.plan.report
        conversation.last_sent = sent


def _summary_text(answer: Any) -> str:
    """The summary's text, from a chat ``Completion`` or a ``Response``."""
    if isinstance(answer, Response):
        return answer.output_text.strip()
    return answer.content.strip()  # type: ignore[no-any-return]


class TurnStream:
    """The stream of one conversation turn, as ``Conversation.stream()`` returns it.

    It reads as the client's ``Stream`` or ``ResponseStream``
    (``rawchat.client.stream``) does: ``with``, iteration, ``text()``,
    ``completion`` (chat) or ``response`` and ``events()`` (Responses),
    ``close()``, and the stream's other attributes pass through to ``stream``. It also tells its
    conversation when the turn is over, so the next one may start: when the
    stream completes, fails, or is closed (or dropped unread).
    """

    def __init__(self, stream: Union[Stream, ResponseStream], ended: Callable[[], None]) -> None:
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

    def events(self) -> Iterator[Any]:
        """Every named event of a Responses stream, as soon as its bytes arrive."""
        return self._watched(self.stream.events())  # type: ignore[union-attr]

    @property
    def completion(self) -> Completion:
        """The assembled answer; reads the rest of the stream if needed."""
        try:
            return self.stream.completion  # type: ignore[union-attr]
        finally:
            self._ended()

    @property
    def response(self) -> Response:
        """The assembled ``Response`` of a Responses turn; reads the rest if needed."""
        try:
            return self.stream.response  # type: ignore[union-attr]
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


class AsyncTurnStream:
    """The stream of one conversation turn on an ``AsyncClient``, as
    ``Conversation.stream_async()`` returns it.

    Read it as the client's ``AsyncStream`` or ``AsyncResponseStream``:
    ``async with``, ``async for``, ``text()``, ``completion`` or
    ``response`` once read, ``aclose()``; once entered, the stream's other
    attributes pass through to ``stream``. As ``TurnStream``, it tells its
    conversation when the turn is over: completed, failed, closed or dropped.
    """

    def __init__(self, opened: Callable[[], Awaitable[Any]], ended: Callable[[], None]) -> None:
        self._opened = opened
        self.stream: Any = None
        self._ended = weakref.finalize(self, ended)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or self.__dict__.get("stream") is None:
            raise AttributeError(name)
        return getattr(self.stream, name)

    async def __aenter__(self) -> AsyncTurnStream:
        try:
            self.stream = await self._opened()
            await self.stream.__aenter__()
        except BaseException:
            self._ended()
            raise
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._watched(self._entered())

    def text(self) -> AsyncIterator[str]:
        """The answer's text deltas, each as soon as its bytes arrive."""
        return self._watched(self._entered().text())

    def events(self) -> AsyncIterator[Any]:
        """Every named event of a Responses stream, as soon as its bytes arrive."""
        return self._watched(self._entered().events())

    @property
    def completion(self) -> Completion:
        """The assembled answer (read the stream to its end first)."""
        try:
            return self._entered().completion  # type: ignore[no-any-return]
        finally:
            self._ended()

    @property
    def response(self) -> Response:
        """The assembled ``Response`` of a Responses turn (read it to its end first)."""
        try:
            return self._entered().response  # type: ignore[no-any-return]
        finally:
            self._ended()

    async def aclose(self) -> None:
        """Stop reading and release the connection; the conversation is free again."""
        try:
            if self.stream is not None:
                await self.stream.aclose()
        finally:
            self._ended()

    def _entered(self) -> Any:
        if self.stream is None:
            raise InvalidRequestError(
                "the turn's stream is not open yet",
                hint="read it inside `async with conv.stream_async(client, ...) as s:`",
            )
        return self.stream

    async def _watched(self, items: AsyncIterator[Any]) -> AsyncIterator[Any]:
        try:
            async for item in items:
                yield item
        except GeneratorExit:
            raise  # the caller stopped this loop; the stream stays open until closed
        except BaseException:
            self._ended()
            raise
        self._ended()


# -- the history as Responses input ----------------------------------------------


def _input_items(
    messages: List[Dict[str, Any]], history: List[Dict[str, Any]]
) -> List[Dict[str, Any]]:
    """Chat-shaped ``messages`` as Responses input items.

    An assistant answer that came from the Responses API goes back as the
    output items it came as (reasoning items only with their
    ``encrypted_content``: without it a server that stored nothing cannot
    read them); a tool result answers its call by ``call_id``, as a custom
    tool's output if ``history`` shows the call was one.
    """
    custom = {
        item.get("call_id")
        for message in history
        for item in message.get("response_output") or ()
        if item.get("type") == "custom_tool_call"
    }
    items: List[Dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        if role == "tool":
            call_id = message.get("tool_call_id")
            kind = "custom_tool_call_output" if call_id in custom else "function_call_output"
            output = message.get("content")
            items.append({"type": kind, "call_id": call_id, "output": _text_of(output)})
        elif role == "assistant" and "response_output" in message:
            items.extend(_replayed(item) for item in message["response_output"] if _replays(item))
        elif role == "assistant":
            if message.get("content"):
                items.append({"role": "assistant", "content": _text_of(message["content"])})
            for call in message.get("tool_calls") or ():
                function = call.get("function") or {}
                items.append(
                    {
                        "type": "function_call",
                        "call_id": call.get("id"),
                        "name": function.get("name"),
                        "arguments": function.get("arguments", ""),
                    }
                )
        else:
            items.append({"role": role, "content": _parts_of(message.get("content"))})
    return items


def _replays(item: Mapping[str, Any]) -> bool:
    return item.get("type") != "reasoning" or bool(item.get("encrypted_content"))


def _replayed(item: Mapping[str, Any]) -> Dict[str, Any]:
    """An output item as input: a message or call without its id, which a
    server that stored nothing would look up and not find."""
    if item.get("type") == "reasoning":
        return dict(item)
    return {key: value for key, value in item.items() if key not in ("id", "status")}


def _parts_of(content: Any) -> Any:
    """Chat content parts under their Responses names."""
    if not isinstance(content, list):
        return content
    parts = []
    for part in content:
        if isinstance(part, Mapping) and part.get("type") == "text":
            parts.append({"type": "input_text", "text": part.get("text", "")})
        elif isinstance(part, Mapping) and part.get("type") == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, Mapping) else image
            parts.append({"type": "input_image", "image_url": url})
        else:
            parts.append(part)
    return parts


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
    return "" if content is None else json.dumps(content, ensure_ascii=False)


def _reply_message(response: Response) -> Dict[str, Any]:
    """A Responses answer as the chat assistant message the history keeps."""
    calls = [
        {
            "id": call.call_id,
            "type": "function",
            "function": {
                "name": call.name,
                "arguments": getattr(call, "arguments", None) or getattr(call, "input", ""),
            },
        }
        for call in response.tool_calls
    ]
    text = response.output_text or response.refusal
    reply: Dict[str, Any] = {"role": "assistant", "content": text if text or not calls else None}
    if calls:
        reply["tool_calls"] = calls
    reply["response_output"] = [dict(item) for item in response.output]
    return reply
