"""A loopback HTTP proxy: ``CONNECT`` tunnels, and absolute-form requests passed on.

``seen`` holds each request line it received, so a test can tell which way
a request went; with ``login="user:pass"`` it answers 407 to any request
without that ``Proxy-Authorization``; with ``silent=True`` it accepts
connections and never answers.
"""

from __future__ import annotations

import base64
import select
import socket
import threading
from typing import List, Optional
from urllib.parse import urlsplit


class ProxyServer:
    def __init__(self, *, login: Optional[str] = None, silent: bool = False) -> None:
        self.login = login
        self.silent = silent
        self.seen: List[str] = []
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(8)
        self._wake, self._waker = socket.socketpair()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    def __enter__(self) -> ProxyServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._waker.send(b"x")
        self._thread.join(5)
        for sock in (self._sock, self._wake, self._waker):
            sock.close()

    def _serve(self) -> None:
        while True:
            ready, _, _ = select.select([self._sock, self._wake], [], [])
            if self._wake in ready:
                return
            conn, _ = self._sock.accept()
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                piece = conn.recv(65536)
                if not piece:
                    return
                data += piece
            head, _, rest = data.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            self.seen.append(lines[0])
            if self.silent:
                conn.recv(1)  # until the client gives up
                return
            method, target, _ = lines[0].split(" ")
            if self.login is not None:
                expected = "Basic " + base64.b64encode(self.login.encode()).decode()
                if f"Proxy-Authorization: {expected}" not in lines:
                    conn.sendall(
                        b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                        b'Proxy-Authenticate: Basic realm="test"\r\nContent-Length: 0\r\n\r\n'
                    )
                    return
            if method == "CONNECT":
                host, _, port = target.rpartition(":")
                upstream = socket.create_connection((host, int(port)))
                conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                url = urlsplit(target)
                upstream = socket.create_connection((url.hostname, url.port or 80))
                origin = (
                    f"{method} {url.path or '/'}{'?' + url.query if url.query else ''} HTTP/1.1"
                )
                kept = [line for line in lines[1:] if not line.lower().startswith("proxy-")]
                upstream.sendall(
                    "\r\n".join([origin, *kept]).encode("latin-1") + b"\r\n\r\n" + rest
                )
            with upstream:
                _pipe(conn, upstream)


def _pipe(a: socket.socket, b: socket.socket) -> None:
    """Bytes both ways until either side closes."""
    while True:
        ready, _, _ = select.select([a, b], [], [], 10)
        if not ready:
            return
        for sock in ready:
            data = sock.recv(65536)
            if not data:
                return
            (b if sock is a else a).sendall(data)
