"""The asyncio transport: pool, timeouts, deadline, TLS, proxies, inflation, cancellation."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import threading
import time
import zlib
from typing import Any, List

import pytest
import trustme

from rawchat.client.aio_transport import AsyncTransport, ca_bundle, proxy_for
from rawchat.client.trace import Trace
from rawchat.errors import APIConnectionError, APITimeoutError, ConfigError, InvalidResponseError
from rawchat.protocol.http import Headers, HTTPRequest
from rawchat.protocol.settings import Timeout
from rawchat.simulator import Simulator

from ..conftest import KEY
from ..proxy_server import ProxyServer
from ..raw_server import RawServer
from ..tls_server import TLSServer

QUICK = Timeout(2, 2)
AUTH = Headers({"Authorization": f"Bearer {KEY}"})


@pytest.fixture(autouse=True)
def _no_proxy_or_ca_from_the_machine(monkeypatch):
    for name in (
        "HTTPS_PROXY",
        "HTTP_PROXY",
        "ALL_PROXY",
        "NO_PROXY",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
    ):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def get(url: str) -> HTTPRequest:
    return HTTPRequest("GET", url, AUTH)


async def send(url: str, **options: Any) -> Any:
    async with AsyncTransport(**options) as transport:
        return await transport.send(get(url), QUICK)


def answer(*parts: bytes, pause: float = 0.0):
    """A RawServer script writing ``parts`` in order, ``pause`` seconds apart."""

    def script(conn: socket.socket, request: bytes) -> None:
        for part in parts:
            conn.sendall(part)
            time.sleep(pause)

    return script


def hold_open(conn: socket.socket, request: bytes) -> None:
    conn.recv(1)  # until the client hangs up


# ---------------------------------------------------------------- the simulator


def test_a_json_answer_from_the_simulator(sim):
    response = run(send(sim.base_url + "/models"))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert "gpt-4o-mini" in [m["id"] for m in response.json()["data"]]


def test_a_streamed_chat_arrives_a_read_at_a_time_and_ends_with_done():
    # Chunks 20 ms apart arrive in separate reads; each read is one piece.
    body = json.dumps(
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    ).encode()

    async def main(base_url):
        request = HTTPRequest(
            "POST",
            base_url + "/chat/completions",
            Headers({**AUTH, "Content-Type": "application/json"}),
            body,
        )
        async with AsyncTransport() as transport:
            response = await transport.open(request, QUICK)
            assert response.headers["transfer-encoding"] == "chunked"
            pieces = [piece async for piece in response.iter_bytes()]
            return pieces, transport.idle_connections

    with Simulator(chunk_interval=0.02) as sim:
        pieces, idle = run(main(sim.base_url))
    assert len(pieces) > 2  # as they came, not one lump
    assert b"".join(pieces).endswith(b"data: [DONE]\n\n")
    assert idle == 1


def test_sequential_requests_share_one_kept_alive_connection(tmp_path):
    with TLSServer(tmp_path, tls=False) as server:

        async def main():
            async with AsyncTransport() as transport:
                for _ in range(3):
                    response = await transport.send(get(server.base_url + "/models"), QUICK)
                    assert response.json()["path"] == "/v1/models"
                return transport.open_connections

        assert run(main()) == 1
        assert server.connections == 1


def test_a_request_saying_connection_close_is_not_pooled(tmp_path):
    with TLSServer(tmp_path, tls=False) as server:
        request = HTTPRequest("GET", server.base_url, Headers({"Connection": "close"}))

        async def main():
            async with AsyncTransport() as transport:
                await transport.send(request, QUICK)
                return transport.open_connections

        assert run(main()) == 0


# ---------------------------------------------------------------- the pool


def test_the_pool_holds_at_most_pool_maxsize_connections_and_the_rest_wait():
    lock, state = threading.Lock(), {"now": 0, "most": 0}

    def script(conn, request):
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        time.sleep(0.05)
        with lock:
            state["now"] -= 1
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")

    with RawServer(script) as server:

        async def main():
            async with AsyncTransport(pool_maxsize=2) as transport:
                answers = await asyncio.gather(
                    *(transport.send(get(server.base_url), QUICK) for _ in range(6))
                )
                return [a.body for a in answers], transport.open_connections

        bodies, still_open = run(main())
    assert bodies == [b"ok"] * 6
    assert state["most"] == 2
    assert still_open == 0


def test_a_waiter_cancelled_in_the_queue_takes_no_slot_with_it(tmp_path):
    with TLSServer(tmp_path, tls=False) as server:

        async def main():
            async with AsyncTransport(pool_maxsize=1) as transport:
                first = await transport.open(get(server.base_url), QUICK)
                queued = asyncio.ensure_future(transport.send(get(server.base_url), QUICK))
                await asyncio.sleep(0.05)
                queued.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await queued
                await first.read()
                again = await transport.send(get(server.base_url), QUICK)
                return again.status_code, transport.open_connections

        assert run(main()) == (200, 1)
        assert server.connections == 1


def test_the_pool_deadline_bounds_the_wait_for_a_connection(tmp_path):
    with TLSServer(tmp_path, tls=False) as server:

        async def main():
            async with AsyncTransport(pool_maxsize=1) as transport:
                first = await transport.open(get(server.base_url), QUICK)
                loop = asyncio.get_running_loop()
                with pytest.raises(APITimeoutError) as caught:
                    await transport.send(get(server.base_url), QUICK, loop.time() + 0.1)
                await first.aclose()
                return caught.value

        error = run(main())
    assert "the deadline passed while waiting for a free connection" in error.message
    assert error.request_sent is False


# ---------------------------------------------------------------- hostile servers


def test_a_chunk_size_with_a_sign_is_a_malformed_response():
    script = answer(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n+5\r\nhello\r\n0\r\n\r\n"
    )
    with RawServer(script) as server:
        host = server.base_url.split("/")[2]
        with pytest.raises(APIConnectionError) as caught:
            run(send(server.base_url))
    assert caught.value.message == (
        f"the response from {host} broke off or was malformed: chunk size is not hex digits: b'+5'"
    )
    assert caught.value.request_sent is True


def test_a_server_closing_without_a_response_is_a_connection_error():
    with RawServer(lambda conn, request: None) as server:
        with pytest.raises(APIConnectionError, match="without sending a response"):
            run(send(server.base_url))


def test_101_switching_protocols_is_a_connection_error():
    with RawServer(answer(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n")) as server:
        with pytest.raises(APIConnectionError, match="101 Switching Protocols"):
            run(send(server.base_url))


def test_a_body_cut_short_is_a_connection_error():
    with RawServer(answer(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")) as server:
        with pytest.raises(APIConnectionError, match="7 bytes of the body still to come"):
            run(send(server.base_url))


def test_a_server_that_sends_nothing_is_a_read_timeout():
    with RawServer(hold_open) as server:

        async def main():
            async with AsyncTransport() as transport:
                with pytest.raises(APITimeoutError) as caught:
                    await transport.send(get(server.base_url), Timeout(2, 0.2))
                return caught.value, transport.open_connections

        error, still_open = run(main())
    assert error.message.endswith("sent nothing in 0.2 s (read timeout)")
    assert error.request_sent is True
    assert still_open == 0


def test_the_deadline_bounds_a_head_that_trickles_in():
    head = b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 200
    with RawServer(answer(*[head[i : i + 1] for i in range(len(head))], pause=0.02)) as server:

        async def main():
            async with AsyncTransport() as transport:
                started = asyncio.get_running_loop().time()
                with pytest.raises(APITimeoutError) as caught:
                    await transport.send(get(server.base_url), Timeout(2, 2), started + 0.3)
                return caught.value, asyncio.get_running_loop().time() - started

        error, took = run(main())
    assert "the deadline passed while waiting for the response head" in error.message
    assert took < 2  # the read timeout never fired: the deadline did


def test_the_deadline_bounds_a_body_that_trickles_in():
    script = answer(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", *[b"x"] * 200, pause=0.02)
    with RawServer(script) as server:

        async def main():
            async with AsyncTransport() as transport:
                deadline = asyncio.get_running_loop().time() + 0.3
                with pytest.raises(APITimeoutError) as caught:
                    await transport.send(get(server.base_url), Timeout(2, 2), deadline)
                return caught.value

        error = run(main())
        url = server.base_url
    assert error.message == f"the response from {url} was still arriving at the deadline"


def test_a_close_delimited_body_is_handed_over_as_it_arrives():
    first_seen = threading.Event()

    def script(conn, request):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: 1\n\n")
        first_seen.wait(5)
        conn.sendall(b"data: 2\n\n")

    with RawServer(script) as server:

        async def main():
            async with AsyncTransport() as transport:
                response = await transport.open(get(server.base_url), QUICK)
                pieces = []
                async for piece in response.iter_bytes():
                    pieces.append(piece)
                    first_seen.set()
                return pieces, transport.open_connections

        pieces, still_open = run(main())
    assert pieces == [b"data: 1\n\n", b"data: 2\n\n"]
    assert still_open == 0  # a close-delimited body leaves nothing to reuse


def test_the_request_goes_out_byte_for_byte():
    with RawServer(answer(b"HTTP/1.1 204 No Content\r\n\r\n")) as server:
        request = HTTPRequest("POST", server.base_url + "/chat/completions", AUTH, b'{"a":1}')

        async def main():
            async with AsyncTransport() as transport:
                return await transport.send(request, QUICK)

        assert run(main()).status_code == 204
        host = server.base_url.split("/")[2]
    assert server.requests == [
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {KEY}\r\nAccept-Encoding: gzip, deflate\r\n"
        'Content-Length: 7\r\n\r\n{"a":1}'.encode()
    ]


# ---------------------------------------------------------------- content coding


@pytest.mark.parametrize(
    "coding, encode",
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda data: zlib.compress(data)[2:-4]),  # raw deflate, as some servers send
    ],
)
def test_gzip_and_deflate_bodies_are_inflated(coding, encode):
    body = json.dumps({"text": "你好" * 1000}).encode()
    packed = encode(body)
    head = f"HTTP/1.1 200 OK\r\nContent-Encoding: {coding}\r\nContent-Length: {len(packed)}\r\n\r\n"
    with RawServer(answer(head.encode(), packed)) as server:
        assert run(send(server.base_url)).body == body


def test_a_request_asking_for_identity_gets_the_bytes_as_sent():
    packed = gzip.compress(b"{}")
    head = f"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {len(packed)}\r\n\r\n"
    with RawServer(answer(head.encode(), packed)) as server:
        request = HTTPRequest("GET", server.base_url, Headers({"Accept-Encoding": "identity"}))

        async def main():
            async with AsyncTransport() as transport:
                return await transport.send(request, QUICK)

        assert run(main()).body == packed


def test_a_gzip_bomb_is_stopped_at_the_body_limit():
    packed = gzip.compress(b"\0" * (65 * 1024 * 1024), 9)
    head = f"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {len(packed)}\r\n\r\n"
    with RawServer(answer(head.encode(), packed)) as server:
        with pytest.raises(
            InvalidResponseError, match="inflated response body .* passed 67108864 bytes"
        ):
            run(send(server.base_url))


def test_a_corrupt_gzip_body_is_a_malformed_response():
    head = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 9\r\n\r\n"
    with RawServer(answer(head, b"not gzip!")) as server:
        with pytest.raises(APIConnectionError, match="broke off or was malformed"):
            run(send(server.base_url))


# ---------------------------------------------------------------- cancellation


def test_a_cancelled_read_closes_the_connection_and_never_pools_it():
    hung_up = threading.Event()

    def script(conn, request):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nfirst")
        if conn.recv(1) == b"":
            hung_up.set()

    with RawServer(script) as server:

        async def main():
            async with AsyncTransport() as transport:
                response = await transport.open(get(server.base_url), QUICK)
                reading = asyncio.ensure_future(response.read())
                await asyncio.sleep(0.05)
                reading.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await reading
                return transport.open_connections, transport.idle_connections

        assert run(main()) == (0, 0)
        assert hung_up.wait(5)


def test_a_cancelled_wait_for_the_head_closes_the_connection():
    with RawServer(hold_open) as server:

        async def main():
            async with AsyncTransport() as transport:
                task = asyncio.ensure_future(transport.send(get(server.base_url), QUICK))
                await asyncio.sleep(0.05)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                return transport.open_connections

        assert run(main()) == 0


def test_a_response_closed_before_its_end_is_not_pooled(sim):
    async def main():
        async with AsyncTransport() as transport:
            response = await transport.open(get(sim.base_url + "/models"), QUICK)
            await response.aclose()
            return transport.open_connections

    assert run(main()) == 0


# ---------------------------------------------------------------- connecting


def test_a_refused_connection_was_never_sent():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(APIConnectionError) as caught:
        run(send(f"http://127.0.0.1:{port}/v1"))
    assert caught.value.message.startswith(f"could not connect to 127.0.0.1:{port}: ")
    assert caught.value.request_sent is False


@pytest.mark.parametrize("url", ["ftp://h/x", "http:///x", "http://h:port/x"])
def test_a_url_the_transport_cannot_send_to_is_a_config_error(url):
    with pytest.raises(ConfigError):
        run(send(url))


# ---------------------------------------------------------------- TLS


def test_tls_trusts_requests_ca_bundle(tmp_path, monkeypatch):
    with TLSServer(tmp_path) as server:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", server.ca_file)
        assert run(send(server.base_url + "/models")).json()["path"] == "/v1/models"


def test_tls_trusts_curl_ca_bundle_when_requests_ca_bundle_is_unset(tmp_path, monkeypatch):
    with TLSServer(tmp_path) as server:
        monkeypatch.setenv("CURL_CA_BUNDLE", server.ca_file)
        assert ca_bundle() == server.ca_file
        assert run(send(server.base_url)).status_code == 200


def test_an_untrusted_certificate_is_a_connection_error_before_sending(tmp_path):
    with TLSServer(tmp_path) as server:  # certifi's bundle does not know this CA
        with pytest.raises(APIConnectionError) as caught:
            run(send(server.base_url))
    assert caught.value.message.startswith(f"TLS with 127.0.0.1:{server.port} failed: ")
    assert "CERTIFICATE_VERIFY_FAILED" in caught.value.message
    assert "REQUESTS_CA_BUNDLE" in caught.value.hint
    assert caught.value.request_sent is False


def test_verify_takes_a_bundle_path_or_false(tmp_path):
    with TLSServer(tmp_path) as server:
        assert run(send(server.base_url, verify=server.ca_file)).status_code == 200
        assert run(send(server.base_url, verify=False)).status_code == 200
        other = tmp_path / "other.pem"
        trustme.CA().cert_pem.write_to_path(str(other))
        with pytest.raises(APIConnectionError, match="TLS with"):
            run(send(server.base_url, verify=str(other)))


def test_a_missing_ca_bundle_is_a_config_error(tmp_path, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "missing.pem"))
    with pytest.raises(ConfigError, match="missing.pem"):
        run(send("https://127.0.0.1:1/v1"))


# ---------------------------------------------------------------- proxies


def test_https_goes_through_the_environment_proxy_in_a_connect_tunnel(tmp_path, monkeypatch):
    with TLSServer(tmp_path) as server, ProxyServer() as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", server.ca_file)
        assert proxy_for(server.base_url) == proxy.url
        assert run(send(server.base_url + "/models")).json()["path"] == "/v1/models"
    assert proxy.seen == [f"CONNECT 127.0.0.1:{server.port} HTTP/1.1"]


def test_http_goes_to_the_proxy_in_absolute_form(tmp_path, monkeypatch):
    with TLSServer(tmp_path, tls=False) as server, ProxyServer() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        assert run(send(server.base_url + "/models?x=1")).json()["path"] == "/v1/models?x=1"
    assert proxy.seen == [f"GET http://127.0.0.1:{server.port}/v1/models?x=1 HTTP/1.1"]


def test_no_proxy_skips_the_proxy(tmp_path, monkeypatch):
    with TLSServer(tmp_path, tls=False) as server, ProxyServer() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
        assert proxy_for(server.base_url) is None
        assert run(send(server.base_url)).status_code == 200
    assert proxy.seen == []


def test_a_proxy_login_in_the_url_is_sent_to_the_proxy(tmp_path, monkeypatch):
    with TLSServer(tmp_path) as server, ProxyServer(login="user:p@ss") as proxy:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", server.ca_file)
        with_login = proxy.url.replace("http://", "http://user:p%40ss@")
        assert run(send(server.base_url, proxy=with_login)).status_code == 200


def test_a_proxy_refusing_the_tunnel_is_a_proxy_error_before_sending(tmp_path):
    with TLSServer(tmp_path) as server, ProxyServer(login="user:pass") as proxy:
        with pytest.raises(APIConnectionError) as caught:
            run(send(server.base_url, proxy=proxy.url))
    assert caught.value.message == (
        f"the proxy refused or failed the connection to 127.0.0.1:{server.port}: "
        f"CONNECT 127.0.0.1:{server.port} answered 407 Proxy Authentication Required"
    )
    assert "HTTPS_PROXY" in caught.value.hint
    assert caught.value.request_sent is False


def test_a_proxy_that_never_answers_connect_is_a_connect_timeout(tmp_path):
    with ProxyServer(silent=True) as proxy:

        async def main():
            async with AsyncTransport(proxy=proxy.url) as transport:
                await transport.send(get("https://127.0.0.1:9/v1"), Timeout(0.2, 2))

        with pytest.raises(APITimeoutError) as caught:
            run(main())
    assert caught.value.message == "connecting to 127.0.0.1:9 timed out after 0.2 s"
    assert caught.value.request_sent is False


# ---------------------------------------------------------------- trace


class Recorder(Trace):
    def __init__(self) -> None:
        super().__init__()
        self.events: List[Any] = []

    def on_request(self, exchange):
        self.events.append(("request", exchange.headers))

    def on_response(self, exchange):
        self.events.append(("response", exchange.status))

    def on_body(self, exchange, at, piece):
        self.events.append(("body", piece))

    def on_end(self, exchange, at, error, note):
        self.events.append(("end", error, note))


def test_a_trace_sees_the_headers_as_sent_the_status_and_each_piece(tmp_path):
    with TLSServer(tmp_path, tls=False) as server:
        recorder = Recorder()

        async def main():
            async with AsyncTransport(trace=recorder) as transport:
                return await transport.send(get(server.base_url), QUICK)

        body = run(main()).body
    assert recorder.events == [
        (
            "request",
            (
                ("Host", f"127.0.0.1:{server.port}"),
                ("Authorization", "Bearer ...cdef"),
                ("Accept-Encoding", "gzip, deflate"),
            ),
        ),
        ("response", 200),
        ("body", body),
        ("end", None, ""),
    ]
