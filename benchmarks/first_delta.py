"""Time to first delta: from the server's flush of the first chunk to the reader.

A loopback server sends the response headers and one SSE chunk, notes the
moment it flushed, then pauses before the rest. Two readers race it:

* the raw-socket floor: ``socket.recv`` until the first event's blank line;
* rawchat: ``Client.stream(...).text()`` yielding its first string.

Both bodies that matter are tried: chunked transfer encoding, and a
close-delimited body (no length, no chunking), where requests-based
readers that use ``iter_content`` sit on the first delta for the whole
pause. Prints medians and 90th percentiles in milliseconds.

    python benchmarks/first_delta.py [--runs 30] [--pause 0.2]
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import threading
import time
from typing import Callable, Dict, List

import rawchat

FIRST = b'data: {"choices":[{"index":0,"delta":{"content":"first"},"finish_reason":null}]}\n\n'
REST = (
    b'data: {"choices":[{"index":0,"delta":{"content":" rest"},"finish_reason":"stop"}]}\n\n'
    b"data: [DONE]\n\n"
)


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


BODIES = {
    "chunked": (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n",
        chunk(FIRST),
        chunk(REST) + b"0\r\n\r\n",
    ),
    "close-delimited": (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n",
        FIRST,
        REST,
    ),
}


class Server:
    """One response per connection: headers + first chunk, pause, the rest."""

    def __init__(self, kind: str, pause: float) -> None:
        self.head, self.first, self.rest = BODIES[kind]
        self.pause = pause
        self.flushed: List[float] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        threading.Thread(target=self.serve, daemon=True).start()

    @property
    def port(self) -> int:
        return self.sock.getsockname()[1]

    def serve(self) -> None:
        while True:
            conn, _ = self.sock.accept()
            with conn:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                request = b""
                while b"\r\n\r\n" not in request:
                    request += conn.recv(65536)
                head, _, body = request.partition(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length")
                    ),
                    0,
                )
                while len(body) < length:
                    body += conn.recv(65536)
                conn.sendall(self.head + self.first)
                self.flushed.append(time.perf_counter())
                time.sleep(self.pause)
                conn.sendall(self.rest)


def raw_socket(port: int) -> float:
    body = json.dumps(
        {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    ).encode()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
            % (len(body), body)
        )
        data = b""
        while b"\n\n" not in data.partition(b"\r\n\r\n")[2]:
            data += sock.recv(65536)
        seen = time.perf_counter()
        while sock.recv(65536):
            pass
    return seen


def rawchat_stream(port: int) -> float:
    client = rawchat.Client("sk-bench-000000000000", f"http://127.0.0.1:{port}/v1", max_retries=0)
    with client.stream([{"role": "user", "content": "hi"}], model="m") as stream:
        texts = stream.text()
        assert next(texts) == "first"
        seen = time.perf_counter()
        assert "".join(texts) == " rest"
    client.close()
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--pause", type=float, default=0.2)
    args = parser.parse_args()
    readers: Dict[str, Callable[[int], float]] = {
        "raw socket (floor)": raw_socket,
        "rawchat": rawchat_stream,
    }
    print(
        f"{args.runs} runs each, server pause {args.pause * 1000:.0f} ms; "
        f"Python {sys.version.split()[0]}"
    )
    print(f"{'body':<17}{'reader':<21}{'median ms':>10}{'p90 ms':>9}")
    for kind in BODIES:
        for name, reader in readers.items():
            server = Server(kind, args.pause)
            delays = []
            for _ in range(args.runs):
                seen = reader(server.port)
                delays.append((seen - server.flushed[-1]) * 1000)
            delays.sort()
            p90 = delays[int(len(delays) * 0.9) - 1]
            print(f"{kind:<17}{name:<21}{statistics.median(delays):10.3f}{p90:9.3f}")


if __name__ == "__main__":
    main()
