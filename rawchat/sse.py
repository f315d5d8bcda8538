"""Server-sent events: an incremental parser working on bytes, and an encoder.

Implements "Interpreting an event stream" of the WHATWG HTML standard
(https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation),
which is how Chat Completions streams arrive.

Feed it bytes as they come off the socket, in pieces of any size::

    parser = SSEParser()
    for piece in pieces:
        for event in parser.feed(piece):
            ...
    parser.close()

The rules it keeps, each of which has broken a well-known client:

* Lines end with CR, LF or CRLF. A CRLF split across two reads is one line
  end, not two (which would dispatch an event early): a trailing CR is
  remembered and a following LF dropped.
* Lines are split as bytes, then decoded. A multi-byte UTF-8 character
  split across reads is whole again by then; ``str.splitlines()`` is never
  used, since it also splits on U+2028 and U+0085 inside JSON strings.
  Invalid UTF-8 becomes U+FFFD; the stream is UTF-8 whatever the headers say.
* A leading byte order mark is dropped, even split across reads.
* ``:`` starts a comment (keep-alives). A line without a colon is a field
  with an empty value. One space after the colon is removed, no more.
  Field names are case-sensitive; unknown fields are ignored.
* ``data`` lines join with ``\\n``. An event whose data buffer is empty is
  not dispatched, so an ``id:``-only block yields nothing to ``json.loads``.
* The last event id persists from event to event; an id containing NUL is
  ignored. ``retry`` counts only when it is all ASCII digits.
* At the end of the stream an unterminated event is discarded, not
  dispatched; ``close()`` reports it through ``discarded``.

A line longer than ``max_line_bytes``, or an event with more data than
``max_event_bytes``, raises ``StreamError`` instead of eating memory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import List, Optional, Union

from .errors import StreamError

__all__ = ["SSEParser", "ServerSentEvent", "encode_comment", "encode_event"]

_BOM = b"\xef\xbb\xbf"
_LINE_END = re.compile(rb"\r\n|\r|\n")
_CR = 13

DEFAULT_MAX_LINE_BYTES = 4 * 1024 * 1024
DEFAULT_MAX_EVENT_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class ServerSentEvent:
    """One dispatched event.

    ``event``: the type, ``"message"`` unless an ``event:`` field said
    otherwise. ``data``: the data lines joined with ``\\n``. ``id``: the last
    event id seen so far in the stream (it persists across events).
    ``retry``: the reconnection time in ms, if this event's block set one.
    """

    event: str = "message"
    data: str = ""
    id: str = ""
    retry: Optional[int] = None


class SSEParser:
    """Incremental SSE parser: ``feed(bytes) -> [ServerSentEvent]``.

    Holds no I/O; pieces can be any size, down to one byte.
    """

    def __init__(
        self,
        *,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    ) -> None:
        self.max_line_bytes = max_line_bytes
        self.max_event_bytes = max_event_bytes
        #: The reconnection time (ms) last set by a ``retry`` field.
        self.reconnection_time: Optional[int] = None
        #: The last event id, as the spec's "last event ID buffer".
        self.last_event_id = ""
        #: After ``close()``: whether an unterminated event was thrown away.
        self.discarded = False
        self._head: Optional[bytes] = b""  # bytes before the BOM check; None once done
        self._partial: List[bytes] = []  # an unterminated line, in pieces
        self._partial_size = 0
        self._skip_lf = False  # the last piece ended in CR: a leading LF is its pair
        self._data: List[bytes] = []
        self._data_size = 0
        self._event_type = ""
        self._retry: Optional[int] = None

    def feed(self, piece: Union[bytes, bytearray, memoryview]) -> List[ServerSentEvent]:
        """Parse the next bytes of the stream; return the events they complete."""
        data = bytes(piece)
        if not data:  # an empty read must not cancel a pending CR's LF-skip
            return []
        if self._head is not None:
            data = self._head + data
            if len(data) < 3 and _BOM.startswith(data):
                self._head = data  # could still be a BOM: wait for more
                return []
            self._head = None
            if data.startswith(_BOM):
                data = data[3:]
        if self._skip_lf:
            self._skip_lf = False
            if data[:1] == b"\n":
                data = data[1:]
        if not data:
            return []

        cut = max(data.rfind(b"\n"), data.rfind(b"\r"))
        if cut < 0:  # no line ends yet: keep the piece, without copying
            self._keep_partial(data)
            return []
        if self._partial:
            self._partial.append(data[: cut + 1])
            block = b"".join(self._partial)
            self._partial = []
            self._partial_size = 0
        else:
            block = data if cut == len(data) - 1 else data[: cut + 1]
        if cut < len(data) - 1:
            self._keep_partial(data[cut + 1 :])
        else:
            self._skip_lf = data[cut] == _CR

        # Fast path: most streams use LF alone, and bytes.split is much
        # faster than the regex. Correct because without a CR in the block,
        # LF is the only possible line end.
        lines = _LINE_END.split(block) if b"\r" in block else block.split(b"\n")
        lines.pop()  # the block ends with a line end: the last item is b""
        if len(block) > self.max_line_bytes:
            self._check_lines(lines)
        return self._process(lines)

    def close(self) -> List[ServerSentEvent]:
        """Signal the end of the stream.

        Per the spec, an event not yet terminated by a blank line is
        discarded; ``discarded`` tells whether there was one. Returns the
        (always empty) list of events, so callers can treat it like ``feed``.
        """
        self.discarded = bool(self._partial or self._data or self._event_type)
        self._partial, self._partial_size = [], 0
        self._data, self._data_size = [], 0
        self._event_type = ""
        self._retry = None
        return []

    # -- internals --------------------------------------------------------

    def _keep_partial(self, data: bytes) -> None:
        self._partial.append(data)
        self._partial_size += len(data)
        if self._partial_size > self.max_line_bytes:
            raise self._too_long("line", self._partial_size, self.max_line_bytes)

    def _check_lines(self, lines: List[bytes]) -> None:
        longest = max(map(len, lines), default=0)
        if longest > self.max_line_bytes:
            raise self._too_long("line", longest, self.max_line_bytes)

    @staticmethod
    def _too_long(what: str, size: int, limit: int) -> StreamError:
        return StreamError(
            f"an SSE {what} of over {size} bytes exceeds the {limit}-byte limit",
            hint="the server is not sending a well-formed event stream; raise "
            "SSEParser(max_line_bytes=...) only if it really sends such events",
        )

    def _process(self, lines: List[bytes]) -> List[ServerSentEvent]:
        events = []
        data = self._data
        for line in lines:
            if not line:
                if data:
                    events.append(self._dispatch())
                    data = self._data
                else:
                    self._event_type = ""
                    self._retry = None
            elif line[:5] == b"data:":
                # The common case, handled inline: `data:` plus an optional space.
                value = line[6:] if line[5:6] == b" " else line[5:]
                data.append(value)
                self._data_size += len(value)
                if self._data_size > self.max_event_bytes:
                    raise self._too_long("event", self._data_size, self.max_event_bytes)
            elif line[0] != 0x3A:  # lines starting with ":" are comments
                self._field(line)
        return events

    def _field(self, line: bytes) -> None:
        name, colon, value = line.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        if name == b"data":  # e.g. "data" with no colon: an empty data line
            self._data.append(value)
            self._data_size += len(value)
        elif name == b"event":
            self._event_type = value.decode("utf-8", "replace")
        elif name == b"id" and b"\0" not in value:
            self.last_event_id = value.decode("utf-8", "replace")
        elif name == b"retry" and value.isdigit():
            # bytes.isdigit() is ASCII-only, unlike str.isdigit() and int().
            self._retry = self.reconnection_time = int(value)

    def _dispatch(self) -> ServerSentEvent:
        data = self._data
        text = data[0] if len(data) == 1 else b"\n".join(data)
        event = ServerSentEvent(
            self._event_type or "message",
            text.decode("utf-8", "replace"),
            self.last_event_id,
            self._retry,
        )
        self._data = []
        self._data_size = 0
        self._event_type = ""
        self._retry = None
        return event


def encode_event(
    data: str,
    *,
    event: Optional[str] = None,
    id: Optional[str] = None,
    retry: Optional[int] = None,
    line_end: str = "\n",
) -> bytes:
    """One event as wire bytes, ending with the blank line that dispatches it.

    Multi-line ``data`` becomes one ``data:`` line per line, which the
    parser joins back with ``\\n``.
    """
    lines = []
    if event is not None:
        lines.append(f"event: {event}")
    if id is not None:
        lines.append(f"id: {id}")
    if retry is not None:
        lines.append(f"retry: {int(retry)}")
    lines.extend(f"data: {line}" for line in re.split("\r\n|\r|\n", data))
    return (line_end.join(lines) + line_end + line_end).encode("utf-8")


def encode_comment(text: str = "", *, line_end: str = "\n") -> bytes:
    """A comment line, as servers send to keep an idle connection open."""
    return f":{' ' if text else ''}{text}{line_end}".encode()
