"""A loopback server that writes hand-made bytes, for what no framework emits."""

from __future__ import annotations

import select
import socket
import threading
from typing import Callable, List


class RawServer:
    """Accepts connections on 127.0.0.1 and hands each socket to ``script``.

    ``script(conn, request_bytes)`` writes whatever it likes; the connection
    is closed when it returns. ``requests`` counts the connections served.
    With ``read_request=False`` the script starts at once, with ``b""``: for
    a server that answers before any request (or a TLS hello) is in.
    """

    def __init__(
        self, script: Callable[[socket.socket, bytes], None], *, read_request: bool = True
    ) -> None:
        self.script = script
        self.read_request = read_request
        self.requests: List[bytes] = []
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(8)
        # A byte on this pair stops the accept loop at once, where a polling
        # timeout would hold every test up until its next poll.
        self._wake, self._waker = socket.socketpair()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def port(self) -> int:
        return int(self._sock.getsockname()[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> RawServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._waker.send(b"x")
        self._thread.join(5)
        for sock in (self._sock, self._wake, self._waker):
            sock.close()

    def _serve(self) -> None:
        while True:
            ready, _, _ = select.select([self._sock, self._wake], [], [])
            if self._wake in ready:
                return
            try:
                conn, _ = self._sock.accept()
            except OSError:  # a connection reset before it was accepted
                continue
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with conn:
            request = _read_request(conn) if self.read_request else b""
            self.requests.append(request)
            try:
                self.script(conn, request)
            except OSError:
                pass


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        piece = conn.recv(65536)
        if not piece:
            return data
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    while len(body) < length:
        body += conn.recv(65536)
    return data
