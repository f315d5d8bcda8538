"""A Responses API stream: bytes in, events out, one ``Response`` at the end.

A streamed response (https://platform.openai.com/docs/api-reference/responses-streaming)
is a sequence of server-sent events whose data is a JSON object with a
``type``: ``response.created``, then per output item
``response.output_item.added``, deltas (``response.output_text.delta``,
``response.function_call_arguments.delta``...), ``response.output_item.done``,
and a terminal event: ``response.completed`` or ``response.incomplete`` (the
answer is final), ``response.failed`` or ``error`` (it is not). What this
module makes explicit:

* Dispatch is on the data's ``type``. OpenAI also sends ``event:`` lines,
  which must then agree; OpenRouter sends none.
* Deltas are placed by ``output_index`` (or ``item_id``) and
  ``content_index``, not by arrival: OpenRouter finishes items out of
  order, and a delta may even come before its item was announced. An
  ``output_item.done`` replaces what the deltas built, and the terminal
  event's ``response.output`` (when not empty) replaces everything.
* ``sequence_number`` numbers the events; the numbers that never arrived
  are recorded (``gaps``), not fatal. Older streams have none at all.
* The end is the terminal event, not ``[DONE]``; a ``data: [DONE]`` after
  it (OpenRouter) is tolerated, and anything else after it is ignored and
  counted. A body that ends before a terminal event is truncated:
  ``close()`` raises ``IncompleteStreamError`` with the partial ``Response``.
* ``obfuscation`` (random padding on deltas, against length side channels)
  is ignored, as are event types rawchat does not know; they still reach
  the caller.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Dict, Iterator, List, Mapping, Optional, Set, Tuple

from ..errors import IncompleteStreamError, InvalidResponseError, StreamError
from .chunks import event_object, stream_error
from .completion import int_or, label
from .responses import Response, _response, parse_response
from .sse import ServerSentEvent, SSEParser

__all__ = [
    "TERMINAL",
    "TEXT_DELTA",
    "ResponseAccumulator",
    "ResponseEvent",
    "ResponseStreamDecoder",
]

TEXT_DELTA = "response.output_text.delta"
#: The events after which the answer is final.
TERMINAL = ("response.completed", "response.incomplete")


@dataclass(frozen=True)
class ResponseEvent:
    """One decoded event of a Responses stream.

    ``type`` is the data's ``type``; ``sequence_number`` is ``None`` when
    the server does not number its events; ``data`` is the decoded JSON
    object, as sent.
    """

    type: str
    sequence_number: Optional[int] = None
    data: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False, hash=False)

    @property
    def delta(self) -> str:
        """The text a ``*.delta`` event adds (``""`` for other events)."""
        value = self.data.get("delta")
        return value if isinstance(value, str) else ""

    @property
    def text(self) -> str:
        """The answer text this event adds: an ``output_text`` delta, else ``""``."""
        return self.delta if self.type == TEXT_DELTA else ""

    @property
    def output_index(self) -> Optional[int]:
        value = self.data.get("output_index")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    @property
    def item_id(self) -> Optional[str]:
        return label(self.data.get("item_id"))


# -- accumulation ----------------------------------------------------------------


class _Part:
    """A content or summary part being streamed: its template and text pieces."""

    __slots__ = ("final", "key", "pieces", "template")

    def __init__(self, key: str, kind: str) -> None:
        self.key = key  # "text", or "refusal" for a refusal part
        self.template: Dict[str, Any] = {"type": kind, key: ""}
        self.pieces: List[str] = []
        self.final: Optional[Dict[str, Any]] = None

    def build(self) -> Dict[str, Any]:
        if self.final is not None:
            return self.final
        part = dict(self.template)
        part[self.key] = "".join(self.pieces)
        return part


class _Item:
    """An output item being streamed. Pieces are kept in lists and joined
    when asked, so a long stream costs linear time."""

    __slots__ = ("content", "done", "fields", "summary", "template")

    def __init__(self, template: Optional[Dict[str, Any]] = None) -> None:
        self.template: Dict[str, Any] = dict(template or {})
        self.done: Optional[Dict[str, Any]] = None  # output_item.done replaces the rest
        self.content: Dict[int, _Part] = {}
        self.summary: Dict[int, _Part] = {}
        self.fields: Dict[str, List[str]] = {}  # "arguments" / "input" -> pieces

    def build(self) -> Dict[str, Any]:
        if self.done is not None:
            return self.done
        item = dict(self.template)
        for name, parts in (("content", self.content), ("summary", self.summary)):
            if parts:
                listed = item.get(name)
                merged = dict(enumerate(listed if isinstance(listed, list) else []))
                merged.update((index, part.build()) for index, part in parts.items())
                item[name] = [merged[index] for index in sorted(merged)]
        for name, pieces in self.fields.items():
            item[name] = "".join(pieces)
        return item


class ResponseAccumulator:
    """Collects the events of one stream; ``response()`` returns what they add up to.

    Items live by ``output_index``; an ``item_id`` finds its item's index
    when an event has no ``output_index``. What each event type does is
    data: the tables below.
    """

    def __init__(self) -> None:
        self.snapshot: Dict[str, Any] = {}  # the last response object the server sent
        self.final: Optional[Response] = None  # set by the terminal event
        self._items: Dict[int, _Item] = {}
        self._index_of: Dict[str, int] = {}
        self._seen: Set[int] = set()

    def number(self, sequence_number: Optional[int]) -> None:
        """Note an event's ``sequence_number`` (``None``: the server numbers none)."""
        if sequence_number is not None:
            self._seen.add(sequence_number)

    @property
    def gaps(self) -> Tuple[int, ...]:
        """Sequence numbers between the lowest and highest seen that never came."""
        if not self._seen:
            return ()
        return tuple(sorted(set(range(min(self._seen), max(self._seen) + 1)) - self._seen))

    def add(self, event: ResponseEvent) -> None:
        """Apply one event; types with no effect on the answer are passed over."""
        data, kind = event.data, event.type
        if kind in _SNAPSHOTS:
            if isinstance(data.get("response"), dict):
                self.snapshot = data["response"]
        elif kind in _TEXT:
            self._text(data, *_TEXT[kind])
        elif kind in _FIELDS:
            self._field(data, *_FIELDS[kind])
        elif kind in _PARTS:
            self._part(data, *_PARTS[kind])
        elif kind in ("response.output_item.added", "response.output_item.done"):
            given = data.get("item")
            if not isinstance(given, dict):
                raise _malformed(f"{kind} without an item object", data)
            item = self._item(data, given)
            if kind.endswith(".done"):
                item.done = given
            else:
                # Pieces that came before the announcement keep their place.
                item.template = dict(given)

    def response(self) -> Response:
        """The ``Response`` so far (the final one after a terminal event)."""
        if self.final is not None:
            return self.final
        output = tuple(self._items[index].build() for index in sorted(self._items))
        return replace(_response(self.snapshot, output), sequence_gaps=self.gaps)

    def finish(self, data: Mapping[str, Any]) -> Response:
        """The terminal event: the final ``Response`` is its ``response``
        object, with the assembled output if that object has none."""
        snapshot = data.get("response")
        if not isinstance(snapshot, dict):
            raise _malformed(f"{data.get('type')} without a response object", data)
        self.snapshot = snapshot
        if snapshot.get("output"):
            try:
                final = parse_response(snapshot)
            except InvalidResponseError as exc:
                raise _malformed(exc.message, data) from exc
        else:
            final = self.response()
        self.final = replace(final, sequence_gaps=self.gaps)
        return self.final

    def _item(self, data: Mapping[str, Any], guess: Mapping[str, Any]) -> _Item:
        """The item an event is about; made from ``guess`` if none came yet."""
        item_id = label(data.get("item_id")) or label(guess.get("id"))
        index = data.get("output_index")
        if not isinstance(index, int) or isinstance(index, bool):
            index = self._index_of.get(item_id or "")
        if index is None:
            index = max(self._items, default=-1) + 1
        if item_id:
            self._index_of.setdefault(item_id, index)
        item = self._items.get(index)
        if item is None:
            item = self._items[index] = _Item(guess)
            if item_id:
                item.template["id"] = item_id
        return item

    def _part(
        self, data: Mapping[str, Any], guess: Mapping[str, Any], where: str, done: bool
    ) -> None:
        """``content_part`` / ``reasoning_summary_part`` ``.added`` and ``.done``."""
        given = data.get("part")
        if not isinstance(given, dict):
            return
        kind = str(given.get("type") or "")
        part = self._slot(data, guess, where, kind, "refusal" if kind == "refusal" else "text")
        if done:
            part.final = given
        else:
            part.template = dict(given)

    def _text(
        self,
        data: Mapping[str, Any],
        guess: Mapping[str, Any],
        where: str,
        kind: str,
        key: str,
        done: bool,
    ) -> None:
        """A text delta, or (``done``) the part's whole text under ``key``."""
        part = self._slot(data, guess, where, kind, key)
        if not done and isinstance(data.get("delta"), str):
            part.pieces.append(data["delta"])
        elif done and isinstance(data.get(key), str):
            part.pieces = [data[key]]

    def _slot(
        self, data: Mapping[str, Any], guess: Mapping[str, Any], where: str, kind: str, key: str
    ) -> _Part:
        item = self._item(data, guess)
        parts = item.summary if where == "summary" else item.content
        index = int_or(data.get("summary_index" if where == "summary" else "content_index"), 0)
        part = parts.get(index)
        if part is None:
            part = parts[index] = _Part(key, kind)
        return part

    def _field(
        self, data: Mapping[str, Any], guess: Mapping[str, Any], name: str, done: bool
    ) -> None:
        """Function arguments or custom tool input: a delta, or the whole value when done."""
        pieces = self._item(data, guess).fields.setdefault(name, [])
        if not done and isinstance(data.get("delta"), str):
            pieces.append(data["delta"])
        elif done and isinstance(data.get(name), str):
            pieces[:] = [data[name]]


#: What an item is taken to be when a piece of it comes before its announcement.
_MESSAGE = {"type": "message", "role": "assistant", "content": []}
_REASONING = {"type": "reasoning", "summary": []}
_FUNCTION_CALL = {"type": "function_call", "arguments": ""}
_CUSTOM_CALL = {"type": "custom_tool_call", "input": ""}

#: Events carrying the whole response object so far.
_SNAPSHOTS = ("response.created", "response.in_progress", "response.queued")

#: Text streamed into a part: type -> (item guess, where, part type, text key, done).
_TEXT = {
    TEXT_DELTA: (_MESSAGE, "content", "output_text", "text", False),
    "response.output_text.done": (_MESSAGE, "content", "output_text", "text", True),
    "response.refusal.delta": (_MESSAGE, "content", "refusal", "refusal", False),
    "response.refusal.done": (_MESSAGE, "content", "refusal", "refusal", True),
    "response.reasoning_summary_text.delta": (_REASONING, "summary", "summary_text", "text", False),
    "response.reasoning_summary_text.done": (_REASONING, "summary", "summary_text", "text", True),
    "response.reasoning_text.delta": (_REASONING, "content", "reasoning_text", "text", False),
    "response.reasoning_text.done": (_REASONING, "content", "reasoning_text", "text", True),
}

#: Text streamed into an item's field: type -> (item guess, field, done).
_FIELDS = {
    "response.function_call_arguments.delta": (_FUNCTION_CALL, "arguments", False),
    "response.function_call_arguments.done": (_FUNCTION_CALL, "arguments", True),
    "response.custom_tool_call_input.delta": (_CUSTOM_CALL, "input", False),
    "response.custom_tool_call_input.done": (_CUSTOM_CALL, "input", True),
}

#: Parts announced and finished: type -> (item guess, where, done).
_PARTS = {
    "response.content_part.added": (_MESSAGE, "content", False),
    "response.content_part.done": (_MESSAGE, "content", True),
    "response.reasoning_summary_part.added": (_REASONING, "summary", False),
    "response.reasoning_summary_part.done": (_REASONING, "summary", True),
}


# -- the decoder -------------------------------------------------------------------


class ResponseStreamDecoder:
    """Bytes of a Responses stream in, ``ResponseEvent`` values out; no I/O.

    ``finished`` turns true at the terminal event; ``ignored`` counts the
    events that came after it; ``gaps`` lists the sequence numbers missed.
    """

    def __init__(self, parser: Optional[SSEParser] = None) -> None:
        self.parser = parser or SSEParser()
        self.accumulator = ResponseAccumulator()
        self.events = 0  # SSE events seen, [DONE] included
        self.ignored = 0  # events after the terminal one ([DONE] not counted)
        self.saw_done = False

    @property
    def finished(self) -> bool:
        return self.accumulator.final is not None

    @property
    def gaps(self) -> Tuple[int, ...]:
        return self.accumulator.gaps

    def response(self) -> Response:
        """The ``Response`` so far: partial until ``finished``, then final."""
        return self.accumulator.response()

    def feed(self, data: bytes) -> List[ResponseEvent]:
        """Decode the next bytes; return the events they complete."""
        return list(self.iter_feed(data))

    def iter_feed(self, data: bytes) -> Iterator[ResponseEvent]:
        """``feed``, one event at a time (each decoded object freed before the next)."""
        events = self.parser.feed(data)
        self.events += len(events)
        for sse in events:
            if sse.data.strip() == "[DONE]":
                self.saw_done = True
                continue
            if self.finished:
                self.ignored += 1
                continue
            try:
                event = self._decode(sse)
            except StreamError as exc:
                exc.partial = self.response()
                raise
            yield event

    def _decode(self, sse: ServerSentEvent) -> ResponseEvent:
        obj = event_object(sse.data, "event")
        kind = obj.get("type")
        if not isinstance(kind, str) or not kind:
            if sse.event == "error" or "error" in obj:  # an error in chat's shape
                kind = "error"
            else:
                raise _malformed("an event without a 'type'", obj)
        if sse.event != "message" and sse.event != kind:
            raise StreamError(
                f"the event line says {sse.event!r} but the data's type is {kind!r}",
                hint="the server or a proxy mixed up the stream; `rawchat replay` shows "
                "a saved capture event by event",
                body=obj,
            )
        number = obj.get("sequence_number")
        event = ResponseEvent(kind, number if int_or(number, -1) >= 0 else None, obj)
        accumulator = self.accumulator
        accumulator.number(event.sequence_number)
        if kind in TERMINAL:
            accumulator.finish(obj)
        elif kind == "response.failed":
            snapshot = obj.get("response")
            if isinstance(snapshot, dict):
                accumulator.snapshot = snapshot
            raise stream_error(accumulator.snapshot.get("error") or {}, sse.data)
        elif kind == "error":
            raise stream_error(obj, sse.data)
        else:
            accumulator.add(event)
        return event

    def feed_response(self, data: Any) -> Response:
        """A whole response object, from a server that ignored ``stream``."""
        self.accumulator.final = parse_response(data)
        return self.accumulator.final

    def close(self) -> Response:
        """End of the body: the final ``Response``, if the stream reached its end."""
        self.parser.close()
        if self.finished:
            return self.response()
        got = f"{self.events} events" if self.events else "no events"
        raise IncompleteStreamError(
            f"the stream ended after {got} without response.completed: the answer is truncated",
            hint="the connection was cut (server restart, proxy idle timeout, "
            "deadline); the text so far is on the error's .partial",
            partial=self.response(),
        )


def _malformed(message: str, value: Any) -> StreamError:
    return StreamError(f"malformed event: {message}", body=value)
