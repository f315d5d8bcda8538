"""Servers that misbehave below HTTP frameworks: every one ends in a typed error, in time,
with the blocking ``Client`` (``requests``) and the ``AsyncClient`` (``protocol/http11.py``)."""

from __future__ import annotations

import asyncio
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
from rawchat.client.aio_transport import AsyncTransport
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


def chat(kind, server, **kwargs):
    """One chat call with the ``kind`` of client: ``"sync"`` or ``"async"``."""
    if kind == "sync":
        return client_for(server, **kwargs).chat(HI, model="m")

    async def main():
        options = dict(timeout=(1, 0.3), max_retries=0)
        options.update(kwargs)
        async with rawchat.AsyncClient(KEY, server.base_url, **options) as client:
            return await client.chat(HI, model="m")

    return asyncio.run(main())


def streamed(kind, server, **kwargs):
    """One stream read to its end with the ``kind`` of client; its completion."""
    if kind == "sync":
        return client_for(server, **kwargs).stream(HI, model="m").completion

    async def main():
        options = dict(timeout=(1, 0.3), max_retries=0)
        options.update(kwargs)
        async with rawchat.AsyncClient(KEY, server.base_url, **options) as client:
            async with client.stream(HI, model="m") as stream:
                async for _ in stream:
                    pass
            return stream.completion

    return asyncio.run(main())


BOTH = pytest.mark.parametrize("kind", ["sync", "async"])


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
_OLD_URLLIB3 = not hasattr(urllib3.HTTPResponse, "read1")
close_delimited_in_pieces = pytest.mark.parametrize(
    "kind",
    [
        pytest.param(
            "sync",
            marks=pytest.mark.skipif(
                _OLD_URLLIB3,
                reason="urllib3 before 2.1 reads a close-delimited body 64 KiB at a time",
            ),
        ),
        "async",
    ],
)


@close_delimited_in_pieces
def test_a_body_with_no_length_that_never_ends_stops_at_the_deadline(kind):
    def script(conn, request):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{")
        for _ in range(600):  # a byte every 0.1 s: never silent long enough for the read timeout
            time.sleep(0.1)
            conn.sendall(b" ")

    with RawServer(script) as server:
        with pytest.raises(APITimeoutError, match="still arriving at the deadline"):
            within(1.0, lambda: chat(kind, server, deadline=1.0))


@BOTH
def test_a_bad_chunk_size_is_a_connection_error(kind):
    def script(conn, request):
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\ndata: x\r\n"
        )

    with RawServer(script) as server:
        with pytest.raises(APIConnectionError):
            within(0.3, lambda: streamed(kind, server))


@BOTH
def test_a_header_block_that_never_finishes_ends_at_the_read_timeout(kind):
    release = threading.Event()

    def script(conn, request):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
        release.wait(60)

    with RawServer(script) as server:
        with pytest.raises(APITimeoutError):
            within(0.3, lambda: chat(kind, server))
        release.set()


@BOTH
def test_an_html_200_on_a_stream_is_a_typed_error(kind):
    page = b"<html><title>Proxy</title></html>"

    def script(conn, request):
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n%s"
            % (len(page), page)
        )

    with RawServer(script) as server:
        with pytest.raises(InvalidResponseError, match="expected an event stream"):
            streamed(kind, server)


@BOTH
def test_a_gzip_body_that_is_not_gzip_is_a_connection_error(kind):
    def script(conn, request):
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: 12\r\n\r\nnot gzip!!!!"
        )

    with RawServer(script) as server:
        with pytest.raises(APIConnectionError, match="malformed"):
            chat(kind, server)


@BOTH
def test_a_real_gzip_body_is_decoded(kind):
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
        assert chat(kind, server).content == "zipped"


@BOTH
def test_a_ten_megabyte_sse_line_is_refused_not_buffered(kind):
    def script(conn, request):
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\ndata: "
        )
        piece = b"x" * 65536
        for _ in range(160):  # 10 MB with no line end
            conn.sendall(piece)

    with RawServer(script) as server:
        with pytest.raises(StreamError, match="exceeds the 4194304-byte limit"):
            within(5, lambda: streamed(kind, server))


@close_delimited_in_pieces
def test_keep_alive_comments_forever_end_at_the_deadline(kind):
    def script(conn, request):
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
        )
        for _ in range(1200):  # a minute of them, unless the client hangs up
            conn.sendall(b": keep-alive\n\n")
            time.sleep(0.05)

    with RawServer(script) as server:
        with pytest.raises(APITimeoutError, match="deadline"):
            within(1.0, lambda: streamed(kind, server, deadline=1.0))


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
@BOTH
def test_a_gzip_bomb_is_refused_with_memory_bounded(framing, body, kind):
    head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n{framing}\r\n\r\n"

    with RawServer(lambda conn, request: conn.sendall(head.encode() + body)) as server:
        tracemalloc.start()
        try:
            with pytest.raises(InvalidResponseError, match="passed 67108864 bytes"):
                within(10, lambda: chat(kind, server, timeout=(2, 2)))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak < 200_000_000


@BOTH
def test_stacked_gzip_members_in_one_chunk_are_inflated_a_step_at_a_time(kind):
    member = zeros_gzipped(10_000_000)
    body = member * 100  # 1 MB in one chunk, 1 GB inflated
    head = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"
    frame = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)

    with RawServer(lambda conn, request: conn.sendall(head + frame)) as server:
        tracemalloc.start()
        try:
            with pytest.raises(InvalidResponseError, match="passed 67108864 bytes"):
                within(10, lambda: chat(kind, server, timeout=(2, 2)))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak < 200_000_000


@BOTH
def test_a_head_trickled_a_byte_at_a_time_ends_at_the_calls_deadline(kind):
    release = threading.Event()

    def script(conn, request):
        for byte in b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" * 100:
            if release.wait(0.2):
                return
            conn.sendall(bytes([byte]))

    async def opened(request, timeout):
        async with AsyncTransport(clock=time.monotonic) as transport:
            await transport.open(request, timeout, deadline=time.monotonic() + 1)

    with RawServer(script) as server:
        transport = rawchat.Client(KEY, server.base_url).transport
        request = rawchat.protocol.http.HTTPRequest("GET", server.base_url + "/models")
        timeout = rawchat.protocol.settings.Timeout(2, 2)
        try:
            with pytest.raises(APITimeoutError, match="deadline passed"):
                if kind == "sync":
                    within(
                        1, lambda: transport.open(request, timeout, deadline=time.monotonic() + 1)
                    )
                else:
                    within(1, lambda: asyncio.run(opened(request, timeout)))
        finally:
            release.set()


EARLY_HINTS = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
SWITCHING = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"


@pytest.mark.parametrize(
    "interim, kind, expected",
    [
        (EARLY_HINTS, "sync", "an interim or upgrade response"),
        (SWITCHING, "sync", "an interim or upgrade response"),
        # RFC 9110 section 15.2: a 1xx other than 101 is skipped; the answer follows.
        (EARLY_HINTS, "async", None),
        (SWITCHING, "async", "101 Switching Protocols"),
    ],
    ids=["103-sync", "101-sync", "103-async", "101-async"],
)
def test_an_interim_response_is_a_typed_error_not_an_empty_answer(interim, kind, expected):
    answer = json.dumps({"choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}]})
    final = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(answer), answer.encode())

    with RawServer(lambda conn, request: conn.sendall(interim + final)) as server:
        if expected is None:
            assert chat(kind, server).content == "hi"
        else:
            with pytest.raises(APIConnectionError, match=expected):
                chat(kind, server)
