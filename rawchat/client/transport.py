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
  whatever has arrived; where neither is available, with ``iter_content()``;
* ``requests``/``urllib3``/socket exceptions turned into ``APIConnectionError``
  or ``APITimeoutError``, chained, also when they happen mid-stream.

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
import time
from typing import TYPE_CHECKING, Callable, Iterator, Optional
from urllib.parse import urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter

from ..errors import (
    APIConnectionError,
    APITimeoutError,
    ConfigError,
    InvalidResponseError,
    RawchatError,
)
from ..protocol.http import Headers, HTTPRequest, HTTPResponse
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
            adapter = HTTPAdapter(pool_connections, pool_maxsize, max_retries=0)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
        self.session = session
        self._clock = clock

    def open(self, request: HTTPRequest, timeout: Timeout) -> StreamingResponse:
        """Send the request and return once the response headers are in.

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
        exchange = self.trace.start(request, list(prepared.headers.items())) if self.trace else None
        try:
            with _translated(request, timeout):
                # The environment (proxies, CA bundle) is read on every
                # request, as Session.request() does.
                settings = session.merge_environment_settings(prepared.url, {}, True, None, None)
                response = session.send(
                    prepared,
                    timeout=(timeout.connect, timeout.read),
                    allow_redirects=False,
                    **settings,
                )
        except RawchatError as exc:
            if exchange is not None:
                exchange.end(exc)
            raise
        return StreamingResponse(response, request, started, exchange)

    def send(self, request: HTTPRequest, timeout: Timeout) -> HTTPResponse:
        """Send the request and read the whole response."""
        source = self.open(request, timeout)
        body = source.read()
        return source.response(body, self._clock() - source.started)

    def close(self) -> None:
        if self._owns_session:
            self.session.close()


def _as_given(prepared: requests.PreparedRequest) -> requests.PreparedRequest:
    return prepared


class StreamingResponse:
    """A response whose body has not been read yet.

    ``iter_bytes()`` yields the body as it arrives; ``read()`` returns all
    of it; ``close()`` releases the connection (back to the pool when the
    body was read to the end, otherwise closed).
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
        self.url = request.url
        self.started = started
        self._exchange = exchange
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
        response, raw = self._response, self._response.raw
        with _translated(self.request, reading_body=True):
            if response.is_redirect:
                # Session.send reads a redirect's body even when it does not
                # follow it; requests keeps it in .content.
                pieces: Iterator[bytes] = iter([response.content])
            elif raw.chunked and raw.supports_chunked_reads():
                pieces = raw.read_chunked(decode_content=True)
            elif hasattr(raw, "read1"):  # urllib3 2.1 and later
                pieces = iter(lambda: raw.read1(_READ_SIZE, decode_content=True), b"")
            else:
                # A size, not None: None would hold the whole body in memory.
                pieces = response.iter_content(chunk_size=_READ_SIZE)
            for piece in pieces:
                if piece:
                    yield piece

    def read(
        self,
        *,
        deadline: Optional[float] = None,
        clock: Callable[[], float] = time.monotonic,
        max_bytes: int = MAX_BODY_BYTES,
    ) -> bytes:
        """The whole body, read as it arrives.

        A body that trickles in forever is stopped by ``deadline`` (a time on
        ``clock``); one larger than ``max_bytes`` is refused: neither is a
        chat answer, and neither may hang the caller or eat its memory.
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
        self._response.close()
        return b"".join(pieces)

    def close(self) -> None:
        if self._exchange is not None:
            self._exchange.end(note="closed before the end of the body")
        self._response.close()

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

_BELOW = (OSError, urllib3.exceptions.HTTPError, http.client.HTTPException)  # requests': OSError
_TIMEOUTS = (requests.exceptions.ReadTimeout, urllib3.exceptions.ReadTimeoutError, socket.timeout)
_BROKEN = (
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
    urllib3.exceptions.ProtocolError,
    urllib3.exceptions.DecodeError,
    http.client.HTTPException,
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
        raise _translate(exc, request, timeout, reading_body) from exc


def _translate(
    exc: BaseException, request: HTTPRequest, timeout: Optional[Timeout], reading_body: bool
) -> Exception:
    host, inner = urlsplit(request.url).netloc, _innermost(exc)
    reason = str(inner) or type(inner).__name__
    reason = reason if len(reason) < 300 else reason[:300] + "..."
    errors = requests.exceptions
    if isinstance(exc, (errors.InvalidURL, errors.MissingSchema, errors.InvalidSchema)):
        return ConfigError(f"cannot send to {request.url!r}: {exc}")
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
    seen = {id(exc)}
    while True:
        inner = exc.args[0] if exc.args and isinstance(exc.args[0], BaseException) else None
        inner = inner or getattr(exc, "reason", None) or exc.__context__
        if not isinstance(inner, BaseException) or id(inner) in seen:
            return exc
        seen.add(id(inner))
        exc = inner
