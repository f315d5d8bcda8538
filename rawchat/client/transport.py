"""One HTTP/1.1 exchange with ``requests``: the request out, the body back as it arrives.

HTTP/1.1 message framing is RFC 9112 (https://www.rfc-editor.org/rfc/rfc9112);
``requests.Session.send`` does the sending, with its connection pool, proxies
from ``HTTPS_PROXY``/``NO_PROXY`` and CA bundle from ``REQUESTS_CA_BUNDLE``
(read on every request, as requests does); pass your own Session to control
those yourself. This is the only module that imports ``requests``. It adds:

* a connect and a read timeout on every request (``requests`` has none);
* no redirects: a 301 would turn the POST into a GET; the base URL should be
  fixed instead (the error says where it points);
* a ``~/.netrc`` entry for the host never replaces the Bearer key;
* the body handed over piece by piece as it arrives, never decoded to text
  (requests would read an SSE body without a charset as ISO-8859-1): a
  chunked body with urllib3's ``read_chunked()``, one piece per chunk;
  anything else with ``read1()`` (urllib3 2.1 and later), which returns
  whatever has arrived; where neither is available, with ``stream()``;
* a gzip or deflate body (RFC 9110 section 8.4.1) read still encoded, in
  pieces of at most 64 KiB, and inflated here at most 64 KiB per step, so
  a few kilobytes that inflate to gigabytes meet the size limit of
  ``read()`` before they meet the memory;
* with ``open(..., deadline=)``, the response head bounded by the call's
  deadline: a server that trickles its status line and headers a byte at a
  time never goes silent long enough for the read timeout, so a timer
  shuts the connection when the deadline passes (on the Transport's own
  Session; a Session passed in keeps its adapters, and its read timeout);
* an interim response other than ``100 Continue`` (``103 Early Hints``,
  ``101 Switching Protocols``), which ``http.client`` would hand over as
  the answer, refused, and its connection dropped;
* a response closed before the end of its body takes its connection with
  it (the unread bytes would be the next response's start), and
  ``close()`` closes every connection of the pool;
* ``requests``/``urllib3``/socket exceptions turned into ``APIConnectionError``
  or ``APITimeoutError``, chained, also when they happen mid-stream, with
  ``request_sent`` false when the connection was never made; a header
  ``http.client`` refuses becomes an error that does not quote it; a URL's
  credentials never appear in a message.

A limitation of urllib3 1.x and 2.0, which have no ``read1()``: a
close-delimited body (no Content-Length, no chunking, as some proxies and
HTTP/1.0 servers send) is handed over 64 KiB at a time or at EOF: the first
delta of such a stream waits for the whole answer (or its first 64 KiB), and
``read()`` checks its deadline and size limit only as those pieces come.
Chunked bodies, which every known provider sends, come chunk by chunk on
every urllib3.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time
import weakref
import zlib
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional
from urllib.parse import urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter

from ..errors import (
    APIConnectionError,
    APITimeoutError,
    ConfigError,
    InvalidRequestError,
    InvalidResponseError,
    RawchatError,
)
from ..protocol.content_coding import CODINGS, Inflater
from ..protocol.http import Headers, HTTPRequest, HTTPResponse, redact_url
from ..protocol.settings import Timeout

if TYPE_CHECKING:  # pragma: no cover
    from .trace import Exchange, Trace  # loaded by those who trace

__all__ = ["StreamingResponse", "Transport", "ca_bundle", "proxy_for"]

_READ_SIZE = 65536
MAX_BODY_BYTES = 64 * 1024 * 1024


class Transport:
    """Sends requests over one pooled ``requests.Session``.

    ``pool_maxsize`` bounds the connections kept per host, which is the
    useful concurrency when threads share one client.
    """

    def __init__(
        self,
        session: Optional[requests.Session] = None,
        *,
        pool_connections: int = 10,
        pool_maxsize: int = 10,
        clock: Callable[[], float] = time.monotonic,
        trace: Optional[Trace] = None,
    ) -> None:
        #: Where to report each exchange (see ``trace.py``); None for no trace.
        self.trace = trace
        self._owns_session = session is None
        if session is None:
            session = requests.Session()
            # No retries down here: retry.py decides, and counts.
            adapter = _Adapter(pool_connections, pool_maxsize, max_retries=0)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
        self.session = session
        self._clock = clock
        # Responses not yet closed: their connections are out of the pool,
        # where closing the Session would not reach them.
        self._open: weakref.WeakSet = weakref.WeakSet()

    def open(
        self, request: HTTPRequest, timeout: Timeout, *, deadline: Optional[float] = None
    ) -> StreamingResponse:
        """Send the request and return once the response headers are in.

        ``deadline`` (a time on this transport's clock) bounds the wait for
        the status line and headers as a whole, however slowly they come.

        What ``Session.request()`` does, in two steps, so that a trace can
        show the headers exactly as sent (requests adds its own defaults).
        """
        started = self._clock()
        session = self.session
        with _translated(request, timeout):
            prepared = session.prepare_request(
                requests.Request(
                    request.method,
                    request.url,
                    headers=dict(request.headers.items()),
                    data=request.body or None,
                    # requests takes a login from ~/.netrc when a request has
                    # no auth, and it would replace the Bearer key: an auth
                    # that leaves the request as it is stops that.
                    auth=None if session.auth else _as_given,
                )
            )
        alarm = None
        if deadline is not None:
            left = deadline - started
            if left <= 0:
                error = _deadline_error(request, "before the request was sent")
                error.request_sent = False
                raise error
            alarm = _HeadAlarm(left)
        exchange = self.trace.start(request, list(prepared.headers.items())) if self.trace else None
        try:
            with _translated(request, timeout):
                # The environment (proxies, CA bundle) is read on every
                # request, as Session.request() does.
                settings = session.merge_environment_settings(prepared.url, {}, True, None, None)
                response = _send(session, prepared, timeout, settings, alarm)
        except RawchatError as exc:
            if alarm is None or not alarm.cancel():
                if exchange is not None:
                    exchange.end(exc)
                raise
            # Whatever broke, it was the alarm shutting the connection.
            late = _deadline_error(request, "while the response head was arriving")
            if exchange is not None:
                exchange.end(late)
            raise late from exc
        try:
            if alarm is not None and alarm.cancel():
                raise _deadline_error(request, "as the response head arrived")
            if 100 <= response.status_code < 200:
                raise _interim_error(request, response)
        except RawchatError as exc:
            _drop(response)
            if exchange is not None:
                exchange.end(exc)
            raise
        source = StreamingResponse(response, request, started, exchange)
        self._open.add(source)
        return source

    def send(self, request: HTTPRequest, timeout: Timeout) -> HTTPResponse:
        """Send the request and read the whole response."""
        source = self.open(request, timeout)
        body = source.read()
        return source.response(body, self._clock() - source.started)

    def close(self) -> None:
        """Close every connection: those of responses still open, then the pool's."""
        for source in list(self._open):
            source.close()
        if self._owns_session:
            self.session.close()


def _as_given(prepared: requests.PreparedRequest) -> requests.PreparedRequest:
    return prepared


def _send(
    session: requests.Session,
    prepared: requests.PreparedRequest,
    timeout: Timeout,
    settings: dict,
    alarm: Optional[_HeadAlarm],
) -> requests.Response:
    """``session.send``, with the thread's head alarm armed while it runs."""
    if alarm is None:
        return session.send(
            prepared, timeout=(timeout.connect, timeout.read), allow_redirects=False, **settings
        )
    _watching.alarm = alarm
    alarm.start()
    try:
        return session.send(
            prepared, timeout=(timeout.connect, timeout.read), allow_redirects=False, **settings
        )
    finally:
        _watching.alarm = None


class StreamingResponse:
    """A response whose body has not been read yet.

    ``iter_bytes()`` yields the body as it arrives; ``read()`` returns all
    of it; ``close()`` releases the connection: back to the pool when the
    body was read to the end, otherwise closed, since its unread bytes
    would be taken for the next response.
    """

    def __init__(
        self,
        response: requests.Response,
        request: HTTPRequest,
        started: float,
        exchange: Optional[Exchange] = None,
    ) -> None:
        self._response = response
        self.request = request
        self.status_code = response.status_code
        self.reason = response.reason or ""
        self.headers = Headers(response.headers.items())
        #: The URL as it may be printed: credentials in it are redacted.
        self.url = redact_url(request.url)
        self.started = started
        self._exchange = exchange
        self._read_to_end = False
        if exchange is not None:
            exchange.response(self.status_code, self.reason, self.headers.items())

    def iter_bytes(self) -> Iterator[bytes]:
        """The body, each piece as soon as it has arrived."""
        exchange = self._exchange
        if exchange is None:
            yield from self._pieces()
            return
        try:
            for piece in self._pieces():
                exchange.body(piece)
                yield piece
        except RawchatError as exc:
            exchange.end(exc)
            raise
        exchange.end()

    def _pieces(self) -> Iterator[bytes]:
        response = self._response
        with _translated(self.request, reading_body=True):
            if response.is_redirect:
                # Session.send reads a redirect's body even when it does not
                # follow it; requests keeps it in .content.
                pieces: Iterator[bytes] = iter([response.content])
            else:
                pieces = _encoded_pieces(response.raw)
                coding = self.headers.get("content-encoding", "").strip().lower()
                if coding in CODINGS:
                    pieces = _inflated(pieces, Inflater(coding))
                # Any other coding is handed over as it came, as urllib3 does.
        while True:
            # Only the reading is translated, not the yield: a caller that
            # stops early closes this generator with GeneratorExit, which must
            # not pass through the context manager (on Python 3.8 that kept
            # every early-closed response alive in a traceback cycle).
            with _translated(self.request, reading_body=True):
                piece = next(pieces, None)
            if piece is None:
                break
            if piece:
                yield piece
        self._read_to_end = True

    def read(
        self,
        *,
        deadline: Optional[float] = None,
        clock: Callable[[], float] = time.monotonic,
        max_bytes: int = MAX_BODY_BYTES,
    ) -> bytes:
        """The whole body, read as it arrives.

        A body that trickles in forever is stopped by ``deadline`` (a time on
        ``clock``); one larger than ``max_bytes`` (inflated, if it came
        compressed) is refused: neither is a chat answer, and neither may
        hang the caller or eat its memory.
        """
        pieces = []
        size = 0
        try:
            for piece in self.iter_bytes():
                pieces.append(piece)
                size += len(piece)
                if size > max_bytes:
                    raise InvalidResponseError(
                        f"the response body from {self.url} passed {max_bytes} bytes",
                        status_code=self.status_code,
                        hint="no chat answer is that large; is the base URL right?",
                    )
                if deadline is not None and clock() > deadline:
                    raise APITimeoutError(
                        f"the response from {self.url} was still arriving at the deadline",
                        hint="the server sends very slowly; raise the deadline, or check "
                        "the network",
                    )
        except BaseException:
            self.close()
            raise
        self.close()
        return b"".join(pieces)

    def finish(self, grace: float = 0.1) -> None:
        """Release the connection of an answer already known to be complete.

        At ``data: [DONE]`` a chat stream is over, but the body's own end
        (the last chunk, ``0\r\n\r\n``) may still be on its way or, from a
        server that holds the connection open, never come. What is left is
        read for at most ``grace`` seconds and ``_READ_SIZE`` bytes: if the
        body ends, its connection goes back to the pool for the next request
        (a new TLS connection costs a round trip or two); if not, it is
        closed. urllib3 sets the socket's timeout again when it next sends.
        """
        connection = getattr(self._response.raw, "connection", None)
        sock = getattr(connection, "sock", None)
        if not self._read_to_end and sock is not None:
            try:
                sock.settimeout(grace)
                left = _READ_SIZE
                for piece in _encoded_pieces(self._response.raw):
                    left -= len(piece)
                    if left < 0:
                        break
                else:
                    self._read_to_end = True
            except (OSError, urllib3.exceptions.HTTPError, http.client.HTTPException):
                pass  # slow or broken: the connection is not worth keeping
        if self._exchange is not None and self._read_to_end:
            self._exchange.end()
        self.close()

    def close(self) -> None:
        if self._exchange is not None:
            self._exchange.end(note="closed before the end of the body")
        if self._read_to_end:
            self._response.close()
        else:
            _drop(self._response)

    def response(self, body: bytes, elapsed: float) -> HTTPResponse:
        """A complete ``HTTPResponse`` for this status, these headers and ``body``."""
        return HTTPResponse(
            status_code=self.status_code,
            headers=self.headers,
            body=body,
            url=self.url,
            reason=self.reason,
            elapsed=elapsed,
        )


def _encoded_pieces(raw: urllib3.HTTPResponse) -> Iterator[bytes]:
    """The body as it came off the wire (still compressed, if it was), 64 KiB at most a piece."""
    if raw.chunked and raw.supports_chunked_reads():
        return raw.read_chunked(_READ_SIZE, decode_content=False)
    if hasattr(raw, "read1"):  # urllib3 2.1 and later
        return iter(lambda: raw.read1(_READ_SIZE, decode_content=False), b"")
    return raw.stream(_READ_SIZE, decode_content=False)


def _inflated(pieces: Iterator[bytes], inflater: Inflater) -> Iterator[bytes]:
    """The encoded pieces, inflated a bounded step at a time (``protocol/content_coding.py``)."""
    for piece in pieces:
        yield from inflater.feed(piece)
    yield from inflater.flush()


def _drop(response: requests.Response) -> None:
    """Close ``response`` and its connection, so that it never goes back to the pool."""
    connection = getattr(response.raw, "connection", None)
    response.close()
    if connection is not None:
        connection.close()


# -- the call's deadline over the response head -------------------------------------

_watching = threading.local()


class _HeadAlarm:
    """Shuts a connection down when a deadline passes before its response head is in.

    The socket is learnt when the response starts to be read, in the thread
    that sends (``_WatchedHead``), so an alarm that rings first shuts it as
    soon as it is known.
    """

    def __init__(self, seconds: float) -> None:
        self._lock = threading.Lock()
        self._sock: Optional[socket.socket] = None
        self.rang = False
        self._timer = threading.Timer(seconds, self._ring)
        self._timer.daemon = True

    def start(self) -> None:
        self._timer.start()

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sock = sock
            rang = self.rang
        if rang:
            _shut(sock)

    def _ring(self) -> None:
        with self._lock:
            self.rang = True
            sock = self._sock
        if sock is not None:
            _shut(sock)

    def cancel(self) -> bool:
        """Disarm; whether it had already rung."""
        self._timer.cancel()
        with self._lock:
            self._sock = None
            return self.rang


def _shut(sock: socket.socket) -> None:
    # shutdown() wakes a recv() blocked in another thread, where close() need
    # not; the plain socket's, below any TLS layer that thread is inside.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _WatchedHead:
    """Shows the thread's head alarm the socket a response head is read from."""

    sock: Optional[socket.socket]

    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        alarm = getattr(_watching, "alarm", None)
        if alarm is not None and self.sock is not None:
            alarm.watch(self.sock)
        return super().getresponse(*args, **kwargs)  # type: ignore[misc]


class _HTTPConnection(_WatchedHead, urllib3.connection.HTTPConnection):
    pass


class _HTTPSConnection(_WatchedHead, urllib3.connection.HTTPSConnection):
    pass


class _HTTPConnectionPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSConnectionPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOLS = {"http": _HTTPConnectionPool, "https": _HTTPSConnectionPool}


class _Adapter(HTTPAdapter):
    """requests' adapter, with connections whose head an alarm can cut short."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **kwargs)
        if not proxy.lower().startswith("socks"):  # SOCKS brings its own pools
            manager.pool_classes_by_scheme = _POOLS
        return manager


def _deadline_error(request: HTTPRequest, when: str) -> APITimeoutError:
    return APITimeoutError(
        f"the call's deadline passed {when} from {_host(request.url)}",
        hint="the server sends its answer very slowly; raise the deadline, or check "
        "the network and any proxy on the way",
    )


_INTERIM = {101: "Switching Protocols", 102: "Processing", 103: "Early Hints"}


def _interim_error(request: HTTPRequest, response: requests.Response) -> APIConnectionError:
    status = response.status_code
    reason = response.reason or _INTERIM.get(status, "")
    return APIConnectionError(
        f"the server answered {status} {reason}".rstrip()
        + ", an interim or upgrade response, not an API answer",
        hint=f"{_host(request.url)} (or a proxy before it) sent an informational "
        "response where the answer belongs; the API answers with a final status",
    )


def _host(url: str) -> str:
    """Host and port of ``url``, without any credentials in it."""
    return urlsplit(url).netloc.rpartition("@")[2]


def ca_bundle() -> str:
    """The CA certificates ``requests`` verifies TLS with, as a file path."""
    settings = requests.Session().merge_environment_settings("https://x", {}, False, None, None)
    verify = settings.get("verify")
    return verify if isinstance(verify, str) else requests.certs.where()


def proxy_for(url: str) -> Optional[str]:
    """The proxy ``requests`` would use for ``url`` (from the environment), if any."""
    proxies = requests.utils.get_environ_proxies(url)
    return requests.utils.select_proxy(url, proxies)


# Exceptions from below, in rawchat's words, the original chained: first match wins.

# requests' are OSError; zlib.error is a compressed body that is not what it says.
_BELOW = (OSError, urllib3.exceptions.HTTPError, http.client.HTTPException, zlib.error)
_TIMEOUTS = (requests.exceptions.ReadTimeout, urllib3.exceptions.ReadTimeoutError, socket.timeout)
_BROKEN = (
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
    urllib3.exceptions.ProtocolError,
    urllib3.exceptions.DecodeError,
    http.client.HTTPException,
    zlib.error,
)


@contextlib.contextmanager
def _translated(
    request: HTTPRequest, timeout: Optional[Timeout] = None, *, reading_body: bool = False
) -> Iterator[None]:
    """``reading_body``: the response has begun, so a failure that is not a
    timeout is a response that broke off, not a connection that failed."""
    try:
        yield
    except _BELOW as exc:
        error = _translate(exc, request, timeout, reading_body)
        if isinstance(error, InvalidRequestError):
            # The original quotes the header, which may be the key: not shown.
            raise error from None
        raise error from exc
    except ValueError:
        # http.client refuses a header it cannot send with a ValueError that
        # quotes it, and headers carry credentials.
        raise _unsendable() from None


def _unsendable() -> InvalidRequestError:
    return InvalidRequestError(
        "a request header holds a character HTTP/1.1 cannot carry (a line break, or "
        "one outside Latin-1); the request was not sent",
        hint="check the API key, default_headers and extra_headers for a stray "
        "newline or a character copied from a rich-text page",
    )


def _translate(
    exc: BaseException, request: HTTPRequest, timeout: Optional[Timeout], reading_body: bool
) -> Exception:
    host, inner = _host(request.url), _innermost(exc)
    reason = str(inner) or type(inner).__name__
    reason = reason if len(reason) < 300 else reason[:300] + "..."
    errors = requests.exceptions
    if isinstance(exc, errors.InvalidHeader):
        return _unsendable()
    if isinstance(exc, (errors.InvalidURL, errors.MissingSchema, errors.InvalidSchema)):
        shown = redact_url(request.url)
        return ConfigError(f"cannot send to {shown!r}: {str(exc).replace(request.url, shown)}")
    error = _classify(exc, inner, host, reason, timeout, reading_body)
    if isinstance(error, APIConnectionError) and not reading_body and _never_connected(exc):
        error.request_sent = False
    return error


def _never_connected(exc: BaseException) -> bool:
    """Whether ``exc`` says the connection was never made: the request cannot have arrived."""
    errors = requests.exceptions
    if isinstance(exc, (errors.ConnectTimeout, errors.SSLError, errors.ProxyError)):
        return True
    return any(isinstance(level, _NOT_CONNECTED) for level in _levels(exc))


# Below requests: DNS (gaierror), refused, connect timeout, in urllib3 1.26 and 2.
_NOT_CONNECTED = (
    urllib3.exceptions.NewConnectionError,
    urllib3.exceptions.ConnectTimeoutError,
    ConnectionRefusedError,
    socket.gaierror,
)


def _classify(
    exc: BaseException,
    inner: BaseException,
    host: str,
    reason: str,
    timeout: Optional[Timeout],
    reading_body: bool,
) -> APIConnectionError:
    errors = requests.exceptions
    if isinstance(exc, (errors.ConnectTimeout, urllib3.exceptions.ConnectTimeoutError)):
        after = f" after {timeout.connect:g} s" if timeout else ""
        return APITimeoutError(
            f"connecting to {host} timed out{after}",
            hint="the host did not answer: check the base URL, your network, and "
            "HTTPS_PROXY if you are behind a proxy",
        )
    # requests reports a read timeout met mid-body as a plain ConnectionError.
    if isinstance(exc, _TIMEOUTS) or isinstance(inner, _TIMEOUTS):
        after = f" in {timeout.read:g} s" if timeout else ""
        return APITimeoutError(
            f"{host} sent nothing{after} (read timeout)",
            hint="the server stalled; a larger read timeout helps only if answers "
            "are known to take that long before the first byte",
        )
    if isinstance(exc, errors.SSLError):
        return APIConnectionError(
            f"TLS with {host} failed: {reason}",
            hint="behind a corporate proxy that inspects TLS, point "
            "REQUESTS_CA_BUNDLE at your company's CA bundle (PEM)",
        )
    if isinstance(exc, errors.ProxyError):
        return APIConnectionError(
            f"the proxy refused or failed the connection to {host}: {reason}",
            hint="check HTTPS_PROXY / HTTP_PROXY / NO_PROXY (local servers usually "
            "belong in NO_PROXY)",
        )
    if reading_body or isinstance(exc, _BROKEN) or isinstance(inner, http.client.IncompleteRead):
        return APIConnectionError(
            f"the response from {host} broke off or was malformed: {reason}",
            hint="the connection dropped mid-response (server restart, proxy "
            "timeout, or a network blip); retrying usually works",
        )
    return APIConnectionError(
        f"could not connect to {host}: {reason}",
        hint="is the server running, the base URL right, and the network (or "
        "HTTPS_PROXY) letting you through?",
    )


def _innermost(exc: BaseException) -> BaseException:
    """The exception at the bottom of requests' and urllib3's wrapping."""
    *_, last = _levels(exc)
    return last


def _levels(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and each exception it wraps, down to the socket's."""
    seen = {id(exc)}
    yield exc
    while True:
        inner = exc.args[0] if exc.args and isinstance(exc.args[0], BaseException) else None
        inner = inner or getattr(exc, "reason", None) or exc.__context__
        if not isinstance(inner, BaseException) or id(inner) in seen:
            return
        seen.add(id(inner))
        yield inner
        exc = inner
