"""Content codings undone in bounded steps, however the body is cut."""

from __future__ import annotations

import gzip
import zlib

import pytest

from rawchat.protocol.content_coding import Inflater, inflater_for
from rawchat.protocol.http import Headers

from ..feeds import byte_by_byte, random_splits, whole


def inflate(coding: str, body: bytes, feed=whole, step: int = 64 * 1024) -> bytes:
    inflater = Inflater(coding, step)
    out = [piece for data in feed(body) for piece in inflater.feed(data)]
    out += list(inflater.flush())
    assert all(len(piece) <= step for piece in out)
    return b"".join(out)


TEXT = "data: 你好, world\n\n".encode() * 50


@pytest.mark.parametrize(
    "coding, body",
    [
        ("gzip", gzip.compress(TEXT)),
        ("x-gzip", gzip.compress(TEXT)),
        ("deflate", zlib.compress(TEXT)),  # zlib-wrapped, as RFC 9110 says
        ("deflate", zlib.compress(TEXT)[2:-4]),  # bare RFC 1951, as some servers send
    ],
)
def test_each_coding_inflates_to_the_text_however_the_body_is_cut(coding, body):
    for feed in (whole, byte_by_byte, random_splits):
        assert inflate(coding, body, feed) == TEXT


def test_gzip_members_one_after_another_are_one_body():
    assert inflate("gzip", gzip.compress(b"hello, ") + gzip.compress(b"world")) == b"hello, world"


def test_bytes_after_the_last_member_are_ignored():
    assert inflate("gzip", gzip.compress(b"hello") + b"\x00garbage") == b"hello"


def test_a_bomb_comes_out_one_bounded_step_at_a_time():
    bomb = gzip.compress(b"\0" * 20_000_000)
    inflater = Inflater("gzip", step=65536)
    first = next(inflater.feed(bomb))
    assert len(first) == 65536  # nothing more is made until the caller asks


def test_a_body_that_is_not_its_coding_is_a_zlib_error():
    with pytest.raises(zlib.error):
        inflate("gzip", b"not gzip at all")


def test_a_request_for_identity_or_another_coding_gets_no_inflater():
    gzipped = Headers({"Content-Encoding": "gzip"})
    assert inflater_for(gzipped, Headers({"Accept-Encoding": "identity"})) is None
    assert inflater_for(Headers({"Content-Encoding": "br"}), Headers()) is None
    assert isinstance(inflater_for(gzipped, Headers()), Inflater)


def test_members_larger_than_a_step_stacked_in_one_piece_are_one_body():
    body = gzip.compress(b"\0" * 100_000) * 3
    inflater = Inflater("gzip", step=65536)
    sizes = [len(piece) for piece in inflater.feed(body)]
    assert (sum(sizes), max(sizes)) == (300_000, 65536)
