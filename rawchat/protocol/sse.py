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

It works in two steps, as the spec reads: bytes are cut into lines
(``_lines``), then each line is a field, a comment, or the blank line that
dispatches the event (``feed`` and ``_field``). The rules it keeps, each of
which has broken a well-known client:

* Lines end with CR, LF or CRLF. A CRLF split across two reads is one line
  end, not two (which would dispatch an event early): a read that ends in
  CR is remembered, and an LF starting the next read dropped.
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

from ..errors import StreamError

__all__ = ["SSEParser", "ServerSentEvent", "encode_comment", "encode_event"]

_BOM = b"\xef\xbb\xbf"

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
        self._partial: List[bytes] = []  # an unterminated line, in pieces
        self._partial_size = 0
        self._after_cr = False  # the last read ended in CR: a leading LF is its pair
        self._first_line = True  # the only line a BOM may start
        self._data: List[str] = []  # the spec's data buffer, one item per line
        self._data_size = 0
        self._event_type = ""
        self._retry: Optional[int] = None

    def feed(self, piece: Union[bytes, bytearray, memoryview]) -> List[ServerSentEvent]:
        """Parse the next bytes of the stream; return the events they complete."""
        events = []
        for line in self._lines(bytes(piece)):
            if not line:
                event = self._dispatch()
                if event is not None:
                    events.append(event)
            elif line[0] != ":":  # lines starting with ":" are comments
                self._field(line)
        return events

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

    def _lines(self, data: bytes) -> List[str]:
        """The lines this read completes, decoded; keeps the unterminated rest."""
        if not data:  # an empty read must not cancel a pending CR's LF-skip
            return []
        if self._after_cr and data[:1] == b"\n":
            data = data[1:]
        self._after_cr = data.endswith(b"\r")
        # On bytes, splitlines() ends lines at CR, LF and CRLF only, as the
        # spec does; it is str.splitlines() that also ends them at U+2028.
        lines = data.splitlines()
        # A read that does not end with a line end stops inside a line.
        rest = lines.pop() if data and not data.endswith((b"\r", b"\n")) else b""
        if lines and self._partial:
            lines[0] = b"".join(self._partial) + lines[0]
            self._partial, self._partial_size = [], 0
        if rest:
            self._partial.append(rest)
            self._partial_size += len(rest)
            if self._partial_size > self.max_line_bytes:
                raise _too_long("line", self._partial_size, self.max_line_bytes)
        if not lines:
            return []
        if self._first_line:
            self._first_line = False
            if lines[0].startswith(_BOM):
                lines[0] = lines[0][len(_BOM) :]
        longest = max(map(len, lines))
        if longest > self.max_line_bytes:
            raise _too_long("line", longest, self.max_line_bytes)
        return [line.decode("utf-8", "replace") for line in lines]

    def _field(self, line: str) -> None:
        """One ``name: value`` line; a line with no colon is a name with an empty value."""
        name, _, value = line.partition(":")
        if value[:1] == " ":
            value = value[1:]
        if name == "data":
            self._data.append(value)
            self._data_size += len(value)
            if self._data_size > self.max_event_bytes:
                raise _too_long("event", self._data_size, self.max_event_bytes)
        elif name == "event":
            self._event_type = value
        elif name == "id" and "\0" not in value:
            self.last_event_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            # str.isdigit() and int() also accept non-ASCII digits; the spec does not.
            self._retry = self.reconnection_time = int(value)

    def _dispatch(self) -> Optional[ServerSentEvent]:
        """The blank line: the event read so far, if it has data; then a fresh one."""
        data, event_type, retry = self._data, self._event_type, self._retry
        self._data, self._data_size = [], 0
        self._event_type = ""
        self._retry = None
        if not data:
            return None
        return ServerSentEvent(event_type or "message", "\n".join(data), self.last_event_id, retry)


def _too_long(what: str, size: int, limit: int) -> StreamError:
    return StreamError(
        f"an SSE {what} of over {size} bytes exceeds the {limit}-byte limit",
        hint="the server is not sending a well-formed event stream; raise "
        "SSEParser(max_line_bytes=...) only if it really sends such events",
    )


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
