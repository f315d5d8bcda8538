"""Wire traces: every request, response head and raw body piece, with its time.

The transport reports each attempt as an *exchange*: the request as sent
(credentials redacted to their last four characters, and any in the URL to
``***``), then the status line
and headers, then every piece of body exactly as it came off the socket,
each stamped with the milliseconds since the request started. Three sinks:

* ``TextTrace``: for a terminal (``rawchat --trace``). Body pieces are
  printed as bytes, with CR, LF and other control characters escaped, so
  line endings, keep-alive comments and a UTF-8 character cut in two by a
  read (``\\xe4\\xbd`` then ``\\xa0``) are all visible.
* ``JSONLinesTrace``: the same, one JSON object per line (``--trace-file``).
* ``HARTrace``: an HTTP Archive 1.2 file (``--har``) that browsers'
  developer tools open (http://www.softwareishard.com/blog/har-12-spec/).

Audio is never dumped: a ``multipart/form-data`` upload shows its text
fields and each file part as ``<N bytes of TYPE>`` (``MultipartForm.summary``;
in a HAR file, its ``params``), and an audio answer's pieces show as
``<N bytes of audio/...>`` (in a HAR file, its body in base64).

``MultiTrace`` sends to several at once.
"""

from __future__ import annotations

import base64
import datetime
import json
import re
import time
from typing import IO, Any, Callable, Dict, List, Optional, Sequence, Tuple

from ..protocol.http import Headers, HTTPRequest, redact_url
from ..storage import atomic_write

__all__ = ["Exchange", "HARTrace", "JSONLinesTrace", "MultiTrace", "TextTrace", "Trace", "escape"]

Pairs = Sequence[Tuple[str, str]]

_VISIBLE = {"\r": "\\r", "\n": "\\n", "\t": "\\t", "\\": "\\\\"}


def escape(data: bytes) -> str:
    """Bytes as readable text with every control character made visible.

    Valid UTF-8 shows as its characters; invalid or incomplete sequences as
    ``\\xNN``; CR, LF, TAB and other controls (and U+2028, U+0085) escaped.
    """
    # surrogateescape maps each undecodable byte 0xNN to U+DCNN, so it can be
    # told apart from a backslash that was really in the data.
    text = data.decode("utf-8", "surrogateescape")
    out = []
    for char in text:
        code = ord(char)
        if char in _VISIBLE:
            out.append(_VISIBLE[char])
        elif 0xDC80 <= code <= 0xDCFF:
            out.append(f"\\x{code - 0xDC00:02x}")
        elif code < 0x20 or code == 0x7F or 0x80 <= code < 0xA0:
            out.append(f"\\x{code:02x}")
        elif code in (0x2028, 0x2029, 0xFEFF):
            out.append(f"\\u{code:04x}")
        else:
            out.append(char)
    return "".join(out)


class Exchange:
    """One request/response as it happens; the transport calls these in order."""

    def __init__(self, trace: Trace, number: int, request: HTTPRequest, headers: Pairs) -> None:
        self.trace = trace
        self.number = number
        self.request = request
        self.headers = Headers(headers).redacted()
        self.started = trace.clock()
        self.wall_started = trace.wall_clock()
        self.status: Optional[int] = None
        self.reason = ""
        self.response_headers: Pairs = ()
        self.response_at: Optional[float] = None
        self.pieces: List[Tuple[float, bytes]] = []
        self.ended = False

    def ms(self) -> float:
        return (self.trace.clock() - self.started) * 1000.0

    def response(self, status: int, reason: str, headers: Pairs) -> None:
        self.status, self.reason = status, reason
        self.response_headers = Headers(headers).redacted()
        self.response_at = self.ms()
        self.trace.on_response(self)

    def body(self, piece: bytes) -> None:
        at = self.ms()
        self.pieces.append((at, piece))
        self.trace.on_body(self, at, piece)

    def end(self, error: Optional[BaseException] = None, note: str = "") -> None:
        if self.ended:
            return
        self.ended = True
        self.trace.on_end(self, self.ms(), error, note)


class Trace:
    """Base class of the sinks: override the ``on_*`` methods you need."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.perf_counter,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.clock = clock
        self.wall_clock = wall_clock
        self._count = 0

    def start(self, request: HTTPRequest, headers: Pairs) -> Exchange:
        """A new exchange; ``headers`` are all the headers sent, unredacted."""
        self._count += 1
        exchange = Exchange(self, self._count, request, headers)
        self.on_request(exchange)
        return exchange

    def on_request(self, exchange: Exchange) -> None: ...

    def on_response(self, exchange: Exchange) -> None: ...

    def on_body(self, exchange: Exchange, at: float, piece: bytes) -> None: ...

    def on_end(
        self, exchange: Exchange, at: float, error: Optional[BaseException], note: str
    ) -> None: ...

    def close(self) -> None: ...


class MultiTrace(Trace):
    """Every event to each of several traces."""

    def __init__(self, traces: Sequence[Trace], **clocks: Any) -> None:
        super().__init__(**clocks)
        self.traces = list(traces)

    def on_request(self, exchange: Exchange) -> None:
        for trace in self.traces:
            trace.on_request(exchange)

    def on_response(self, exchange: Exchange) -> None:
        for trace in self.traces:
            trace.on_response(exchange)

    def on_body(self, exchange: Exchange, at: float, piece: bytes) -> None:
        for trace in self.traces:
            trace.on_body(exchange, at, piece)

    def on_end(
        self, exchange: Exchange, at: float, error: Optional[BaseException], note: str
    ) -> None:
        for trace in self.traces:
            trace.on_end(exchange, at, error, note)

    def close(self) -> None:
        for trace in self.traces:
            trace.close()


# After a blank line, in any of the three line endings: where an SSE event ends.
_EVENT_END = re.compile(rb"(?<=\n\n)|(?<=\r\n\r\n)|(?<=\r\r)")


def _events_of(piece: bytes) -> List[bytes]:
    """A body piece cut after each event it ends (the whole piece if it ends none)."""
    return [part for part in _EVENT_END.split(piece) if part] or [piece]


def _body_text(request: HTTPRequest) -> str:
    if request.form is not None:
        return request.form.summary()
    if not request.body:
        return ""
    try:
        return json.dumps(request.json(), indent=2, ensure_ascii=False)
    except ValueError:
        return escape(request.body)


def _sent_body(request: HTTPRequest) -> str:
    """The request body as a trace records it: a form by its summary."""
    if request.form is not None:
        return request.form.summary()
    return request.body.decode("utf-8", "replace")


def _audio_type(exchange: Exchange) -> str:
    """The response's media type if it is audio (whose pieces are not shown), else ``""``."""
    media = Headers(exchange.response_headers).get("content-type", "").split(";")[0].strip()
    return media.lower() if media.lower().startswith("audio/") else ""


def _piece_text(exchange: Exchange, piece: bytes) -> List[str]:
    """A body piece as trace lines: one per SSE event it ends, or audio by its size."""
    audio = _audio_type(exchange)
    if audio:
        return [f"<{len(piece):,} bytes of {audio}>"]
    return [escape(event) for event in _events_of(piece)]


def _error_text(error: Optional[BaseException]) -> str:
    if error is None:
        return ""
    message = getattr(error, "message", None) or str(error)
    return f"{type(error).__name__}: {message}"


class TextTrace(Trace):
    """A human-readable trace: ``>`` lines went out, ``<`` lines came back."""

    def __init__(self, out: IO[str], *, color: bool = False, **clocks: Any) -> None:
        super().__init__(**clocks)
        self.out = out
        self.color = color

    def _write(self, text: str, style: str = "") -> None:
        if self.color and style:
            text = f"\033[{style}m{text}\033[0m"
        self.out.write(text + "\n")
        self.out.flush()

    def on_request(self, exchange: Exchange) -> None:
        request = exchange.request
        tag = f"#{exchange.number}"
        self._write(f"{tag} > {request.method} {redact_url(request.url)} HTTP/1.1", "1;36")
        for name, value in exchange.headers:
            self._write(f"{tag} > {name}: {value}", "36")
        body = _body_text(request)
        if body:
            self._write(f"{tag} >")
            for line in body.splitlines():
                self._write(f"{tag} > {line}", "36")

    def on_response(self, exchange: Exchange) -> None:
        tag = f"#{exchange.number}"
        style = "1;32" if (exchange.status or 0) < 400 else "1;31"
        self._write(
            f"{tag} < HTTP/1.1 {exchange.status} {exchange.reason}  "
            f"({exchange.response_at:.1f} ms)",
            style,
        )
        for name, value in exchange.response_headers:
            self._write(f"{tag} < {name}: {value}", "32")

    def on_body(self, exchange: Exchange, at: float, piece: bytes) -> None:
        # A read can hold many events (a fast server, a buffering proxy): one
        # line each, the read's time and size on the first, "+" on the rest.
        tag = f"#{exchange.number} <"
        for number, event in enumerate(_piece_text(exchange, piece)):
            if number:
                self._write(f"{tag} {'':9}     {'':5} +  {event}", "2")
            else:
                self._write(f"{tag} {at:9.1f} ms  {len(piece):5d} B  {event}", "2")

    def on_end(
        self, exchange: Exchange, at: float, error: Optional[BaseException], note: str
    ) -> None:
        what = _error_text(error) or note or "end of body"
        self._write(f"#{exchange.number} . {at:9.1f} ms  {what}", "1;31" if error else "2")


class JSONLinesTrace(Trace):
    """One JSON object per event: ``request``, ``response``, ``body``, ``end``."""

    def __init__(self, out: IO[str], **clocks: Any) -> None:
        super().__init__(**clocks)
        self.out = out

    def _write(self, record: Dict[str, Any]) -> None:
        self.out.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.out.flush()

    def on_request(self, exchange: Exchange) -> None:
        request = exchange.request
        self._write({
            "exchange": exchange.number, "event": "request", "ms": 0.0,
            "time": _iso(exchange.wall_started), "method": request.method,
            "url": redact_url(request.url),
            "headers": [list(pair) for pair in exchange.headers],
            "body": _sent_body(request),
        })  # fmt: skip

    def on_response(self, exchange: Exchange) -> None:
        self._write({
            "exchange": exchange.number, "event": "response",
            "ms": round(exchange.response_at or 0, 3),
            "status": exchange.status, "reason": exchange.reason,
            "headers": [list(pair) for pair in exchange.response_headers],
        })  # fmt: skip

    def on_body(self, exchange: Exchange, at: float, piece: bytes) -> None:
        self._write({
            "exchange": exchange.number, "event": "body", "ms": round(at, 3),
            "size": len(piece), "bytes": "".join(_piece_text(exchange, piece)),
        })  # fmt: skip

    def on_end(
        self, exchange: Exchange, at: float, error: Optional[BaseException], note: str
    ) -> None:
        self._write({
            "exchange": exchange.number, "event": "end", "ms": round(at, 3),
            "error": _error_text(error) or None, "note": note or None,
        })  # fmt: skip


class HARTrace(Trace):
    """Collects exchanges and writes them as a HAR 1.2 log on ``close()``."""

    def __init__(self, path: str, **clocks: Any) -> None:
        super().__init__(**clocks)
        self.path = path
        self.entries: List[Dict[str, Any]] = []

    def on_end(
        self, exchange: Exchange, at: float, error: Optional[BaseException], note: str
    ) -> None:
        self.entries.append(self._entry(exchange, at, error))

    def _entry(
        self, exchange: Exchange, at: float, error: Optional[BaseException]
    ) -> Dict[str, Any]:
        request = exchange.request
        body = b"".join(piece for _, piece in exchange.pieces)
        response_headers = Headers(exchange.response_headers)
        wait = exchange.response_at if exchange.response_at is not None else at
        entry: Dict[str, Any] = {
            "startedDateTime": _iso(exchange.wall_started),
            "time": round(at, 3),
            "request": {
                "method": request.method,
                "url": redact_url(request.url),
                "httpVersion": "HTTP/1.1",
                "cookies": [],
                "headers": [{"name": n, "value": v} for n, v in exchange.headers],
                "queryString": [],
                "headersSize": -1,
                "bodySize": len(request.body),
            },
            "response": {
                "status": exchange.status or 0,
                "statusText": exchange.reason,
                "httpVersion": "HTTP/1.1",
                "cookies": [],
                "headers": [{"name": n, "value": v} for n, v in exchange.response_headers],
                "content": _content(body, response_headers.get("content-type", "")),
                "redirectURL": response_headers.get("location", ""),
                "headersSize": -1,
                "bodySize": len(body),
            },
            "cache": {},
            "timings": {"send": 0, "wait": round(wait, 3), "receive": round(at - wait, 3)},
        }
        if request.body:
            entry["request"]["postData"] = _post_data(request, Headers(exchange.headers))
        if error is not None:
            entry["comment"] = _error_text(error)
        return entry

    def close(self) -> None:
        from ..version import __version__

        log = {
            "log": {
                "version": "1.2",
                "creator": {"name": "rawchat", "version": __version__},
                "pages": [],
                "entries": self.entries,
            }
        }
        atomic_write(self.path, json.dumps(log, ensure_ascii=False, indent=1))


def _content(body: bytes, media: str) -> Dict[str, Any]:
    """A HAR response ``content``: audio in base64, as HAR 1.2 allows for binary bodies."""
    content: Dict[str, Any] = {"size": len(body), "mimeType": media}
    if media.lower().startswith("audio/"):
        content.update(text=base64.b64encode(body).decode("ascii"), encoding="base64")
    else:
        content["text"] = body.decode("utf-8", "replace")
    return content


def _post_data(request: HTTPRequest, headers: Headers) -> Dict[str, Any]:
    """A HAR ``postData``: the text, or a form's ``params`` (files by name and type only)."""
    media = headers.get("content-type", "application/json")
    if request.form is None:
        return {"mimeType": media, "text": request.body.decode("utf-8", "replace")}
    params = []
    for part in request.form.parts:
        if part.is_file:
            param = {"name": part.name, "fileName": part.filename or ""}
            param["contentType"] = part.content_type or ""
        else:
            param = {"name": part.name, "value": part.data.decode("utf-8", "replace")}
        params.append(param)
    return {"mimeType": media, "params": params}


def _iso(wall: float) -> str:
    moment = datetime.datetime.fromtimestamp(wall, tz=datetime.timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
