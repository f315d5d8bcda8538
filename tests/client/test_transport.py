"""The transport: timeouts, no redirects, exception translation, and bytes as they arrive."""

from __future__ import annotations

import gzip
import os
import threading
import time
import traceback
import zlib

import pytest
import requests
import responses
import urllib3

from rawchat.client.transport import Transport
from rawchat.errors import (
    APIConnectionError,
    APITimeoutError,
    ConfigError,
    InvalidRequestError,
    InvalidResponseError,
)
from rawchat.protocol.http import Headers, HTTPRequest
from rawchat.protocol.settings import Timeout

from ..raw_server import RawServer, _read_request

HEAD_CLOSE_DELIMITED = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
)
HEAD_CHUNKED = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
)


def get(url: str) -> HTTPRequest:
    return HTTPRequest("GET", url)


@responses.activate
def test_every_request_carries_connect_and_read_timeouts():
    seen = {}

    def callback(request):
        seen["timeout"] = request.req_kwargs["timeout"]
        return (200, {}, b"{}")

    responses.add_callback(responses.GET, "https://x/v1/models", callback=callback)
    Transport().send(get("https://x/v1/models"), Timeout(3, 40))
    assert seen["timeout"] == (3, 40)


POST = HTTPRequest(
    "POST",
    "http://x/v1/chat/completions",
    headers=Headers([("Authorization", "Bearer sk-test"), ("Content-Type", "application/json")]),
    body=b'{"model":"m"}',
)
AS_SENT = [
    ("User-Agent", f"python-requests/{requests.__version__}"),
    ("Accept-Encoding", requests.utils.DEFAULT_ACCEPT_ENCODING),
    ("Accept", "*/*"),
    ("Connection", "keep-alive"),
    ("Authorization", "Bearer sk-test"),
    ("Content-Type", "application/json"),
    ("Content-Length", "13"),
]


@responses.activate
@pytest.mark.parametrize(
    "session", [None, requests.Session], ids=["own session", "session passed in"]
)
def test_the_headers_sent_are_the_sessions_defaults_under_ours(session):
    seen = {}

    def callback(request):
        seen["headers"] = list(request.headers.items())
        return (200, {}, b"{}")

    responses.add_callback(responses.POST, "http://x/v1/chat/completions", callback=callback)
    Transport(session() if session else None).send(POST, Timeout())
    assert seen["headers"] == AS_SENT


@responses.activate
def test_cookies_params_and_hooks_set_on_the_clients_own_session_are_applied():
    seen = {}

    def callback(request):
        seen["headers"] = dict(request.headers)
        return (200, {}, b"{}")

    responses.add_callback(responses.GET, "http://api.example.com/v1/models", callback=callback)
    transport = Transport()
    transport.session.cookies.set("route", "b7", domain="api.example.com")
    transport.session.params = {"api-version": "2024-10-21"}

    def hook(response, **kwargs):
        seen["hooked"] = response.status_code

    transport.session.hooks["response"].append(hook)
    transport.send(get("http://api.example.com/v1/models"), Timeout())
    assert seen["headers"]["Cookie"] == "route=b7"
    assert seen["hooked"] == 200
    assert (
        responses.calls[0].request.url == "http://api.example.com/v1/models?api-version=2024-10-21"
    )


@pytest.mark.parametrize(
    "session", [None, requests.Session], ids=["own session", "session passed in"]
)
def test_a_netrc_entry_for_the_host_does_not_replace_the_bearer_key(tmp_path, monkeypatch, session):
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine 127.0.0.1 login someone password secret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"

    with RawServer(lambda conn, request: conn.sendall(answer)) as server:
        request = HTTPRequest(
            "GET", server.base_url + "/models", headers=Headers([("Authorization", "Bearer sk-x")])
        )
        Transport(session() if session else None).send(request, Timeout(2, 2))
    assert b"\r\nAuthorization: Bearer sk-x\r\n" in server.requests[0]


@pytest.mark.parametrize(
    "session", [None, requests.Session], ids=["own session", "session passed in"]
)
def test_a_space_in_the_path_is_sent_percent_encoded(session):
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
    with RawServer(lambda conn, request: conn.sendall(answer)) as server:
        url = server.base_url.replace("/v1", "/my deployment/v1") + "/models"
        Transport(session() if session else None).send(get(url), Timeout(2, 2))
    assert server.requests[0].startswith(b"GET /my%20deployment/v1/models HTTP/1.1\r\n")


@responses.activate
def test_a_host_in_unicode_is_sent_idna_encoded():
    responses.add(responses.GET, "http://xn--bcher-kva.example/v1/models", body=b"{}")
    assert Transport().send(get("http://bücher.example/v1/models"), Timeout()).body == b"{}"


@responses.activate
def test_redirects_are_not_followed():
    responses.add(
        responses.POST,
        "http://x/v1/chat/completions",
        status=301,
        headers={"Location": "https://x/v1/chat/completions"},
    )
    response = Transport().send(
        HTTPRequest("POST", "http://x/v1/chat/completions", body=b"{}"), Timeout()
    )
    assert response.status_code == 301
    assert response.headers["location"] == "https://x/v1/chat/completions"


@responses.activate
@pytest.mark.parametrize(
    "raised, error, message, sent",
    [
        (
            requests.exceptions.ConnectTimeout("t"),
            APITimeoutError,
            "connecting to x timed out after 10 s",
            False,
        ),
        (requests.exceptions.ReadTimeout("t"), APITimeoutError, "x sent nothing in 600 s", True),
        (requests.exceptions.SSLError("bad cert"), APIConnectionError, "TLS with x failed", False),
        (requests.exceptions.ProxyError("no"), APIConnectionError, "the proxy refused", False),
        (
            requests.exceptions.ConnectionError("refused"),
            APIConnectionError,
            "could not connect to x: refused",
            True,
        ),
        (requests.exceptions.ChunkedEncodingError("cut"), APIConnectionError, "broke off", True),
    ],
)
def test_requests_exceptions_become_rawchat_errors_chained(raised, error, message, sent):
    responses.add(responses.GET, "https://x/v1/models", body=raised)
    with pytest.raises(error, match=message) as caught:
        Transport().send(get("https://x/v1/models"), Timeout())
    assert caught.value.__cause__ is raised
    assert caught.value.request_sent is sent


def test_the_ssl_hint_points_at_the_ca_bundle_variable():
    with responses.RequestsMock() as mock:
        mock.add(
            responses.GET,
            "https://x/v1/models",
            body=requests.exceptions.SSLError("self-signed"),
        )
        with pytest.raises(APIConnectionError) as caught:
            Transport().send(get("https://x/v1/models"), Timeout())
    assert "REQUESTS_CA_BUNDLE" in caught.value.hint


def test_a_connection_refused_is_a_connection_error():
    with RawServer(lambda conn, req: None) as server:
        url = server.base_url
    with pytest.raises(APIConnectionError, match="could not connect to 127.0.0.1"):
        Transport().send(get(url + "/models"), Timeout(1, 1))


def test_a_server_that_never_answers_ends_at_the_read_timeout():
    release = threading.Event()
    # Held open far longer than the read timeout: only the timeout can end the wait.
    with RawServer(lambda conn, req: release.wait(10)) as server:
        with pytest.raises(APITimeoutError, match="sent nothing in 0.2 s"):
            Transport().send(get(server.base_url + "/models"), Timeout(1, 0.2))
        release.set()


def first_piece(head: bytes, frame: bytes) -> bytes:
    """What iter_bytes() yields first while the server holds the connection open.

    The server sends no more bytes and does not close until the piece has
    arrived; a transport waiting for EOF would end at the read timeout.
    """
    release = threading.Event()

    def script(conn, request):
        conn.sendall(head + frame)
        release.wait(60)  # longer than the read timeout

    with RawServer(script) as server:
        source = Transport().open(get(server.base_url + "/stream"), Timeout(2, 5))
        try:
            return next(iter(source.iter_bytes()))
        finally:
            release.set()
            source.close()


@pytest.mark.skipif(
    not hasattr(urllib3.HTTPResponse, "read1"),
    reason="urllib3 before 2.1 reads a close-delimited body 64 KiB at a time",
)
def test_a_close_delimited_body_is_handed_over_before_eof():
    # iter_content(chunk_size=None) would sit on this until the server closes.
    assert first_piece(HEAD_CLOSE_DELIMITED, b"data: first\n\n") == b"data: first\n\n"


def test_a_chunked_body_is_handed_over_before_eof():
    frame = b"data: first\n\n"
    assert first_piece(HEAD_CHUNKED, b"%x\r\n%s\r\n" % (len(frame), frame)) == frame


def test_a_connection_dropped_mid_body_raises_a_connection_error():
    def script(conn, request):
        conn.sendall(HEAD_CHUNKED + b"10\r\ndata: partial")  # chunk cut short, then EOF

    with RawServer(script) as server:
        source = Transport().open(get(server.base_url + "/stream"), Timeout(2, 2))
        with pytest.raises(APIConnectionError, match="broke off"):
            list(source.iter_bytes())


def keep_alive_server(bodies):
    """Answers one request per entry of ``bodies`` on a single kept-alive connection."""

    def script(conn, request):
        for index, body in enumerate(bodies):
            if index:
                _read_request(conn)
            conn.sendall(HEAD_CHUNKED + body)

    return RawServer(script)


def read_twice(server):
    transport = Transport()
    first = transport.open(get(server.base_url + "/a"), Timeout(2, 2))
    bodies = [b"".join(first.iter_bytes())]
    first.close()
    second = transport.open(get(server.base_url + "/b"), Timeout(2, 2))
    bodies.append(b"".join(second.iter_bytes()))
    second.close()
    return bodies


def test_a_chunked_body_read_to_its_end_frees_the_connection_for_the_next_request():
    body = b"5\r\nhello\r\n0\r\n\r\n"
    with keep_alive_server([body, body]) as server:
        assert read_twice(server) == [b"hello", b"hello"]
    assert len(server.requests) == 1  # one connection served both


def test_bytes_after_a_chunked_body_do_not_leak_into_the_next_response():
    body = b"5\r\nhello\r\n0\r\n\r\n"
    with keep_alive_server([body + b"junk", body]) as server:
        assert read_twice(server) == [b"hello", b"hello"]


@pytest.mark.parametrize("body", [b"5\r\nhel", b"zz\r\nhello\r\n"], ids=["cut short", "bad size"])
def test_a_broken_chunked_body_is_a_connection_error_naming_the_host(body):
    def script(conn, request):
        conn.sendall(HEAD_CHUNKED + body)

    with RawServer(script) as server:
        source = Transport().open(get(server.base_url + "/stream"), Timeout(2, 2))
        host = server.base_url.split("/")[2]
        with pytest.raises(
            APIConnectionError, match=f"the response from {host} broke off or was malformed: "
        ) as caught:
            list(source.iter_bytes())
    assert caught.value.__cause__ is not None


PACKED = gzip.compress(b"data: zipped\n\n")


@pytest.mark.parametrize(
    "framing, body",
    [
        ("Transfer-Encoding: chunked", b"%x\r\n%s\r\n0\r\n\r\n" % (len(PACKED), PACKED)),
        (f"Content-Length: {len(PACKED)}", PACKED),
        ("Connection: close", PACKED),
    ],
    ids=["chunked", "with a length", "close-delimited"],
)
def test_a_gzip_body_is_handed_over_decoded(framing, body):
    head = f"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n{framing}\r\n\r\n".encode()
    with RawServer(lambda conn, request: conn.sendall(head + body)) as server:
        response = Transport().send(get(server.base_url + "/stream"), Timeout(2, 2))
    assert response.body == b"data: zipped\n\n"


def test_a_redirect_keeps_its_body():
    # Session.send reads a redirect's body even when it does not follow it.
    answer = b"HTTP/1.1 301 Moved\r\nLocation: /v2\r\nContent-Length: 5\r\n\r\nmoved"
    with RawServer(lambda conn, request: conn.sendall(answer)) as server:
        response = Transport().send(get(server.base_url + "/models"), Timeout(2, 2))
    assert (response.status_code, response.body) == (301, b"moved")


PROXY_VARIABLES = ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"]


def test_a_proxy_set_in_the_environment_applies_from_the_next_request(monkeypatch):
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
    reply = lambda conn, request: conn.sendall(answer)  # noqa: E731
    with RawServer(reply) as server, RawServer(reply) as proxy:
        transport = Transport()
        url = server.base_url + "/models"
        transport.send(get(url), Timeout(2, 2))
        monkeypatch.setenv("http_proxy", proxy.base_url.replace("/v1", ""))
        transport.send(get(url), Timeout(2, 2))
    assert server.requests[0].startswith(b"GET /v1/models HTTP/1.1\r\n")
    assert proxy.requests[0].startswith(b"GET %s HTTP/1.1\r\n" % url.encode())


def test_an_unusable_url_is_a_config_error():
    with pytest.raises(ConfigError, match="cannot send to"):
        Transport().send(get("http://"), Timeout())


def test_a_session_passed_in_is_used_and_not_closed():
    session = requests.Session()
    transport = Transport(session)
    transport.close()
    assert transport.session is session
    assert session.adapters  # still usable


# -- whether the request can have reached the server ---------------------------------


def closed_port_url() -> str:
    with RawServer(lambda conn, request: None) as server:
        return server.base_url


def send_and_catch(url, timeout=None):
    with pytest.raises(APIConnectionError) as caught:
        Transport().send(get(url + "/models"), timeout or Timeout(1, 0.3))
    return caught.value


def test_a_refused_connection_was_never_sent():
    assert send_and_catch(closed_port_url()).request_sent is False


def test_a_name_that_does_not_resolve_was_never_sent():
    error = send_and_catch("http://no-such-host.invalid/v1")
    assert (str(error.message).startswith("could not connect"), error.request_sent) == (True, False)


def test_a_failed_tls_handshake_was_never_sent():
    # A plain-HTTP server: the client's TLS hello gets an HTTP answer.
    plain = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"
    with RawServer(lambda conn, request: conn.sendall(plain), read_request=False) as server:
        error = send_and_catch(server.base_url.replace("http://", "https://"))
    assert (error.message.startswith("TLS with 127.0.0.1"), error.request_sent) == (True, False)


def test_a_proxy_that_refuses_was_never_sent(monkeypatch):
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("http_proxy", closed_port_url().replace("/v1", ""))
    error = send_and_catch("http://api.example/v1")
    assert (error.message.startswith("the proxy refused"), error.request_sent) == (True, False)


def test_a_read_timeout_may_have_been_sent():
    release = threading.Event()
    with RawServer(lambda conn, request: release.wait(10)) as server:
        error = send_and_catch(server.base_url, Timeout(1, 0.2))
        release.set()
    assert (type(error), error.request_sent) == (APITimeoutError, True)


def test_a_connection_closed_after_the_request_may_have_been_sent():
    # The server read the whole request, then hung up without a word.
    with RawServer(lambda conn, request: None) as server:
        error = send_and_catch(server.base_url)
    assert (error.message.startswith("could not connect"), error.request_sent) == (True, True)


def test_a_body_that_breaks_off_may_have_been_sent():
    with RawServer(lambda conn, request: conn.sendall(HEAD_CHUNKED + b"10\r\nda")) as server:
        host = server.base_url.split("/")[2]
        error = send_and_catch(server.base_url)
    assert (error.message.split(": ")[0], error.request_sent) == (
        f"the response from {host} broke off or was malformed",
        True,
    )


# -- compressed bodies, inflated a bounded step at a time ------------------------------


def stacked_gzip(members: int, size: int) -> bytes:
    """``members`` gzip members of ``size`` zero bytes each, one after the other."""
    return gzip.compress(b"\0" * size) * members


def test_stacked_gzip_members_in_one_chunk_are_one_body():
    body = stacked_gzip(3, 100_000)
    head = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"
    frame = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    with RawServer(lambda conn, request: conn.sendall(head + frame)) as server:
        source = Transport().open(get(server.base_url + "/x"), Timeout(2, 2))
        sizes = [len(piece) for piece in source.iter_bytes()]
    assert (sum(sizes), max(sizes)) == (300_000, 65536)


@pytest.mark.parametrize("wbits", [zlib.MAX_WBITS, -zlib.MAX_WBITS], ids=["zlib", "bare"])
def test_a_deflate_body_is_inflated_with_or_without_its_zlib_wrapper(wbits):
    packer = zlib.compressobj(wbits=wbits)
    body = packer.compress(b"data: deflated\n\n") + packer.flush()
    head = b"HTTP/1.1 200 OK\r\nContent-Encoding: deflate\r\nContent-Length: %d\r\n\r\n"
    with RawServer(lambda conn, request: conn.sendall(head % len(body) + body)) as server:
        response = Transport().send(get(server.base_url + "/x"), Timeout(2, 2))
    assert response.body == b"data: deflated\n\n"


def test_a_gzip_body_inflating_past_the_limit_is_refused():
    body = stacked_gzip(1, 2_000_000)
    head = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n"
    with RawServer(lambda conn, request: conn.sendall(head % len(body) + body)) as server:
        source = Transport().open(get(server.base_url + "/x"), Timeout(2, 2))
        with pytest.raises(InvalidResponseError, match="passed 1000000 bytes"):
            source.read(max_bytes=1_000_000)


# -- interim responses ----------------------------------------------------------------


@pytest.mark.parametrize(
    "interim, message",
    [
        (
            b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n",
            "the server answered 103 Early Hints, an interim or upgrade response, "
            "not an API answer",
        ),
        (
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
            "the server answered 101 Switching Protocols, an interim or upgrade response, "
            "not an API answer",
        ),
    ],
    ids=["103", "101"],
)
def test_an_interim_response_is_refused_not_taken_for_the_answer(interim, message):
    final = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
    with RawServer(lambda conn, request: conn.sendall(interim + final)) as server:
        transport = Transport()
        with pytest.raises(APIConnectionError) as caught:
            transport.send(get(server.base_url + "/models"), Timeout(2, 2))
        # The answer that followed stays on the dropped connection, not in the next response.
        with pytest.raises(APIConnectionError):
            transport.send(get(server.base_url + "/models"), Timeout(2, 2))
    assert caught.value.message == message
    assert len(server.requests) == 2


# -- the call's deadline over the response head ---------------------------------------


def trickling_head(release):
    def script(conn, request):
        for byte in b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" * 100:
            if release.wait(0.1):
                return
            conn.sendall(bytes([byte]))

    return script


def test_a_head_trickled_a_byte_at_a_time_ends_at_the_deadline():
    release = threading.Event()
    with RawServer(trickling_head(release)) as server:
        host = server.base_url.split("/")[2]
        transport = Transport()
        started = time.monotonic()
        try:
            with pytest.raises(APITimeoutError) as caught:
                transport.open(get(server.base_url + "/x"), Timeout(2, 2), deadline=started + 1)
        finally:
            release.set()
        assert time.monotonic() - started < 10
    assert caught.value.message == (
        f"the call's deadline passed while the response head was arriving from {host}"
    )


def test_a_deadline_already_past_sends_nothing():
    with RawServer(lambda conn, request: None) as server:
        with pytest.raises(APITimeoutError) as caught:
            Transport().open(get(server.base_url + "/x"), Timeout(2, 2), deadline=0.0)
    assert (server.requests, caught.value.request_sent) == ([], False)


def test_a_head_in_before_the_deadline_is_answered_as_usual():
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
    with RawServer(lambda conn, request: conn.sendall(answer)) as server:
        transport = Transport()
        source = transport.open(
            get(server.base_url + "/x"), Timeout(2, 2), deadline=time.monotonic() + 30
        )
        assert (source.status_code, source.read()) == (200, b"{}")


# -- connections: closed with what they carry ------------------------------------------


def sockets_to(port: int) -> int:
    """This process's sockets connected to ``port``: the client ends of
    connections to a test server, whatever other tests left running."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if os.path.exists(table):
            with open(table) as lines:
                next(lines)  # the column names
                for line in lines:
                    fields = line.split()
                    if int(fields[2].rsplit(":", 1)[1], 16) == port:
                        inodes.add(f"socket:[{fields[9]}]")
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}") in inodes
        except OSError:  # closed since it was listed
            pass
    return count


needs_proc = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="Linux only")


def held_open(release):
    def script(conn, request):
        conn.sendall(HEAD_CHUNKED + b"5\r\nhello\r\n")
        release.wait(30)

    return script


@needs_proc
def test_a_stream_closed_before_its_end_closes_its_socket():
    release = threading.Event()
    with RawServer(held_open(release)) as server:
        transport = Transport()
        source = transport.open(get(server.base_url + "/x"), Timeout(2, 2))
        pieces = source.iter_bytes()  # held: a generator let go of closes on its own
        next(pieces)
        during = sockets_to(server.port)
        source.close()
        after = sockets_to(server.port)
        release.set()
    assert during - after == 1


@needs_proc
def test_closing_the_transport_closes_the_sockets_of_streams_left_open():
    release = threading.Event()
    with RawServer(held_open(release)) as server:
        transport = Transport()
        sources = [transport.open(get(server.base_url + "/x"), Timeout(2, 2)) for _ in range(3)]
        during = sockets_to(server.port)
        transport.close()
        after = sockets_to(server.port)
        release.set()
    assert (during - after, len(sources)) == (3, 3)


@needs_proc
def test_threads_beyond_the_pool_leave_no_socket_open_after_close():
    release = threading.Event()

    def script(conn, request):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
        release.wait(5)

    with RawServer(script) as server:
        transport = Transport(pool_maxsize=2)
        barrier = threading.Barrier(6)

        def one():
            source = transport.open(get(server.base_url + "/x"), Timeout(2, 2))
            barrier.wait(5)
            source.read()

        threads = [threading.Thread(target=one) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        transport.close()
        client_side = sockets_to(server.port)
        release.set()
    assert client_side == 0


# -- secrets ---------------------------------------------------------------------------

KEY = "sk-canary-SECRETVALUE-0123456789-9z8y"


@pytest.mark.parametrize("value", [f"Bearer {KEY}\n", f"Bearer {KEY}\u200b"], ids=["LF", "ZWSP"])
def test_a_header_http_cannot_carry_is_refused_without_quoting_it(value):
    request = HTTPRequest("GET", "http://127.0.0.1:9/v1/models", headers=[("Authorization", value)])
    with pytest.raises(InvalidRequestError) as caught:
        Transport().send(request, Timeout(1, 1))
    error = caught.value
    assert error.message.startswith("a request header holds a character HTTP/1.1 cannot carry")
    printed = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    assert (error.__cause__, error.__suppress_context__) == (None, True)
    assert KEY[:-4] not in printed


def test_credentials_in_the_url_stay_out_of_errors():
    url = closed_port_url().replace("http://", "http://user:hunter2-secret@")
    error = send_and_catch(url)
    host = url.split("@")[1].split("/")[0]
    assert (error.message.split(": ")[0], "hunter2" in str(error)) == (
        f"could not connect to {host}",
        False,
    )


def test_credentials_in_the_url_stay_out_of_body_errors():
    body = gzip.compress(b"\0" * 2_000_000)
    head = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n"
    with RawServer(lambda conn, request: conn.sendall(head % len(body) + body)) as server:
        url = server.base_url.replace("http://", "http://user:hunter2-secret@")
        source = Transport().open(get(url + "/x"), Timeout(2, 2))
        with pytest.raises(InvalidResponseError) as caught:
            source.read(max_bytes=1000)
    assert str(caught.value.message) == (
        f"the response body from http://***@{url.split('@')[1]}/x passed 1000 bytes"
    )


# -- an answer known to be complete: its connection back to the pool --------------------


def chat_stream_request(base_url: str) -> HTTPRequest:
    return HTTPRequest(
        "POST",
        base_url + "/chat/completions",
        headers={"Authorization": "Bearer sk-test", "Content-Type": "application/json"},
        body=b'{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}',
        stream=True,
    )


def read_until_done(source):
    """Reads up to ``[DONE]``; returns the body's iterator, still open, as a stream holds it."""
    pieces = source.iter_bytes()
    for piece in pieces:
        if b"data: [DONE]" in piece:
            return pieces
    raise AssertionError("no [DONE]")


def test_finishing_a_complete_answer_hands_its_connection_back_to_the_pool(sim):
    transport = Transport()
    for _ in range(3):
        source = transport.open(chat_stream_request(sim.base_url), Timeout(2, 2))
        pieces = read_until_done(source)
        source.finish()
        pieces.close()
    pools = transport.session.get_adapter(sim.base_url).poolmanager.pools
    # urllib3's pool container refuses plain iteration; keys() is its public list.
    assert [pools[key].num_connections for key in pools.keys()] == [1]  # noqa: SIM118
    transport.close()


@needs_proc
def test_finishing_an_answer_whose_server_holds_the_connection_open_closes_it():
    release = threading.Event()

    def script(conn, request):
        conn.sendall(HEAD_CHUNKED + b"e\r\ndata: [DONE]\n\n\r\n")
        release.wait(30)  # the body's last chunk never comes

    with RawServer(script) as server:
        source = Transport().open(get(server.base_url + "/x"), Timeout(2, 30))
        pieces = read_until_done(source)
        during = sockets_to(server.port)
        started = time.monotonic()
        source.finish(grace=0.1)
        waited = time.monotonic() - started
        after = sockets_to(server.port)
        pieces.close()
        release.set()
    assert during - after == 1
    assert waited < 10  # the grace, not the 30 s read timeout
