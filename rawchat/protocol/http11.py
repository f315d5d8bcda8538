"""HTTP/1.1 message framing for a client, sans-I/O: request heads out, responses in.

RFC 9112 (https://www.rfc-editor.org/rfc/rfc9112) says how an HTTP message
is cut out of a byte stream. This module does exactly that and nothing else:
it never touches a socket or a clock, so the asyncio transport (and a test
feeding literal bytes) drive the same code.

Out: ``request_head()`` builds the ``RequestHead`` for an ``HTTPRequest``
(section 3: request line, ``Host`` first as section 3.2 asks, the request's
own fields, ``Content-Length`` of the body per section 6.2); its
``encode()`` is the head exactly as it goes on the wire.

In: a ``ResponseParser`` per response is fed whatever bytes arrived and
returns events, in order::

    ResponseHead(status, reason, headers, http_version)   once
    Data(data)                                            zero or more times
    EndOfMessage(trailers)                                once

It reads:

* the status line and the header section (sections 4 and 5; at most
  ``MAX_HEAD_BYTES``; a line may end in a bare LF as section 2.2 allows,
  an obsolete line folding becomes one space as section 5.2 asks);
* interim ``1xx`` responses, skipped (RFC 9110 section 15.2), except
  ``101 Switching Protocols``, after which the bytes are no longer HTTP;
* the body, framed by section 6.3's rules in order: no body after a ``HEAD``
  request, for ``204`` and ``304``, and for a ``2xx`` to ``CONNECT``
  (the connection is a tunnel then); else ``Transfer-Encoding: chunked``
  (section 7.1: size lines and trailer lines of at most ``MAX_LINE_BYTES``,
  sizes of hex digits only up to ``MAX_CHUNK_SIZE``, chunk extensions
  ignored as section 7.1.1 allows, trailer fields kept); else
  ``Content-Length``; else everything until the server closes, which the
  caller reports with ``end_of_stream()``.

``reusable`` then says whether the connection may carry another request
(section 9.3: HTTP/1.1 persists unless ``Connection: close``; HTTP/1.0
only with ``Connection: keep-alive``; a body that ends at close never
leaves a reusable connection).

Every malformed input raises ``MalformedResponseError`` (an
``APIConnectionError``) naming what was wrong; nothing else escapes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple, Union
from urllib.parse import urlsplit

from ..errors import APIConnectionError, InvalidRequestError
from .http import Headers, HTTPRequest

__all__ = [
    "MAX_CHUNK_SIZE",
    "MAX_HEAD_BYTES",
    "MAX_LINE_BYTES",
    "Data",
    "EndOfMessage",
    "Event",
    "MalformedResponseError",
    "RequestHead",
    "ResponseHead",
    "ResponseParser",
    "request_head",
]

#: The largest status line plus header section (or trailer section) accepted.
MAX_HEAD_BYTES = 64 * 1024
#: The longest chunk size line or trailer line accepted.
MAX_LINE_BYTES = 4096
#: The largest single chunk accepted; no server needs more to stream text.
MAX_CHUNK_SIZE = 16 * 1024 * 1024

# RFC 9110 section 5.6.2: token = 1*tchar.
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TOKEN_TEXT = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Section 4: status-line = HTTP-version SP status-code SP [ reason-phrase ].
# The SP before an empty reason is often missing; accepting that costs nothing.
_STATUS_LINE = re.compile(rb"HTTP/1\.([0-9]) ([0-9]{3})(?: (.*))?")
# Section 5.1: field-line = field-name ":" OWS field-value OWS. No space may
# come before the colon (it has been used to smuggle a second meaning).
_FIELD_LINE = re.compile(rb"([^:\s]+):[ \t]*(.*?)[ \t]*")
_HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")
_DIGITS = frozenset(b"0123456789")
# A field value may hold any visible byte, SP, HTAB and obs-text (5.5); a
# NUL or a CR that does not end a line may be read differently elsewhere.
_FORBIDDEN_IN_VALUE = re.compile(rb"[\x00\r\n]")


class MalformedResponseError(APIConnectionError):
    """The bytes from the server are not an HTTP/1.1 response rawchat can read.

    ``reason`` is what was wrong, without the host (which this layer does not
    know); the transport names the host when it passes the error on.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(
            f"the response from the server is malformed: {reason}",
            hint="the server, or a proxy in between, does not speak HTTP/1.1 "
            "correctly; check the base URL and HTTPS_PROXY",
        )
        self.reason = reason


# ---------------------------------------------------------------- requests out


#: A control character or any kind of space: a request target holds none.
_NOT_IN_TARGET = re.compile(r"[\x00-\x20]|\s")


@dataclass(frozen=True)
class RequestHead:
    """A request line and its header fields, checked so they encode to one meaning.

    ``method``: a token (RFC 9110 section 9). ``target``: the request target
    of section 3.2, origin-form (``/v1/chat/completions?x=1``), absolute-form
    for a proxy (``http://host/v1/...``) or authority-form for ``CONNECT``
    (``host:443``). ``headers``: the fields in the order sent; names are
    tokens, values hold no CR, LF or NUL (which would end the head early).
    """

    method: str
    target: str
    headers: Tuple[Tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "headers", tuple((str(n), str(v)) for n, v in self.headers))
        if not _TOKEN_TEXT.fullmatch(self.method):
            raise InvalidRequestError(f"{self.method!r} is not an HTTP method")
        if not self.target or _NOT_IN_TARGET.search(self.target):
            raise InvalidRequestError(
                f"{self.target!r} is not a request target (no spaces allowed)"
            )
        for name, value in self.headers:
            if not _TOKEN_TEXT.fullmatch(name):
                raise InvalidRequestError(f"{name!r} is not a header name")
            if "\r" in value or "\n" in value or "\x00" in value:
                raise InvalidRequestError(
                    f"the value of header {name!r} holds a line break or NUL",
                    hint="a key copied with its trailing newline? strip it",
                )

    def encode(self) -> bytes:
        """The head as sent: request line, field lines, empty line, CRLF each.

        Values are ISO-8859-1 on the wire (RFC 9110 section 5.5); a
        character outside it cannot be sent and is refused.
        """
        lines = [f"{self.method} {self.target} HTTP/1.1"]
        lines += [f"{name}: {value}" for name, value in self.headers]
        text = "\r\n".join(lines) + "\r\n\r\n"
        try:
            return text.encode("latin-1")
        except UnicodeEncodeError as exc:
            raise InvalidRequestError(
                f"a header holds a character HTTP/1.1 cannot carry: {exc.object[exc.start]!r}",
                hint="header values are ISO-8859-1; percent-encode or drop the character",
            ) from exc


def request_head(
    request: HTTPRequest,
    *,
    target: Optional[str] = None,
    extra: Sequence[Tuple[str, str]] = (),
) -> RequestHead:
    """The head for ``request``: ``Host``, its headers, ``extra``, ``Content-Length``.

    ``target`` replaces the origin-form target (a proxy takes the absolute
    URL). ``Host`` comes from the URL, without credentials, unless the
    request names one. ``Content-Length`` is the body's length; it is sent
    for an empty body too when the method carries one (``POST``, ``PUT``,
    ``PATCH``), as RFC 9110 section 8.6 asks.
    """
    headers, length = request.headers, str(len(request.body))
    if "transfer-encoding" in headers or headers.get("content-length", length) != length:
        raise InvalidRequestError(
            "the request sets its own Transfer-Encoding or a wrong Content-Length",
            hint="drop those headers: the body is sent whole, with its Content-Length",
        )
    fields: List[Tuple[str, str]] = []
    if "host" not in headers:
        fields.append(("Host", urlsplit(request.url).netloc.rpartition("@")[2]))
    fields += [(n, v) for n, v in headers.items() if n.lower() != "content-length"]
    fields += extra
    if request.body or request.method in ("POST", "PUT", "PATCH"):
        fields.append(("Content-Length", length))
    return RequestHead(request.method, target or request.target, tuple(fields))


# ---------------------------------------------------------------- responses in


@dataclass(frozen=True)
class ResponseHead:
    """The final response's status line and header section.

    ``status``: the status code, 200 to 599 (section 4; interim 1xx
    responses never reach the caller). ``reason``: the reason phrase, which
    means nothing and may be empty. ``headers``: the fields, case-insensitive
    on lookup. ``http_version``: ``"1.1"`` or ``"1.0"``, which changes the
    keep-alive default (section 9.3).
    """

    status: int
    reason: str = ""
    headers: Headers = field(default_factory=Headers)
    http_version: str = "1.1"

    def __post_init__(self) -> None:
        if not isinstance(self.headers, Headers):
            object.__setattr__(self, "headers", Headers(self.headers))
        if not 200 <= self.status <= 599:
            raise ValueError(f"a final response has a status of 200 to 599, not {self.status}")
        if self.http_version not in ("1.0", "1.1"):
            raise ValueError(f"HTTP/{self.http_version} is not framed by RFC 9112")


@dataclass(frozen=True)
class Data:
    """A piece of the body, as it arrived (chunk framing already removed)."""

    data: bytes


@dataclass(frozen=True)
class EndOfMessage:
    """The body is complete. ``trailers``: fields after a chunked body (section 7.1.2)."""

    trailers: Headers = field(default_factory=Headers)

    def __post_init__(self) -> None:
        if not isinstance(self.trailers, Headers):
            object.__setattr__(self, "trailers", Headers(self.trailers))


Event = Union[ResponseHead, Data, EndOfMessage]

# What the parser is reading now. The order is the order of a response.
_HEAD = "head"  # status line and fields, 1xx heads skipped
_LENGTH = "length"  # a Content-Length body: ``_left`` bytes to go
_CHUNK_SIZE = "chunk size"  # a chunk-size line
_CHUNK_DATA = "chunk data"  # ``_left`` bytes of chunk data
_CHUNK_END = "chunk end"  # the CRLF after chunk data
_TRAILERS = "trailers"  # trailer field lines up to an empty line
_UNTIL_CLOSE = "until close"  # the body ends when the connection does
_DONE = "done"  # EndOfMessage sent; more bytes are not ours


class ResponseParser:
    """Reads one response to a request made with ``method``.

    ``feed(data)`` returns the events completed by ``data`` (possibly none);
    ``end_of_stream()`` tells it the server closed the connection. After the
    ``EndOfMessage``, ``reusable`` says whether the connection may be used
    again and ``trailing_data`` holds bytes that came after the message
    (for a ``CONNECT`` tunnel: the first bytes from the far side).
    """

    def __init__(self, method: str = "GET") -> None:
        self.method = method.upper()
        self.trailing_data = b""
        self._buffer = bytearray()
        self._scanned = 0  # how much of _buffer is known to hold no LF
        self._state = _HEAD
        self._lines: List[bytes] = []  # the head or trailer lines read so far
        self._section_bytes = 0  # bytes of the head or trailer section so far
        self._left = 0
        self._keep_alive = False
        self._error: Optional[MalformedResponseError] = None

    @property
    def complete(self) -> bool:
        """Whether ``EndOfMessage`` has been returned."""
        return self._state == _DONE

    @property
    def started(self) -> bool:
        """Whether any byte of a response has arrived (a reused connection
        that fails before this was most likely closed by the server while idle)."""
        return self._state != _HEAD or bool(self._buffer) or self._section_bytes > 0

    @property
    def reusable(self) -> bool:
        """Whether the connection may carry another request after this response."""
        return self._state == _DONE and self._keep_alive and not self.trailing_data

    def feed(self, data: bytes) -> List[Event]:
        """The events completed by ``data``, which continues what was fed before."""
        if self._error is not None:
            raise self._error
        if self._state == _DONE:
            self.trailing_data += data
            return []
        self._buffer += data
        events: List[Event] = []
        try:
            while True:
                event = self._next_event()
                if event is None:
                    return events
                events.append(event)
                if self._state == _DONE:
                    self.trailing_data, self._buffer = bytes(self._buffer), bytearray()
                    return events
        except MalformedResponseError as exc:
            self._error = exc
            raise

    def end_of_stream(self) -> List[Event]:
        """The server closed the connection: the end of a close-delimited body, else an error."""
        if self._error is not None:
            raise self._error
        if self._state == _UNTIL_CLOSE:
            self._state = _DONE
            return [EndOfMessage()]
        if self._state == _DONE:
            return []
        if self._state == _HEAD:
            reason = "the server closed the connection before a complete response head"
            if not self.started:
                reason = "the server closed the connection without sending a response"
        elif self._state in (_LENGTH, _CHUNK_DATA):
            reason = f"the connection closed with {self._left} bytes of the body still to come"
        else:
            reason = "the connection closed in the middle of a chunked body"
        self._error = MalformedResponseError(reason)
        raise self._error

    # One step each: return an event, or None when more bytes are needed.

    def _next_event(self) -> Optional[Event]:
        while True:
            state = self._state
            if state == _HEAD:
                return self._read_head()
            if state in (_LENGTH, _CHUNK_DATA, _UNTIL_CLOSE):
                return self._read_data()
            if state == _CHUNK_SIZE:
                line = self._line(MAX_LINE_BYTES, _SIZE_LINE_TOO_LONG)
                if line is None:
                    return None
                self._left = _chunk_size(line)
                self._state = _CHUNK_DATA if self._left else _TRAILERS
            elif state == _CHUNK_END:
                line = self._line(MAX_LINE_BYTES, "chunk data longer than its size line said")
                if line is None:
                    return None
                if line:
                    raise MalformedResponseError(
                        f"chunk data longer than its size line said: {_show(line)}"
                    )
                self._state = _CHUNK_SIZE
            elif state == _TRAILERS:
                lines = self._section(MAX_LINE_BYTES)
                if lines is None:
                    return None
                self._state = _DONE
                return EndOfMessage(_fields(lines))
            else:
                return None

    def _read_head(self) -> Optional[Event]:
        while True:
            lines = self._section(MAX_HEAD_BYTES)
            if lines is None:
                return None
            head = _parse_head(lines)
            if head is None:  # a 1xx interim response; the final one follows
                continue
            self._frame_body(head)
            return head

    def _read_data(self) -> Optional[Event]:
        if self._state == _LENGTH and self._left == 0:
            self._state = _DONE
            return EndOfMessage()
        if not self._buffer:
            return None
        if self._state == _UNTIL_CLOSE:
            data, self._buffer = bytes(self._buffer), bytearray()
            return Data(data)
        data = bytes(self._buffer[: self._left])
        del self._buffer[: self._left]
        self._left -= len(data)
        if self._left == 0 and self._state == _CHUNK_DATA:
            self._state = _CHUNK_END
        return Data(data)

    def _frame_body(self, head: ResponseHead) -> None:
        """Section 6.3: how the body of this response is delimited."""
        headers, status = head.headers, head.status
        self._keep_alive = _keeps_alive(head)
        if self.method == "HEAD" or status in (204, 304):
            self._state, self._left = _LENGTH, 0
        elif self.method == "CONNECT" and 200 <= status < 300:
            self._state, self._left = _LENGTH, 0
            self._keep_alive = False  # the connection is a tunnel now, not HTTP
        elif "transfer-encoding" in headers:
            if "content-length" in headers:
                # Section 6.3 item 3: "ought to be handled as an error"; two
                # framings are how responses are split and requests smuggled.
                raise MalformedResponseError("both Transfer-Encoding and Content-Length")
            codings = [c.strip().lower() for c in headers["transfer-encoding"].split(",")]
            if codings != ["chunked"]:
                raise MalformedResponseError(
                    f"unsupported Transfer-Encoding {headers['transfer-encoding']!r}"
                )
            self._state = _CHUNK_SIZE
        elif "content-length" in headers:
            self._state, self._left = _LENGTH, _content_length(headers["content-length"])
        else:
            self._state, self._keep_alive = _UNTIL_CLOSE, False

    # Lines: LF-terminated, a CR before the LF dropped (section 2.2).

    def _line(self, limit: int, too_long: str) -> Optional[bytes]:
        """The next line without its terminator, or None if it has not all arrived.

        A line of more than ``limit`` bytes, terminator included, is refused
        with the message ``too_long`` as soon as that many bytes are in.
        """
        end = self._buffer.find(b"\n", self._scanned)
        if end < 0:
            self._scanned = len(self._buffer)
            if self._scanned >= limit:
                raise MalformedResponseError(too_long)
            return None
        if end + 1 > limit:
            raise MalformedResponseError(too_long)
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        self._scanned = 0
        return line[:-1] if line.endswith(b"\r") else line

    def _section(self, line_limit: int) -> Optional[List[bytes]]:
        """The lines up to an empty one (a head or trailer section), or None.

        The section as a whole is held to ``MAX_HEAD_BYTES``, each line also
        to ``line_limit``. Empty lines before a status line are skipped, as
        section 2.2 suggests (some servers end a body with an extra CRLF).
        """
        while True:
            room = MAX_HEAD_BYTES - self._section_bytes
            if line_limit < room:
                line = self._line(line_limit, f"a line longer than {line_limit} bytes")
            else:
                line = self._line(room, f"a head longer than {MAX_HEAD_BYTES} bytes")
            if line is None:
                return None
            self._section_bytes = MAX_HEAD_BYTES - room + len(line) + 1
            if line:
                self._lines.append(line)
            elif self._lines or self._state == _TRAILERS:
                lines, self._lines, self._section_bytes = self._lines, [], 0
                return lines


def _parse_head(lines: List[bytes]) -> Optional[ResponseHead]:
    """The final response's head, or None for a skipped 1xx."""
    match = _STATUS_LINE.fullmatch(lines[0])
    if match is None:
        raise MalformedResponseError(f"not an HTTP/1.x status line: {_show(lines[0])}")
    minor, status = match.group(1), int(match.group(2))
    if not 100 <= status <= 599:
        raise MalformedResponseError(f"status code {status} is not 100 to 599")
    if status == 101:
        raise MalformedResponseError(
            "101 Switching Protocols: the server switched to a protocol other than HTTP/1.1"
        )
    headers = _fields(lines[1:])
    if status < 200:
        return None
    reason = (match.group(3) or b"").decode("latin-1")
    if _FORBIDDEN_IN_VALUE.search(match.group(3) or b""):
        raise MalformedResponseError(f"a control character in the reason phrase: {_show(lines[0])}")
    # Section 2.3: a 1.x server with a higher minor version speaks 1.1 to us.
    return ResponseHead(status, reason, headers, "1.0" if minor == b"0" else "1.1")


def _fields(lines: List[bytes]) -> Headers:
    """Field lines to ``Headers``; names ASCII, values ISO-8859-1 (RFC 9110 5.5)."""
    pairs: List[Tuple[str, str]] = []
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            # Section 5.2: obs-fold continues the previous value; replace with SP.
            if not pairs:
                raise MalformedResponseError(
                    f"a folded line with no field before it: {_show(line)}"
                )
            if _FORBIDDEN_IN_VALUE.search(line):
                raise MalformedResponseError(
                    f"a control character in a header value: {_show(line)}"
                )
            name, value = pairs.pop()
            more = line.strip(b" \t").decode("latin-1")
            pairs.append((name, f"{value} {more}" if value else more))
            continue
        match = _FIELD_LINE.fullmatch(line)
        if match is None or not _TOKEN.fullmatch(match.group(1)):
            raise MalformedResponseError(f"not a header field line: {_show(line)}")
        if _FORBIDDEN_IN_VALUE.search(match.group(2)):
            raise MalformedResponseError(f"a control character in a header value: {_show(line)}")
        pairs.append((match.group(1).decode("ascii"), match.group(2).decode("latin-1")))
    return Headers(pairs)


def _content_length(value: str) -> int:
    """Section 6.3 item 5: digits only; a list of one repeated value is that value."""
    values = {v.strip() for v in value.split(",")}
    if len(values) != 1:
        raise MalformedResponseError(f"conflicting Content-Length values {value!r}")
    (text,) = values
    raw = text.encode("latin-1")
    # 18 digits is an exabyte; more would also be slow for int() to read.
    if not raw or len(raw) > 18 or not set(raw) <= _DIGITS:
        raise MalformedResponseError(f"Content-Length {value!r} is not a number of bytes")
    return int(text)


_SIZE_LINE_TOO_LONG = f"a chunk size line longer than {MAX_LINE_BYTES} bytes"


def _chunk_size(line: bytes) -> int:
    """Section 7.1: ``chunk-size [ chunk-ext ]``; the extensions mean nothing to us."""
    size = line.split(b";", 1)[0].rstrip(b" \t")  # BWS may come before the ";"
    # Only HEXDIG: int(x, 16) would also take "+5", "0x5", "5_0" and " 5".
    if not size or not set(size) <= _HEX_DIGITS:
        raise MalformedResponseError(f"chunk size is not hex digits: {_show(line)}")
    value = int(size, 16)
    if value > MAX_CHUNK_SIZE:
        raise MalformedResponseError(f"a chunk of {value} bytes is over {MAX_CHUNK_SIZE}")
    return value


def _keeps_alive(head: ResponseHead) -> bool:
    """Section 9.3: whether the connection persists after this response."""
    tokens = {t.strip().lower() for t in head.headers.get("connection", "").split(",")}
    if "close" in tokens:
        return False
    return head.http_version == "1.1" or "keep-alive" in tokens


def _show(line: bytes) -> str:
    """A line for an error message: short and printable."""
    text = repr(line[:80])
    return text + ("..." if len(line) > 80 else "")
