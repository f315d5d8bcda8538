"""A loopback HTTP/1.1 server with keep-alive, over TLS with its own CA or plain.

It answers every request with ``200`` and a small JSON body naming the
method and path, and counts the connections it accepted, so a test can tell
a reused connection from a new one.
"""

from __future__ import annotations

import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional, Tuple

import trustme


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    server: _Server

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        payload = json.dumps(
            {"method": self.command, "path": self.path, "body": body.decode("utf-8", "replace")}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    connections = 0

    def get_request(self) -> Tuple[Any, Any]:
        request = super().get_request()  # for TLS, the handshake happens here
        self.connections += 1
        return request


class TLSServer:
    """Serves on 127.0.0.1; ``tls=False`` for plain HTTP.

    ``ca`` is the certificate authority that signed the server's certificate;
    ``ca_file`` is its certificate as a PEM file a client can be told to trust.
    """

    def __init__(self, tmp_path: Any, *, tls: bool = True, ca: Optional[trustme.CA] = None) -> None:
        self.tls = tls
        self.ca = ca or trustme.CA()
        self.ca_file = str(tmp_path / "ca.pem")
        self.ca.cert_pem.write_to_path(self.ca_file)
        self._server = _Server(("127.0.0.1", 0), _Handler)
        if tls:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}/v1"

    @property
    def connections(self) -> int:
        """Connections accepted so far (TLS: with a completed handshake)."""
        return self._server.connections

    def __enter__(self) -> TLSServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
