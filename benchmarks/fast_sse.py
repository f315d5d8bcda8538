"""A faster SSE parser, for benchmarks only: what speed costs in readability.

``rawchat.protocol.sse.SSEParser`` is the WHATWG algorithm
(https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation)
written once: split bytes into lines, then one line at a time. This parser
gives the same events for any bytes, cut anywhere, but builds an event
four ways, each a shortcut for a shape chat streams have:

* ``feed``: a read that is exactly one ``data: ...`` line and its blank line;
* ``_simple``: text made only of one-line ``data:`` events, split straight
  into their data on ``"\\n\\ndata: "``;
* ``_blocks``: text cut into events on ``"\\n\\n"``, a one-line ``data:``
  block becoming its event at once;
* ``_lines`` and ``_field``: the spec's rules line by line, for the rest.

It also decodes a read's whole lines in one call and builds its events with
``tuple.__new__``. ``sse_throughput.py`` times it against the package's
parser; the difference is what those shortcuts buy, against a network that
delivers a token every few milliseconds.
"""

from __future__ import annotations

import re
from itertools import repeat
from typing import List, NamedTuple, Optional, Union

__all__ = ["FastSSEParser", "ServerSentEvent"]

_BOM = b"\xef\xbb\xbf"
_CR = 13

DEFAULT_MAX_LINE_BYTES = 4 * 1024 * 1024
DEFAULT_MAX_EVENT_BYTES = 16 * 1024 * 1024


class ServerSentEvent(NamedTuple):
    """One dispatched event, with the fields of ``rawchat.ServerSentEvent``.

    A ``NamedTuple`` built with ``tuple.__new__``: half the time of a frozen
    dataclass's constructor.
    """

    event: str = "message"
    data: str = ""
    id: str = ""
    retry: Optional[int] = None


# A NamedTuple's own __new__ is a Python-level function; the tuple's is not.
_new = tuple.__new__


class FastSSEParser:
    """``rawchat.SSEParser``'s API and results, by the four ways above."""

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
        self._data: List[str] = []  # the data lines of the event being read
        self._data_size = 0  # characters in those lines, counted up to line _counted
        self._counted = 0
        self._event_type = ""
        self._retry: Optional[int] = None

    def feed(self, piece: Union[bytes, bytearray, memoryview]) -> List[ServerSentEvent]:
        """Parse the next bytes of the stream; return the events they complete."""
        data = bytes(piece)  # no copy when it is bytes already
        if (
            # The fast path: the piece is exactly one ``data: ...`` line and
            # the blank line that dispatches it, with the parser between
            # events (the shape of nearly every read of a chat stream, since
            # servers flush one event at a time). The line has no CR and its
            # only LFs are the two at the end, so the rules below would split
            # it the same way and dispatch the same event.
            data[-2:] == b"\n\n"
            and data[:6] == b"data: "
            and self._head is None
            and not self._skip_lf
            and not self._partial
            and not self._data
            and not self._event_type
            and self._retry is None
            and data.find(b"\n") == len(data) - 2
            and b"\r" not in data
            and len(data) <= self.max_line_bytes
        ):
            text = data[6:-2].decode("utf-8", "replace")
            return [_new(ServerSentEvent, ("message", text, self.last_event_id, None))]
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

        if len(block) > self.max_line_bytes:
            self._check_lines(block)
        # The block holds whole lines only, and line ends are ASCII bytes that
        # never occur inside a multi-byte UTF-8 sequence: decoding it in one
        # call gives the same text as decoding line by line, much faster.
        text = block.decode("utf-8", "replace")
        if "\r" in text:
            # CRLF, CR and LF each end one line; made LF they split the same.
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        return self._process(text)

    def close(self) -> List[ServerSentEvent]:
        """Signal the end of the stream.

        Per the spec, an event not yet terminated by a blank line is
        discarded; ``discarded`` tells whether there was one. Returns the
        (always empty) list of events, so callers can treat it like ``feed``.
        """
        self.discarded = bool(self._partial or self._data or self._event_type)
        self._partial, self._partial_size = [], 0
        self._data, self._data_size, self._counted = [], 0, 0
        self._event_type = ""
        self._retry = None
        return []

    # -- internals --------------------------------------------------------

    def _keep_partial(self, data: bytes) -> None:
        self._partial.append(data)
        self._partial_size += len(data)
        if self._partial_size > self.max_line_bytes:
            raise self._too_long("line", self._partial_size, self.max_line_bytes)

    def _check_lines(self, block: bytes) -> None:
        longest = max(map(len, re.split(rb"\r\n|\r|\n", block)))
        if longest > self.max_line_bytes:
            raise self._too_long("line", longest, self.max_line_bytes)

    @staticmethod
    def _too_long(what: str, size: int, limit: int) -> ValueError:
        return ValueError(f"an SSE {what} of over {size} bytes exceeds the {limit}-byte limit")

    def _process(self, text: str) -> List[ServerSentEvent]:
        """Parse whole lines (LF-terminated) into events."""
        events = self._simple(text)
        if events is None:
            events = self._blocks(text)
        data = self._data
        if data:  # an event continues into the next read: bound its size
            self._data_size += sum(map(len, data[self._counted :]))
            self._counted = len(data)
            if self._data_size > self.max_event_bytes:
                raise self._too_long("event", self._data_size, self.max_event_bytes)
        return events

    def _simple(self, text: str) -> Optional[List[ServerSentEvent]]:
        """The fastest path, for text made only of one-line ``data: `` events.

        That is nearly every read of a chat stream: ``data: {...}`` and a
        blank line, again and again, perhaps ending inside an event (after
        its data line, before its blank line), perhaps continuing one such
        event from the previous read. Then every LF in the text is one of
        the pair between two events, ``"\n\ndata: "``, or the one or two at
        its end; the counts below check exactly that. Then the text splits
        straight into the events' data, and C-level iteration builds the
        events. Returns None, to go the general way, for anything else.
        """
        if self._event_type or self._retry is not None:
            return None
        open_data = self._data
        if open_data:
            if len(open_data) > 1:
                return None
            # The open event's line, as it was (one space or none is the same).
            text = f"data: {open_data[0]}\n{text}"
        if text[:6] != "data: ":
            return None
        ends_event = text[-2:] == "\n\n"
        if text.count("\n") != 2 * text.count("\n\ndata: ") + (2 if ends_event else 1):
            return None
        datas = text[6 : -2 if ends_event else -1].split("\n\ndata: ")
        self._data_size = self._counted = 0
        self._data = [] if ends_event else [datas.pop()]
        return list(
            map(
                _new,
                repeat(ServerSentEvent),
                zip(repeat("message"), datas, repeat(self.last_event_id), repeat(None)),
            )
        )

    def _blocks(self, text: str) -> List[ServerSentEvent]:
        """The general way, still quick for the common blocks.

        "\n\n" is a line end followed by a blank line, so splitting on it
        cuts the text into blocks that each end one event. A block that is a
        single ``data: `` line becomes its event at once; any other block
        goes through the line-by-line rules, as does the first one when an
        event begun in an earlier read is still open.
        """
        events: List[ServerSentEvent] = []
        blocks = text.split("\n\n")
        tail = blocks.pop()  # after the last blank line: lines of an open event
        start = 0
        if blocks and (self._data or self._event_type or self._retry is not None):
            self._lines([*blocks[0].split("\n"), ""], events)
            start = 1
        new = _new
        for block in blocks[start:]:
            if block[:6] == "data: " and "\n" not in block:
                events.append(
                    new(ServerSentEvent, ("message", block[6:], self.last_event_id, None))
                )
            else:
                self._lines([*block.split("\n"), ""], events)
        if tail:
            self._lines(tail.split("\n")[:-1], events)  # it ends with a line end
        return events

    def _lines(self, lines: List[str], events: List[ServerSentEvent]) -> None:
        """The spec's rules, line by line."""
        data = self._data
        for line in lines:
            if not line:
                if data:
                    events.append(
                        ServerSentEvent(
                            self._event_type or "message",
                            data[0] if len(data) == 1 else "\n".join(data),
                            self.last_event_id,
                            self._retry,
                        )
                    )
                    data = self._data = []
                    self._data_size = self._counted = 0
                self._event_type = ""
                self._retry = None
            elif line[:5] == "data:":
                data.append(line[6:] if line[5:6] == " " else line[5:])
            elif line[0] != ":":  # lines starting with ":" are comments
                self._field(line)

    def _field(self, line: str) -> None:
        name, colon, value = line.partition(":")
        if colon and value[:1] == " ":
            value = value[1:]
        if name == "data":  # e.g. "data" with no colon: an empty data line
            self._data.append(value)
        elif name == "event":
            self._event_type = value
        elif name == "id" and "\0" not in value:
            self.last_event_id = value
        elif name == "retry" and value.isdigit() and value.isascii():
            # str.isdigit() and int() also accept non-ASCII digits; the spec does not.
            self._retry = self.reconnection_time = int(value)
