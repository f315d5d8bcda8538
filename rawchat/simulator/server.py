"""Putting the simulator on a socket: a small threaded HTTP/1.1 server.

Keep-alive, ``Content-Length`` for whole bodies, and chunked transfer
encoding (RFC 9112 section 7.1, https://www.rfc-editor.org/rfc/rfc9112#section-7.1)
for streams, each SSE event flushed as its own HTTP chunk the moment it is
ready, as real providers do.
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Sequence, Set, Tuple

from ..protocol.http import Headers
from .app import SimRequest, SimulatorApp
from .faults import Drop, Pause, Step

__all__ = ["SimulatorServer"]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, and chunked encoding
    # Writes wait in a buffer until flushed: a stream's head then leaves in
    # one send with its first chunk, as a server that answers at once does,
    # instead of in a packet of its own.
    wbufsize = 64 * 1024
    server: SimulatorServer

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = SimRequest(self.command, self.path, Headers(self.headers.items()), body)
        response = self.server.app.handle(request)
        if response.delay:
            time.sleep(response.delay)
        if response.drop:  # no status line at all: the client sees a closed socket
            self.close_connection = True
            return
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        if not response.streaming:
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            self.wfile.write(response.body)
            self.wfile.flush()
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            self._write_steps(response.steps)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away mid-stream

    def _write_steps(self, steps: Sequence[Step]) -> None:
        for step in steps:
            if isinstance(step, Pause):
                self.wfile.flush()  # what came before the pause is on its way
                time.sleep(step.seconds)
            elif isinstance(step, Drop):
                # Announce a chunk larger than what follows, then hang up.
                size = len(step.partial) * 2 + 16
                self.wfile.write(b"%x\r\n%s" % (size, step.partial) if step.partial else b"")
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            else:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(step), step))
                self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def log_message(self, format: str, *args: object) -> None:
        if self.server.verbose:
            super().log_message(format, *args)


class SimulatorServer(ThreadingHTTPServer):
    """A ``ThreadingHTTPServer`` serving a ``SimulatorApp``."""

    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default backlog of 5 drops the SYNs of a burst of new
    # connections (16 threads starting at once), which the client resends a
    # second later: a stall that is the simulator's, not the client's.
    request_queue_size = 128

    def __init__(
        self, app: SimulatorApp, address: Tuple[str, int], *, verbose: bool = False
    ) -> None:
        self.app = app
        self.verbose = verbose
        self._open: Set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, _Handler)

    def get_request(self) -> Tuple[socket.socket, Any]:
        connection, address = super().get_request()
        with self._open_lock:
            self._open.add(connection)
        return connection, address

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client hanging up (after a timeout, or a dropped stream) is part
        # of the game here, not a server fault worth a traceback.
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError)):
            return
        if self.verbose:
            super().handle_error(request, client_address)

    def close_connections(self) -> None:
        """Hang up on every client: a stopped server must not keep answering
        on kept-alive connections from its handler threads."""
        with self._open_lock:
            connections, self._open = list(self._open), set()
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def server_bind(self) -> None:
        # Nagle's algorithm would hold small SSE chunks back for up to 40 ms.
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().server_bind()
