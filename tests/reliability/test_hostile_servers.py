"""Servers that misbehave below HTTP frameworks: every one ends in a typed error, in time."""

from __future__ import annotations

import gzip
import json
import threading
import time
import tracemalloc
import zlib

import pytest
import urllib3

import rawchat
import rawchat.protocol.http
import rawchat.protocol.settings
from rawchat.errors import (
    APIConnectionError,
    APITimeoutError,
    InvalidResponseError,
    StreamError,
)

from ..raw_server import RawServer

HI = [{"role": "user", "content": "hi"}]
KEY = "sk-hostile-000000000000"


def client_for(server, **kwargs):
    options = dict(timeout=(1, 0.3), max_retries=0)
    options.update(kwargs)
    return rawchat.Client(KEY, server.base_url, **options)


def within(seconds, function):
    """Run ``function``, which should end after about ``seconds`` (a deadline or a timeout).

    A liveness check, not a measurement: 5 s of slack keeps it true on a busy
    machine, and each server below misbehaves for far longer than that.
    """
    started = time.monotonic()
    try:
        function()
    finally:
        assert time.monotonic() - started < seconds + 5


#: urllib3 before 2.1 hands a close-delimited body over 64 KiB at a time (see transport.py).
close_delimited_in_pieces = pytest.mark.skipif(
    not hasattr(urllib3.HTTPResponse, "read1"),
    reason="urllib3 before 2.1 reads a close-delimited body 64 KiB at a time",
)


@close_delimited_in_pieces
def test_a_body_with_no_length_that_never_ends_stops_at_the_deadline():
    def script(conn, request):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{")
        for _ in range(600):  # a byte every 0.1 s: never silent long enough for the read timeout
            time.sleep(0.1)
            conn.sendall(b" ")

    with RawServer(script) as server:
        with pytest.raises(APITimeoutError, match="still arriving at the deadline"):
            within(1.0, lambda: client_for(server, deadline=1.0).chat(HI, model="m"))


def test_a_bad_chunk_size_is_a_connection_error():
    def script(conn, request):
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\ndata: x\r\n"
        )

    with RawServer(script) as server:
        with pytest.raises(APIConnectionError):
            within(0.3, lambda: client_for(server).stream(HI, model="m").completion)


def test_a_header_block_that_never_finishes_ends_at_the_read_timeout():
    release = threading.Event()

    def script(conn, request):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
        release.wait(60)

    with RawServer(script) as server:
        with pytest.raises(APITimeoutError):
            within(0.3, lambda: client_for(server).chat(HI, model="m"))
        release.set()


def test_an_html_200_on_a_stream_is_a_typed_error():
    page = b"<html><title>Proxy</title></html>"

    def script(conn, request):
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n%s"
            % (len(page), page)
        )

    with RawServer(script) as server:
        with pytest.raises(InvalidResponseError, match="expected an event stream"):
            client_for(server).stream(HI, model="m").completion


def test_a_gzip_body_that_is_not_gzip_is_a_connection_error():
    def script(conn, request):
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: 12\r\n\r\nnot gzip!!!!"
        )

    with RawServer(script) as server:
        with pytest.raises(APIConnectionError, match="malformed"):
            client_for(server).chat(HI, model="m")


def test_a_real_gzip_body_is_decoded():
    body = gzip.compress(
        json.dumps(
            {"choices": [{"message": {"content": "zipped"}, "finish_reason": "stop"}]}
        ).encode()
    )

    def script(conn, request):
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n"
            % len(body)
            + body
        )

    with RawServer(script) as server:
        assert client_for(server).chat(HI, model="m").content == "zipped"


def test_a_ten_megabyte_sse_line_is_refused_not_buffered():
    def script(conn, request):
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\ndata: "
        )
        piece = b"x" * 65536
        for _ in range(160):  # 10 MB with no line end
            conn.sendall(piece)

    with RawServer(script) as server:
        with pytest.raises(StreamError, match="exceeds the 4194304-byte limit"):
            within(5, lambda: client_for(server).stream(HI, model="m").completion)


@close_delimited_in_pieces
def test_keep_alive_comments_forever_end_at_the_deadline():
    def script(conn, request):
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
        )
        for _ in range(1200):  # a minute of them, unless the client hangs up
            conn.sendall(b": keep-alive\n\n")
            time.sleep(0.05)

    with RawServer(script) as server:
        with pytest.raises(APITimeoutError, match="deadline"):
            within(1.0, lambda: client_for(server, deadline=1.0).stream(HI, model="m").completion)


def zeros_gzipped(size: int) -> bytes:
    """``size`` zero bytes as gzip, built a megabyte at a time (about 1 KB per MB)."""
    packer = zlib.compressobj(wbits=31)
    block = b"\0" * 1_000_000
    return b"".join(packer.compress(block) for _ in range(size // 1_000_000)) + packer.flush()


BOMB = zeros_gzipped(200_000_000)  # 200 KB that inflate to 200 MB, past the 64 MB limit


@pytest.mark.parametrize(
    "framing, body",
    [
        ("Transfer-Encoding: chunked", b"%x\r\n%s\r\n0\r\n\r\n" % (len(BOMB), BOMB)),
        ("Connection: close", BOMB),
    ],
    ids=["one chunk", "close-delimited"],
)
def test_a_gzip_bomb_is_refused_with_memory_bounded(framing, body):
    head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n{framing}\r\n\r\n"

    with RawServer(lambda conn, request: conn.sendall(head.encode() + body)) as server:
        tracemalloc.start()
        try:
            with pytest.raises(InvalidResponseError, match="passed 67108864 bytes"):
                within(10, lambda: client_for(server, timeout=(2, 2)).chat(HI, model="m"))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak < 200_000_000


def test_stacked_gzip_members_in_one_chunk_are_inflated_a_step_at_a_time():
    member = zeros_gzipped(10_000_000)
    body = member * 100  # 1 MB in one chunk, 1 GB inflated
    head = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"
    frame = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)

    with RawServer(lambda conn, request: conn.sendall(head + frame)) as server:
        tracemalloc.start()
        try:
            with pytest.raises(InvalidResponseError, match="passed 67108864 bytes"):
                within(10, lambda: client_for(server, timeout=(2, 2)).chat(HI, model="m"))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak < 200_000_000


def test_a_head_trickled_a_byte_at_a_time_ends_at_the_calls_deadline():
    release = threading.Event()

    def script(conn, request):
        for byte in b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" * 100:
            if release.wait(0.2):
                return
            conn.sendall(bytes([byte]))

    with RawServer(script) as server:
        transport = rawchat.Client(KEY, server.base_url).transport
        request = rawchat.protocol.http.HTTPRequest("GET", server.base_url + "/models")
        timeout = rawchat.protocol.settings.Timeout(2, 2)
        try:
            with pytest.raises(APITimeoutError, match="the call's deadline passed"):
                within(1, lambda: transport.open(request, timeout, deadline=time.monotonic() + 1))
        finally:
            release.set()


@pytest.mark.parametrize(
    "interim",
    [b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n",
     b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"],
    ids=["103", "101"],
)  # fmt: skip
def test_an_interim_response_is_a_typed_error_not_an_empty_answer(interim):
    answer = json.dumps({"choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}]})
    final = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(answer), answer.encode())

    with RawServer(lambda conn, request: conn.sendall(interim + final)) as server:
        with pytest.raises(APIConnectionError, match="an interim or upgrade response"):
            client_for(server).chat(HI, model="m")
