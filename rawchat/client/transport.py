"""Sending ``HTTPRequest`` values with ``requests``: the one module that does.

A ``requests.Session`` gives connection pooling (keep-alive), proxies from
``HTTPS_PROXY``/``NO_PROXY`` and CA bundles from ``REQUESTS_CA_BUNDLE``, as
corporate networks need; pass your own Session to control those yourself.
What this module adds:

* Every request has a connect and a read timeout (``requests`` has none).
* Redirects are not followed: a 301 would turn the POST into a GET, and the
  base URL should be fixed instead (the error says where it points).
* Bodies are read with ``read1()``, which returns whatever has arrived, so
  every byte is handed over as soon as it is here: a chunked body is
  de-chunked by ``chunked.py`` (one piece per read, however many chunks it
  holds), anything else comes as read (urllib3's ``read_chunked()`` serves
  a gzip-encoded chunked body). ``iter_content(chunk_size=None)`` would
  wait for EOF on a close-delimited body, any fixed chunk size waits for
  that many bytes, and requests' text decoding would read an SSE body
  without a charset as ISO-8859-1. Bytes go to the SSE parser undecoded.
* A session the transport made itself is driven at the adapter, below
  ``Session.send()`` (see ``Transport.open``).
* ``requests``/``urllib3`` exceptions become ``APIConnectionError`` or
  ``APITimeoutError``, chained, also when they happen mid-stream.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, Optional, Tuple
from urllib.parse import urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.hooks import default_hooks
from requests.structures import CaseInsensitiveDict
from requests.utils import requote_uri

from ..errors import (
    APIConnectionError,
    APITimeoutError,
    ConfigError,
    InvalidResponseError,
    RawchatError,
)
from ..protocol.chunked import ChunkedDecoder
from ..protocol.http import Headers, HTTPRequest, HTTPResponse
from ..protocol.settings import Timeout

if TYPE_CHECKING:  # pragma: no cover
    from .trace import Exchange, Trace  # loaded by those who trace

__all__ = ["StreamingResponse", "Transport", "ca_bundle", "proxy_for"]

_READ_SIZE = 65536
MAX_BODY_BYTES = 64 * 1024 * 1024


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
        if self._exchange is None:  # untraced: one generator fewer per piece
            return self._pieces()
        return self._traced(self._exchange)

    def _traced(self, exchange: Exchange) -> Iterator[bytes]:
        try:
            for piece in self._pieces():
                exchange.body(piece)
                yield piece
        except RawchatError as exc:
            exchange.end(exc)
            raise
        exchange.end()

    def _pieces(self) -> Iterator[bytes]:
        raw = self._response.raw
        with _translated(self.request, reading_body=True):
            fp = getattr(raw, "_fp", None)
            if (
                raw.chunked
                and isinstance(fp, http.client.HTTPResponse)
                and fp.chunk_left is None  # nothing of the body read yet
                and hasattr(fp.fp, "read1")
                and "content-encoding" not in self.headers
            ):
                yield from self._read_chunked(raw, fp)
            elif raw.chunked and getattr(raw, "supports_chunked_reads", bool)():
                for piece in raw.read_chunked(None, decode_content=True):
                    if piece:
                        yield piece
            elif hasattr(raw, "read1"):  # urllib3 >= 2
                while True:
                    # requests leaves decode_content off; gzip bodies need it on.
                    piece = raw.read1(_READ_SIZE, decode_content=True)
                    if not piece:
                        break
                    yield piece
            else:
                yield from self._iter_bytes_urllib3_v1(raw)

    def _read_chunked(self, raw: Any, response: http.client.HTTPResponse) -> Iterator[bytes]:
        # Whatever the socket has, de-chunked here (see chunked.py): one piece
        # per read, however many chunks it holds, where urllib3 would hand
        # over one chunk per call.
        decoder = ChunkedDecoder()
        read1 = response.fp.read1
        while not decoder.done:
            data = read1(_READ_SIZE)
            if not data:
                raise _broken(self.request, "the connection closed before the last chunk")
            try:
                body = decoder.feed(data)
            except APIConnectionError as exc:
                raise _broken(self.request, exc.message) from exc
            if body:
                yield body
        if not decoder.unused:
            # What http.client and urllib3 do at the end of a chunked body:
            # close the response (not the socket) and return the connection
            # to the pool. With stray bytes after the body it is not reused:
            # close() will drop it instead.
            response.close()
            raw.release_conn()

    def _iter_bytes_urllib3_v1(self, raw: urllib3.HTTPResponse) -> Iterator[bytes]:
        # urllib3 1.x has no read1() and its stream() holds a close-delimited
        # body until EOF. Underneath sits http.client's response, whose
        # read1() returns what has arrived; usable when there is no
        # Content-Encoding for urllib3 to undo.
        fp = getattr(raw, "_fp", None)
        if fp is None or not hasattr(fp, "read1") or "content-encoding" in self.headers:
            yield from self._response.iter_content(chunk_size=None)
            return
        while True:
            piece = fp.read1(_READ_SIZE)
            if not piece:
                break
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
            adapter = HTTPAdapter(
                pool_connections=pool_connections,
                pool_maxsize=pool_maxsize,
                max_retries=0,
            )
            session.mount("https://", adapter)
            session.mount("http://", adapter)
        self.session = session
        self._clock = clock
        self._settings_cache: Dict[Tuple[str, str], Dict[str, Any]] = {}

    def open(self, request: HTTPRequest, timeout: Timeout) -> StreamingResponse:
        """Send the request and return once the response headers are in.

        What ``Session.request()`` does, in two steps, so that a trace can
        show the headers exactly as sent (requests adds its own defaults).
        A session the transport made itself is driven one level down: the
        request is prepared here and handed straight to its adapter. The
        Session machinery in between (cookie jars, auth hooks, a look for
        ``~/.netrc`` on every request) cost a third of a request's time, and
        an API client with a Bearer key needs none of it. A session passed in,
        or ours once given cookies, auth, params or hooks, goes through all of
        it, except that ``~/.netrc`` never replaces the Bearer header, as
        requests would let it.
        """
        started = self._clock()
        session = self.session
        direct = self._owns_session and request.url.isascii() and _plain(session)
        with _translated(request, timeout):
            prepared = self._prepare(request) if direct else self._prepare_in_session(request)
        exchange = None
        if self.trace is not None:
            exchange = self.trace.start(request, list(prepared.headers.items()))
        try:
            with _translated(request, timeout):
                settings = self._environment(prepared.url)
                if direct:
                    response = session.get_adapter(prepared.url).send(
                        prepared, timeout=(timeout.connect, timeout.read), **settings
                    )
                else:
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

    def _prepare(self, request: HTTPRequest) -> requests.PreparedRequest:
        """The bytes-to-be for the adapter, as ``PreparedRequest.prepare()`` makes them.

        Only ASCII URLs come here, so there is no host to IDNA-encode; what
        needs percent-encoding (a space in an Azure deployment name) is
        encoded as requests would; the headers are the session's defaults
        with ours on top; the length is set by requests' own step for it.
        """
        prepared = requests.PreparedRequest()
        prepared.method = request.method
        prepared.url = requote_uri(request.url)
        prepared.headers = CaseInsensitiveDict(self.session.headers)
        prepared.headers.update(request.headers.items())
        prepared.body = request.body or None
        prepared.prepare_content_length(prepared.body)
        prepared.hooks = default_hooks()
        return prepared

    def _prepare_in_session(self, request: HTTPRequest) -> requests.PreparedRequest:
        return self.session.prepare_request(
            requests.Request(
                request.method,
                request.url,
                headers=dict(request.headers.items()),
                data=request.body or None,
                # An auth of our own, which changes nothing, keeps requests from
                # taking one from ~/.netrc that would overwrite the Bearer key.
                auth=None if self.session.auth else _headers_as_given,
            )
        )

    def _environment(self, url: str) -> Dict[str, Any]:
        """Proxies and CA bundle for ``url`` from the environment, as requests reads them.

        Read once per scheme and host: scanning the environment on every
        request cost more than the rest of a request's preparation. Start a
        new client to pick up changed variables.
        """
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc)
        settings = self._settings_cache.get(key)
        if settings is None:
            settings = self.session.merge_environment_settings(url, {}, True, None, None)
            self._settings_cache[key] = settings
        return settings

    def send(self, request: HTTPRequest, timeout: Timeout) -> HTTPResponse:
        """Send the request and read the whole response."""
        source = self.open(request, timeout)
        body = source.read()
        return source.response(body, self._clock() - source.started)

    def close(self) -> None:
        if self._owns_session:
            self.session.close()


def _plain(session: requests.Session) -> bool:
    """Whether the session adds nothing that only ``Session.send()`` would apply."""
    return (
        session.auth is None
        and not session.params
        and not session.cookies
        and not any(session.hooks.values())
    )


def _headers_as_given(prepared: requests.PreparedRequest) -> requests.PreparedRequest:
    return prepared


def ca_bundle() -> str:
    """The CA certificates ``requests`` verifies TLS with, as a file path."""
    settings = requests.Session().merge_environment_settings("https://x", {}, False, None, None)
    verify = settings.get("verify")
    return verify if isinstance(verify, str) else requests.certs.where()


def proxy_for(url: str) -> Optional[str]:
    """The proxy ``requests`` would use for ``url`` (from the environment), if any."""
    proxies = requests.utils.get_environ_proxies(url)
    return requests.utils.select_proxy(url, proxies)


@contextlib.contextmanager
def _translated(
    request: HTTPRequest, timeout: Optional[Timeout] = None, *, reading_body: bool = False
) -> Iterator[None]:
    """Turn ``requests``/``urllib3``/socket exceptions into rawchat's, chained.

    ``reading_body``: the response has begun, so a failure that is not a
    timeout is a response that broke off, not a connection that failed.
    """
    try:
        yield
    except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
        raise _translate(exc, request, timeout, reading_body) from exc
    except http.client.HTTPException as exc:
        if not reading_body:
            raise
        raise _broken(request, _reason(exc)) from exc


def _broken(request: HTTPRequest, reason: str) -> APIConnectionError:
    return APIConnectionError(
        f"the response from {urlsplit(request.url).netloc} broke off or was malformed: {reason}",
        hint="the connection dropped mid-response (server restart, proxy "
        "timeout, or a network blip); retrying usually works",
    )


def _translate(
    exc: BaseException,
    request: HTTPRequest,
    timeout: Optional[Timeout],
    reading_body: bool = False,
) -> Exception:
    host = urlsplit(request.url).netloc
    inner = _innermost(exc)
    errors = requests.exceptions
    if isinstance(exc, (errors.ConnectTimeout, urllib3.exceptions.ConnectTimeoutError)):
        after = f" after {timeout.connect:g} s" if timeout else ""
        return APITimeoutError(
            f"connecting to {host} timed out{after}",
            hint="the host did not answer: check the base URL, your network, and "
            "HTTPS_PROXY if you are behind a proxy",
        )
    # requests reports a read timeout met mid-body as a plain ConnectionError,
    # so the innermost exception decides.
    timeouts = (errors.ReadTimeout, urllib3.exceptions.ReadTimeoutError, socket.timeout)
    if isinstance(exc, timeouts) or isinstance(inner, timeouts):
        after = f" in {timeout.read:g} s" if timeout else ""
        return APITimeoutError(
            f"{host} sent nothing{after} (read timeout)",
            hint="the server stalled; a larger read timeout helps only if answers "
            "are known to take that long before the first byte",
        )
    if isinstance(exc, errors.SSLError):
        return APIConnectionError(
            f"TLS with {host} failed: {_reason(inner)}",
            hint="behind a corporate proxy that inspects TLS, point "
            "REQUESTS_CA_BUNDLE at your company's CA bundle (PEM)",
        )
    if isinstance(exc, errors.ProxyError):
        return APIConnectionError(
            f"the proxy refused or failed the connection to {host}: {_reason(inner)}",
            hint="check HTTPS_PROXY / HTTP_PROXY / NO_PROXY (local servers usually "
            "belong in NO_PROXY)",
        )
    if isinstance(exc, (errors.InvalidURL, errors.MissingSchema, errors.InvalidSchema)):
        return ConfigError(f"cannot send to {request.url!r}: {exc}")
    broken = (
        errors.ChunkedEncodingError,
        errors.ContentDecodingError,
        urllib3.exceptions.ProtocolError,
        urllib3.exceptions.DecodeError,
        http.client.IncompleteRead,
    )
    if reading_body or isinstance(exc, broken) or isinstance(inner, http.client.IncompleteRead):
        return _broken(request, _reason(inner))
    return APIConnectionError(
        f"could not connect to {host}: {_reason(inner)}",
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


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) < 300 else text[:300] + "..."
