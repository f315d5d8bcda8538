"""One HTTP/1.1 exchange on asyncio: the request out, the body back as it arrives.

The framing is ``rawchat.protocol.http11`` (RFC 9112,
https://www.rfc-editor.org/rfc/rfc9112), the same pure code a test feeds
literal bytes; this module only moves bytes and keeps time, with nothing but
the standard library (``certifi``, which ``requests`` always brings, supplies
the default CA bundle). It does what the ``requests`` transport gets from
``requests`` and urllib3, the same way:

* TLS trusting exactly what ``requests`` would: ``verify=`` a CA bundle
  path, or ``False``; by default ``REQUESTS_CA_BUNDLE``, then
  ``CURL_CA_BUNDLE``, else certifi's bundle (read on every request);
* ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``NO_PROXY`` from the environment
  (``urllib.request.getproxies`` and ``proxy_bypass``, as ``requests``
  does), a ``CONNECT`` tunnel for https (RFC 9110 section 9.3.6) and
  absolute-form requests for http; ``http://user:pass@proxy`` logs in;
* a pool per host: idle connections kept alive for the next request, at
  most ``pool_maxsize`` connections per host, further requests queueing
  for one (until their deadline, if they have one);
* a connect timeout (TCP, proxy tunnel and TLS handshake together), a read
  timeout on every wait for bytes, and an absolute ``deadline`` on the clock
  bounding connect, head and body;
* ``gzip`` and ``deflate`` bodies inflated 64 KiB at a time, at most
  ``MAX_BODY_BYTES`` in all (unless the request asked for ``identity``);
* a cancelled task, a body not read to its end, or any error closes the
  connection: only a connection whose response ended cleanly and may
  persist goes back to the pool;
* errors in the words of the ``requests`` transport: ``APIConnectionError``,
  ``APITimeoutError``, with ``request_sent = False`` when the connection
  was never made.

Why ``asyncio.Protocol`` and not streams (``StreamReader``/``StreamWriter``):
reading a 64 MiB chunked body over loopback took about the same time both
ways (0.14 s with a protocol, 0.16 s with streams), so speed does not
decide. A protocol object can be handed to ``loop.start_tls()`` to turn a
proxy's ``CONNECT`` tunnel into TLS on Python 3.8, where
``StreamWriter.start_tls`` does not exist before 3.11; and its buffer is the
only one between the socket and the parser.
"""

from __future__ import annotations

import asyncio
import base64
import os
import ssl
import zlib
from collections import deque
from typing import (
    TYPE_CHECKING,
    AsyncIterator,
    Callable,
    Deque,
    Dict,
    List,
    Optional,
    Tuple,
    Union,
)
from urllib.parse import unquote, urlsplit
from urllib.request import getproxies, proxy_bypass

from ..errors import (
    APIConnectionError,
    APITimeoutError,
    ConfigError,
    InvalidResponseError,
    RawchatError,
)
from ..protocol.content_coding import inflater_for
from ..protocol.http import HTTPRequest, HTTPResponse, redact_url
from ..protocol.http11 import (
    Data,
    EndOfMessage,
    Event,
    MalformedResponseError,
    RequestHead,
    ResponseHead,
    ResponseParser,
    request_head,
)
from ..protocol.settings import Timeout

if TYPE_CHECKING:  # pragma: no cover
    from .trace import Exchange, Trace

__all__ = [
    "MAX_BODY_BYTES",
    "AsyncStreamingResponse",
    "AsyncTransport",
    "ca_bundle",
    "proxy_for",
]

MAX_BODY_BYTES = 64 * 1024 * 1024
#: Above this many unread bytes the socket is not read until the parser catches up.
_HIGH_WATER = 256 * 1024
#: The most one inflate step may produce: a small gzip body can expand a thousandfold.
#: What ``finish()`` reads past an answer's end, at most, waiting for the body's end.
_FINISH_BYTES = 64 * 1024

Verify = Union[bool, str, None]
PoolKey = Tuple[str, str, int, Optional[str]]


class AsyncTransport:
    """Sends requests over pooled keep-alive connections, from the event loop.

    ``verify``: ``None`` or ``True`` for the environment's CA bundle (as
    ``requests``), a path to a PEM bundle (or a directory of them), or
    ``False`` to skip verification. ``proxy``: ``None`` for the environment's,
    a URL for that proxy on every request, ``False`` for none. ``clock``: the
    clock deadlines are given on (default: the event loop's). ``trace``: where
    to report each exchange (``trace.py``).
    """

    def __init__(
        self,
        *,
        pool_maxsize: int = 10,
        verify: Verify = None,
        proxy: Union[str, bool, None] = None,
        clock: Optional[Callable[[], float]] = None,
        trace: Optional[Trace] = None,
    ) -> None:
        if pool_maxsize < 1:
            raise ConfigError(f"pool_maxsize must be at least 1, got {pool_maxsize!r}")
        self.pool_maxsize = pool_maxsize
        self.verify = verify
        self.proxy = proxy
        self.trace = trace
        self._clock = clock
        self._pools: Dict[PoolKey, _Pool] = {}
        self._contexts: Dict[Union[str, bool], ssl.SSLContext] = {}
        self._closed = False

    @property
    def open_connections(self) -> int:
        """Connections open now, idle or carrying a response."""
        return sum(pool.count for pool in self._pools.values())

    @property
    def idle_connections(self) -> int:
        """Connections waiting in the pools for the next request."""
        return sum(len(pool.idle) for pool in self._pools.values())

    def now(self) -> float:
        return self._clock() if self._clock else asyncio.get_running_loop().time()

    async def open(
        self, request: HTTPRequest, timeout: Timeout, deadline: Optional[float] = None
    ) -> AsyncStreamingResponse:
        """Send the request and return once the response head is in.

        ``deadline`` is a time on the clock by which everything, the body
        included, must be over.
        """
        started = self.now()
        target = _Target.of(request.url, self.proxy)
        head = _head_for(request, target)
        exchange = self.trace.start(request, head.headers) if self.trace else None
        call = _Call(self, request, target, timeout, deadline, exchange)
        pool = self._pools.setdefault(target.key, _Pool())
        connection = await call.connection(pool)
        try:
            parser = ResponseParser(request.method)
            with call.phase("head"):
                await connection.write(head.encode() + request.body, call.wait("head")[0])
                events: List[Event] = []
                while not any(isinstance(event, ResponseHead) for event in events):
                    events += await call.more(connection, parser)
        except BaseException as exc:
            self._discard(pool, connection)
            if exchange is not None and not isinstance(exc, RawchatError):
                exchange.end(note=f"stopped by {type(exc).__name__}")
            raise
        response_head = events.pop(0)
        assert isinstance(response_head, ResponseHead)
        if exchange is not None:
            exchange.response(
                response_head.status, response_head.reason, response_head.headers.items()
            )
        return AsyncStreamingResponse(
            call, pool, connection, parser, response_head, events, started
        )

    async def send(
        self, request: HTTPRequest, timeout: Timeout, deadline: Optional[float] = None
    ) -> HTTPResponse:
        """Send the request and read the whole response."""
        response = await self.open(request, timeout, deadline)
        body = await response.read()
        return response.response(body, self.now() - response.started)

    async def aclose(self) -> None:
        """Close the idle connections; those in use close when their response ends."""
        self._closed = True
        for pool in self._pools.values():
            while pool.idle:
                pool.idle.pop().close()
                pool.count -= 1
            while pool.waiters:
                waiter = pool.waiters.popleft()
                if not waiter.done():
                    waiter.set_exception(ConfigError("the transport was closed"))
        await asyncio.sleep(0)  # the sockets close on the loop's next turn

    async def __aenter__(self) -> AsyncTransport:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # The pool: a connection is idle, in use, or closed; ``count`` is the
    # first two. A freed slot or connection goes straight to the oldest waiter.

    async def _acquire(self, pool: _Pool, call: _Call) -> Tuple[_Connection, bool]:
        """A connection for ``call`` and whether it was reused."""
        while pool.idle:
            connection = pool.idle.pop()  # the most recent: the likeliest still open
            if connection.usable():
                return connection, True
            connection.close()
            pool.count -= 1
        if self._closed:
            raise ConfigError("the transport was closed")
        if pool.count < self.pool_maxsize:
            pool.count += 1
        else:
            handed = await self._wait_turn(pool, call)
            if handed is not None:
                return handed, True
        try:
            return await call.dial(), False
        except BaseException:
            self._drop_slot(pool)
            raise

    async def _wait_turn(self, pool: _Pool, call: _Call) -> Optional[_Connection]:
        """Queue for a connection: one handed over, or None for a slot to dial."""
        waiter: asyncio.Future = asyncio.get_running_loop().create_future()
        pool.waiters.append(waiter)
        try:
            with call.phase("pool"):
                return await asyncio.wait_for(waiter, call.wait("pool")[0])
        except BaseException:
            # Handed over just as we gave up: pass it on, or it leaks.
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                handed = waiter.result()
                if handed is None:
                    self._drop_slot(pool)
                else:
                    self._release(pool, handed, reusable=True)
            waiter.cancel()
            raise

    def _release(self, pool: _Pool, connection: _Connection, *, reusable: bool) -> None:
        if not (reusable and connection.usable() and not self._closed):
            self._discard(pool, connection)
            return
        while pool.waiters:
            waiter = pool.waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        pool.idle.append(connection)

    def _discard(self, pool: _Pool, connection: _Connection) -> None:
        connection.close()
        self._drop_slot(pool)

    def _drop_slot(self, pool: _Pool) -> None:
        while pool.waiters:
            waiter = pool.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes to the waiter
                return
        pool.count -= 1

    def _ssl_context(self) -> ssl.SSLContext:
        """The TLS settings ``requests`` would use now (the environment is read each time)."""
        verify = self.verify
        if verify is None or verify is True:
            verify = ca_bundle()
        context = self._contexts.get(verify)
        if context is None:
            context = _make_context(verify)
            self._contexts[verify] = context
        return context


class AsyncStreamingResponse:
    """A response whose body has not been read yet.

    ``iter_bytes()`` yields the body as it arrives; ``read()`` returns all of
    it; ``aclose()`` releases the connection (back to the pool when the body
    was read to the end and the connection may persist, otherwise closed).
    """

    def __init__(
        self,
        call: _Call,
        pool: _Pool,
        connection: _Connection,
        parser: ResponseParser,
        head: ResponseHead,
        events: List[Event],
        started: float,
    ) -> None:
        self.request = call.request
        self.status_code = head.status
        self.reason = head.reason
        self.headers = head.headers
        self.http_version = head.http_version
        self.url = call.request.url
        self.started = started
        self._call = call
        self._pool = pool
        self._connection: Optional[_Connection] = connection
        self._parser = parser
        self._events = events
        self._inflater = inflater_for(self.headers, self.request.headers)
        self._done = False

    async def iter_bytes(self) -> AsyncIterator[bytes]:
        """The body, each piece as soon as it has arrived (and been inflated)."""
        call, exchange = self._call, self._call.exchange
        size = 0
        try:
            while not self._done:
                if not self._events:
                    with call.phase("body"):
                        self._events = await call.more(self._connection, self._parser)
                    continue
                # What one read brought is handed over as one piece: the
                # caller parses it in one go, whatever the chunk boundaries.
                # The end of the body stays on the response until its data
                # has been taken, where finish() can see that it has come.
                ended = isinstance(self._events[0], EndOfMessage)
                if ended:
                    self._events.pop(0)
                    pieces = self._inflater.flush() if self._inflater else iter(())
                else:
                    data = self._take_data()
                    pieces = self._inflater.feed(data) if self._inflater else iter((data,))
                with call.phase("body"):
                    for piece in pieces:
                        size += len(piece)
                        if self._inflater and size > MAX_BODY_BYTES:
                            raise InvalidResponseError(
                                f"the inflated response body from {self.url} passed "
                                f"{MAX_BODY_BYTES} bytes",
                                status_code=self.status_code,
                                hint="no chat answer is that large; is the base URL right?",
                            )
                        if exchange is not None:
                            exchange.body(piece)
                        yield piece
                if ended:
                    self._finish()
        except BaseException as exc:
            self._abandon()
            if exchange is not None and isinstance(exc, RawchatError):
                exchange.end(exc)
            raise

    def _take_data(self) -> bytes:
        """The data events at the front of the queue, joined; the rest stays."""
        taken = 0
        for event in self._events:
            if not isinstance(event, Data):
                break
            taken += 1
        data = [event.data for event in self._events[:taken]]  # type: ignore[attr-defined]
        del self._events[:taken]
        return data[0] if len(data) == 1 else b"".join(data)

    async def read(self, *, max_bytes: int = MAX_BODY_BYTES) -> bytes:
        """The whole body; one larger than ``max_bytes`` is refused."""
        pieces = []
        size = 0
        body = self.iter_bytes()
        try:
            async for piece in body:
                pieces.append(piece)
                size += len(piece)
                if size > max_bytes:
                    raise InvalidResponseError(
                        f"the response body from {self.url} passed {max_bytes} bytes",
                        status_code=self.status_code,
                        hint="no chat answer is that large; is the base URL right?",
                    )
        finally:
            await body.aclose()  # type: ignore[attr-defined]
            await self.aclose()
        return b"".join(pieces)

    async def finish(self, grace: float = 0.1) -> None:
        """Release the connection of an answer already known to be complete.

        At ``data: [DONE]`` a chat stream is over, but the body's own end
        (the last chunk, ``0\r\n\r\n``) may still be on its way or, from a
        server that holds the connection open, never come. What is left is
        read for at most ``grace`` seconds and 64 KiB: if the body ends, the
        connection goes back to the pool for the next request; if not, it is
        closed (as the ``requests`` transport's ``finish()`` does).
        """
        connection = self._connection
        ended = any(isinstance(event, EndOfMessage) for event in self._events)
        if connection is not None and not ended:
            give_up = self._call.transport.now() + grace
            left = _FINISH_BYTES
            try:
                while not ended and left > 0:
                    wait = give_up - self._call.transport.now()
                    if wait <= 0:
                        break
                    data = await connection.read(wait)
                    events = self._parser.feed(data) if data else self._parser.end_of_stream()
                    ended = any(isinstance(event, EndOfMessage) for event in events)
                    left -= len(data)
                    if not data:
                        break
            except (asyncio.TimeoutError, OSError, MalformedResponseError):
                pass  # slow or broken: the connection is not worth keeping
        if ended and connection is not None:
            self._finish()
        else:
            await self.aclose()

    async def aclose(self) -> None:
        """Release the connection; a body not read to its end closes it."""
        if self._connection is not None:
            if self._call.exchange is not None:
                self._call.exchange.end(note="closed before the end of the body")
            self._abandon()
        # An aborted transport closes its socket in a callback on the loop's
        # next turn (also when the body broke off and was abandoned already):
        # take that turn, or a loop that ends now (as asyncio.run's does on
        # Python 3.8) would never close it.
        await asyncio.sleep(0)

    async def __aenter__(self) -> AsyncStreamingResponse:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

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

    def _finish(self) -> None:
        self._done = True
        connection, self._connection = self._connection, None
        if connection is not None:
            reusable = self._parser.reusable and not _asks_close(self.request)
            self._call.transport._release(self._pool, connection, reusable=reusable)
        if self._call.exchange is not None:
            self._call.exchange.end()

    def _abandon(self) -> None:
        self._done = True
        connection, self._connection = self._connection, None
        if connection is not None:
            self._call.transport._discard(self._pool, connection)


# ---------------------------------------------------------------- one request


class _Target:
    """Where a request goes: the origin, and the proxy on the way, if any."""

    def __init__(self, url: str, scheme: str, host: str, port: int, proxy: Optional[str]):
        self.url = url
        self.scheme = scheme
        self.host = host
        self.port = port
        self.proxy = proxy
        self.authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.key: PoolKey = (scheme, host, port, proxy)

    @classmethod
    def of(cls, url: str, proxy: Union[str, bool, None]) -> _Target:
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:  # a port that is not a number
            raise ConfigError(f"cannot send to {url!r}: {exc}") from exc
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"cannot send to {url!r}: the URL needs http:// or https:// and a host"
            )
        if proxy is None:
            proxy = proxy_for(url)
        elif proxy is not False and "://" not in proxy:
            proxy = f"http://{proxy}"
        if proxy and urlsplit(proxy).scheme != "http":
            raise ConfigError(
                f"the proxy {redact_url(proxy)} is not an http:// proxy",
                hint="only plain http:// proxies are supported (they tunnel https with CONNECT)",
            )
        default_port = 443 if parts.scheme == "https" else 80
        return cls(url, parts.scheme, parts.hostname, port or default_port, proxy or None)

    def proxy_authorization(self) -> List[Tuple[str, str]]:
        """``Proxy-Authorization`` for a proxy URL with a login in it (RFC 9110 11.7.1)."""
        parts = urlsplit(self.proxy or "")
        if parts.username is None:
            return []
        login = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        token = base64.b64encode(login.encode("utf-8")).decode("ascii")
        return [("Proxy-Authorization", f"Basic {token}")]


def _head_for(request: HTTPRequest, target: _Target) -> RequestHead:
    """The head as sent: absolute-form through an http proxy; gzip and deflate accepted."""
    extra: List[Tuple[str, str]] = []
    if "accept-encoding" not in request.headers:
        extra.append(("Accept-Encoding", "gzip, deflate"))  # as requests sends
    if target.proxy and target.scheme == "http":
        extra += target.proxy_authorization()
        parts = urlsplit(request.url)
        netloc = parts.netloc.rpartition("@")[2]
        return request_head(request, target=f"http://{netloc}{request.target}", extra=extra)
    return request_head(request, extra=extra)


def _asks_close(request: HTTPRequest) -> bool:
    return "close" in request.headers.get("connection", "").lower()


class _Call:
    """One request's timing and error wording, shared by the transport and its response."""

    def __init__(
        self,
        transport: AsyncTransport,
        request: HTTPRequest,
        target: _Target,
        timeout: Timeout,
        deadline: Optional[float],
        exchange: Optional[Exchange],
    ) -> None:
        self.transport = transport
        self.request = request
        self.target = target
        self.timeout = timeout
        self.deadline = deadline
        self.exchange = exchange
        self.host = urlsplit(request.url).netloc.rpartition("@")[2]
        self._by_deadline = False

    def wait(self, phase: str) -> Tuple[Optional[float], bool]:
        """How long the next wait of ``phase`` may last, and whether the deadline set that."""
        limit: Optional[float] = self.timeout.connect if phase == "connect" else self.timeout.read
        if phase == "pool":
            limit = None  # a queued request waits for its turn until its deadline
        if self.deadline is not None:
            left = self.deadline - self.transport.now()
            if limit is None or left <= limit:
                self._by_deadline = True
                return max(left, 0.0), True
        self._by_deadline = False
        return limit, False

    async def connection(self, pool: _Pool) -> _Connection:
        try:
            connection, _ = await self.transport._acquire(pool, self)
        except RawchatError as exc:
            if self.exchange is not None:
                self.exchange.end(exc)
            raise
        return connection

    async def dial(self) -> _Connection:
        """A new connection: TCP, then the proxy's tunnel, then TLS, in one connect timeout."""
        with self.phase("connect"):
            budget, _ = self.wait("connect")
            if budget is not None and budget <= 0:
                raise asyncio.TimeoutError()
            return await asyncio.wait_for(self._dial(), budget)

    async def _dial(self) -> _Connection:
        target = self.target
        loop = asyncio.get_running_loop()
        context = self.transport._ssl_context() if target.scheme == "https" else None
        if target.proxy is None:
            _, connection = await loop.create_connection(
                lambda: _Connection(loop),
                target.host,
                target.port,
                ssl=context,
                server_hostname=target.host if context else None,
            )
            return connection
        proxy = urlsplit(target.proxy)
        try:
            _, connection = await loop.create_connection(
                lambda: _Connection(loop), proxy.hostname, proxy.port or 80
            )
        except OSError as exc:
            raise _ProxyFailed(f"cannot reach the proxy: {_reason(exc)}") from exc
        try:
            if context is not None:
                await self._tunnel(connection)
                await connection.start_tls(context, target.host)
        except BaseException:
            connection.close()
            raise
        return connection

    async def _tunnel(self, connection: _Connection) -> None:
        """RFC 9110 section 9.3.6: ``CONNECT host:port``; a 2xx makes the connection a tunnel."""
        authority = self.target.authority
        fields = [("Host", authority), *self.target.proxy_authorization()]
        await connection.write(RequestHead("CONNECT", authority, tuple(fields)).encode(), None)
        parser = ResponseParser("CONNECT")
        events: List[Event] = []
        try:
            while not parser.complete:
                data = await connection.read(None)  # bounded by the connect timeout around
                events += parser.feed(data) if data else parser.end_of_stream()
        except (MalformedResponseError, OSError) as exc:
            raise _ProxyFailed(f"no answer to CONNECT {authority}: {_reason(exc)}") from exc
        head = events[0]
        assert isinstance(head, ResponseHead)
        if not 200 <= head.status < 300:
            raise _ProxyFailed(f"CONNECT {authority} answered {head.status} {head.reason}".strip())
        if parser.trailing_data:
            raise _ProxyFailed(f"the proxy sent bytes of its own after CONNECT {authority}")

    async def more(self, connection: Optional[_Connection], parser: ResponseParser) -> List[Event]:
        """The events from the next bytes read (possibly none)."""
        assert connection is not None
        budget, _ = self.wait("read")
        if budget is not None and budget <= 0:
            raise asyncio.TimeoutError()
        data = await connection.read(budget)
        return parser.feed(data) if data else parser.end_of_stream()

    def phase(self, name: str) -> _Translated:
        return _Translated(self, name)

    def translate(self, exc: BaseException, phase: str) -> Optional[RawchatError]:
        """``exc`` in rawchat's words (the ``requests`` transport's), or None to let it pass."""
        host, timeout = self.host, self.timeout
        reason = _reason(exc)
        error: APIConnectionError
        if isinstance(exc, asyncio.TimeoutError) and self._by_deadline:
            what = {
                "pool": f"waiting for a free connection to {host} (pool_maxsize "
                f"{self.transport.pool_maxsize})",
                "connect": f"connecting to {host}",
                "head": f"waiting for the response head from {host}",
            }.get(phase)
            if what is None:
                error = APITimeoutError(
                    f"the response from {self.request.url} was still arriving at the deadline",
                    hint="the server sends very slowly; raise the deadline, or check the network",
                )
            else:
                error = APITimeoutError(
                    f"the deadline passed while {what}",
                    hint="the server is slow or unreachable; raise the deadline, or check "
                    "the network",
                )
        elif isinstance(exc, asyncio.TimeoutError) and phase == "connect":
            error = APITimeoutError(
                f"connecting to {host} timed out after {timeout.connect:g} s",
                hint="the host did not answer: check the base URL, your network, and "
                "HTTPS_PROXY if you are behind a proxy",
            )
        elif isinstance(exc, asyncio.TimeoutError):
            error = APITimeoutError(
                f"{host} sent nothing in {timeout.read:g} s (read timeout)",
                hint="the server stalled; a larger read timeout helps only if answers "
                "are known to take that long before the first byte",
            )
        elif isinstance(exc, _ProxyFailed):
            error = APIConnectionError(
                f"the proxy refused or failed the connection to {host}: {reason}",
                hint="check HTTPS_PROXY / HTTP_PROXY / NO_PROXY (local servers usually "
                "belong in NO_PROXY)",
            )
        elif isinstance(exc, ssl.SSLError) and phase == "connect":
            error = APIConnectionError(
                f"TLS with {host} failed: {reason}",
                hint="behind a corporate proxy that inspects TLS, point "
                "REQUESTS_CA_BUNDLE at your company's CA bundle (PEM)",
            )
        elif isinstance(exc, OSError) and phase == "connect":
            error = APIConnectionError(
                f"could not connect to {host}: {reason}",
                hint="is the server running, the base URL right, and the network (or "
                "HTTPS_PROXY) letting you through?",
            )
        elif isinstance(exc, (OSError, MalformedResponseError, zlib.error)):
            error = APIConnectionError(
                f"the response from {host} broke off or was malformed: {reason}",
                hint="the connection dropped mid-response (server restart, proxy "
                "timeout, or a network blip); retrying usually works",
            )
        else:
            return None
        if phase in ("pool", "connect"):
            error.request_sent = False
        return error


class _Translated:
    """Errors raised inside turned into rawchat's, the original chained."""

    def __init__(self, call: _Call, phase: str) -> None:
        self.call = call
        self.phase = phase

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: Optional[BaseException], tb: object) -> bool:
        if exc is None:
            return False
        # Ours pass as they are, but for the framing's, which do not name the host.
        if isinstance(exc, RawchatError) and not isinstance(exc, MalformedResponseError):
            return False
        error = self.call.translate(exc, self.phase)
        if error is None:
            return False
        if self.call.exchange is not None:
            self.call.exchange.end(error)
        raise error from exc


class _ProxyFailed(Exception):
    """The proxy could not be reached, or would not open the tunnel."""


def _reason(exc: BaseException) -> str:
    if isinstance(exc, MalformedResponseError):
        return exc.reason
    reason = str(exc) or type(exc).__name__
    return reason if len(reason) < 300 else reason[:300] + "..."


# ---------------------------------------------------------------- bytes and sockets


class _Pool:
    """The connections to one origin through one proxy (or none)."""

    def __init__(self) -> None:
        self.idle: Deque[_Connection] = deque()
        self.count = 0  # idle plus in use
        self.waiters: Deque[asyncio.Future] = deque()


class _Connection(asyncio.Protocol):
    """One TCP or TLS connection: bytes in as they arrive, bytes out with flow control."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.transport: Optional[asyncio.Transport] = None
        self._buffer = bytearray()
        self._eof = False
        self._lost: Optional[BaseException] = None
        self._reading_paused = False
        self._writing_paused = False
        self._readable: Optional[asyncio.Future] = None
        self._writable: Optional[asyncio.Future] = None

    # Called by the event loop.

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) > _HIGH_WATER and not self._reading_paused and self.transport:
            self.transport.pause_reading()
            self._reading_paused = True
        _wake(self._readable)

    def eof_received(self) -> Optional[bool]:
        self._eof = True
        _wake(self._readable)
        return None  # let the transport close

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        self._eof = True
        self._lost = exc
        _wake(self._readable)
        _wake(self._writable)

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        _wake(self._writable)

    # Called by the transport.

    async def read(self, timeout: Optional[float]) -> bytes:
        """The bytes that have arrived, waiting up to ``timeout`` for some; b"" at EOF."""
        if not self._buffer and not self._eof:
            self._readable = self._loop.create_future()
            try:
                await _within(self._loop, self._readable, timeout)
            finally:
                self._readable = None
        if self._buffer:
            data = bytes(self._buffer)
            self._buffer.clear()
            if self._reading_paused and self.transport is not None:
                self._reading_paused = False
                self.transport.resume_reading()
            return data
        if self._lost is not None:
            raise self._lost
        return b""

    async def write(self, data: bytes, timeout: Optional[float]) -> None:
        if self._eof or self.transport is None or self.transport.is_closing():
            raise self._lost or ConnectionResetError("the connection was closed")
        self.transport.write(data)
        if self._writing_paused:
            self._writable = self._loop.create_future()
            try:
                await _within(self._loop, self._writable, timeout)
            finally:
                self._writable = None
        if self._lost is not None:
            raise self._lost

    async def start_tls(self, context: ssl.SSLContext, server_hostname: str) -> None:
        """Turn this connection (a proxy's tunnel) into TLS with the host at its far end."""
        assert self.transport is not None
        transport = await self._loop.start_tls(
            self.transport, self, context, server_hostname=server_hostname
        )
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def usable(self) -> bool:
        """Whether an idle connection may carry a request (the server has not hung up)."""
        return not (
            self._eof or self._buffer or self.transport is None or self.transport.is_closing()
        )

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()  # no farewell needed: a half-read body is worthless


async def _within(
    loop: asyncio.AbstractEventLoop, waiter: asyncio.Future, timeout: Optional[float]
) -> None:
    """Await ``waiter`` for at most ``timeout`` seconds (``None``: no limit).

    One timer on the loop, cancelled if the waiter is done first. This is
    what ``asyncio.wait_for`` does, without the extra future and callbacks
    it adds to every call: a stream waits like this once per read.
    """
    if timeout is None:
        await waiter
        return
    timer = loop.call_later(timeout, _expire, waiter)
    try:
        await waiter
    finally:
        timer.cancel()


def _expire(waiter: asyncio.Future) -> None:
    if not waiter.done():
        waiter.set_exception(asyncio.TimeoutError())


def _wake(waiter: Optional[asyncio.Future]) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


# ---------------------------------------------------------------- the environment


def ca_bundle() -> str:
    """The CA certificates ``requests`` verifies TLS with, as a path.

    ``REQUESTS_CA_BUNDLE``, then ``CURL_CA_BUNDLE``, else certifi's bundle
    (``requests.Session.merge_environment_settings`` and ``requests.certs``).
    An empty string means the system's default store (no certifi).
    """
    path = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if path:
        return path
    try:
        import certifi
    except ImportError:  # requests without certifi: the system's store
        return ""
    return certifi.where()


#: The variables that decide an http(s) URL's proxy, in both spellings
#: (``REQUEST_METHOD``: under CGI, ``HTTP_PROXY`` is a request header).
_PROXY_VARIABLES = (
    "http_proxy", "https_proxy", "all_proxy", "no_proxy",
    "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "REQUEST_METHOD",
)  # fmt: skip
_proxies_seen: Dict[Tuple[Optional[str], ...], Optional[str]] = {}


def proxy_for(url: str) -> Optional[str]:
    """The proxy for ``url`` from the environment (``HTTPS_PROXY``, ``NO_PROXY``...), if any.

    Read for every request, as ``requests`` does. ``getproxies`` walks the
    whole environment, which a thousand streams opening at once would pay a
    thousand times, so its answer is kept for as long as the variables it
    depends on keep their values.
    """
    parts = urlsplit(url)
    if not parts.hostname:
        return None
    netloc = parts.netloc.rpartition("@")[2]
    key = (parts.scheme, netloc, *(os.environ.get(name) for name in _PROXY_VARIABLES))
    if key not in _proxies_seen:
        if len(_proxies_seen) >= 256:
            _proxies_seen.clear()
        _proxies_seen[key] = _environment_proxy(parts.scheme, netloc)
    return _proxies_seen[key]


def _environment_proxy(scheme: str, netloc: str) -> Optional[str]:
    if proxy_bypass(netloc):
        return None
    proxies = getproxies()
    proxy = proxies.get(scheme) or proxies.get("all")
    if not proxy:
        return None
    return proxy if "://" in proxy else f"http://{proxy}"


def _make_context(verify: Union[str, bool]) -> ssl.SSLContext:
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif verify == "":
        context = ssl.create_default_context()
    elif isinstance(verify, str) and os.path.isdir(verify):
        context = ssl.create_default_context(capath=verify)
    elif isinstance(verify, str) and os.path.isfile(verify):
        context = ssl.create_default_context(cafile=verify)
    else:
        raise ConfigError(
            f"the CA bundle {verify!r} does not exist",
            hint="check verify=, REQUESTS_CA_BUNDLE and CURL_CA_BUNDLE",
        )
    context.set_alpn_protocols(["http/1.1"])
    return context
