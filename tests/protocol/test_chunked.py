"""The chunked transfer decoder against RFC 9112 section 7.1, fed three ways."""

from __future__ import annotations

from typing import List

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rawchat.errors import APIConnectionError
from rawchat.protocol.chunked import MAX_LINE_BYTES, ChunkedDecoder

from ..feeds import FEEDS

BODY = b'4\r\ndata\r\n1b\r\n: {"choices":[{"x":"\xe4\xbd\xa0"}]}\r\n0\r\n\r\n'


def decode(pieces: List[bytes]) -> ChunkedDecoder:
    decoder = ChunkedDecoder()
    decoder.body = b"".join(decoder.feed(piece) for piece in pieces)  # type: ignore[attr-defined]
    return decoder


@pytest.fixture(params=FEEDS, ids=lambda f: f.__name__)
def feed(request):
    return lambda data: decode(request.param(data))


def test_chunks_join_into_the_body_and_the_last_chunk_ends_it(feed):
    decoder = feed(BODY)
    assert decoder.body == b'data: {"choices":[{"x":"\xe4\xbd\xa0"}]}'
    assert decoder.done
    assert decoder.unused == b""


def test_a_read_of_many_chunks_returns_their_bodies_at_once():
    decoder = ChunkedDecoder()
    assert decoder.feed(b"2\r\nab\r\n3\r\ncde\r\n1\r\n") == b"abcde"
    assert decoder.feed(b"f\r\n0\r\n\r\n") == b"f"
    assert decoder.done


def test_a_read_of_exactly_one_chunks_data_is_returned_as_is():
    decoder = ChunkedDecoder()
    decoder.feed(b"5\r\n")
    piece = b"hello"
    assert decoder.feed(piece) is piece


def test_nothing_is_done_before_the_blank_line_after_the_last_chunk():
    decoder = ChunkedDecoder()
    assert decoder.feed(b"1\r\na\r\n0\r\n") == b"a"
    assert not decoder.done
    decoder.feed(b"\r\n")
    assert decoder.done


def test_chunk_extensions_are_ignored(feed):
    assert feed(b'3;name="v";x\r\nabc\r\n0;end\r\n\r\n').body == b"abc"


def test_trailer_fields_are_read_and_ignored(feed):
    decoder = feed(b"3\r\nabc\r\n0\r\nX-Checksum: 1\r\nX-Other: 2\r\n\r\n")
    assert (decoder.body, decoder.done) == (b"abc", True)


def test_upper_case_hex_and_leading_zeros_are_sizes(feed):
    assert feed(b"00A\r\n0123456789\r\n000\r\n\r\n").body == b"0123456789"


def test_bare_lf_line_ends_are_tolerated(feed):
    assert feed(b"3\nabc\n0\n\n").body == b"abc"


def test_bytes_after_the_body_are_kept_as_unused():
    decoder = ChunkedDecoder()
    decoder.feed(b"1\r\na\r\n0\r\n\r\nHTTP/1.1 200")
    assert decoder.unused == b"HTTP/1.1 200"
    assert decoder.feed(b" OK") == b""
    assert decoder.unused == b"HTTP/1.1 200 OK"


@pytest.mark.parametrize(
    "size", [b"+1f", b"0x1f", b"1_f", b"-1", b"g", b"", b"1 2", b"1" * 17], ids=repr
)
def test_a_size_that_is_not_hex_digits_is_malformed(size):
    with pytest.raises(APIConnectionError, match="bad chunk size line"):
        ChunkedDecoder().feed(size + b"\r\nx\r\n")


def test_chunk_data_longer_than_its_size_is_malformed():
    with pytest.raises(APIConnectionError, match="chunk data runs past its size"):
        ChunkedDecoder().feed(b"2\r\nabc\r\n")


def test_a_size_line_that_never_ends_is_refused():
    decoder = ChunkedDecoder()
    with pytest.raises(APIConnectionError, match="chunk size line of over 4096 bytes"):
        for _ in range(MAX_LINE_BYTES + 1):
            decoder.feed(b"0")


def test_an_overlong_trailer_field_is_refused():
    with pytest.raises(APIConnectionError, match="a trailer field of 5002 bytes"):
        ChunkedDecoder().feed(b"0\r\nX: " + b"y" * 4997 + b"\r\n")


def test_the_error_says_what_to_look_at():
    with pytest.raises(APIConnectionError) as caught:
        ChunkedDecoder().feed(b"zz\r\n")
    assert caught.value.hint.startswith("the server or a proxy broke the HTTP framing")


def encode(pieces: List[bytes]) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces if p) + b"0\r\n\r\n"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=40), max_size=8), st.randoms())
def test_any_chunking_cut_anywhere_decodes_to_the_body(pieces, rng):
    wire = encode(pieces)
    cuts = sorted(rng.randint(0, len(wire)) for _ in range(rng.randint(0, 10)))
    decoder = decode([wire[a:b] for a, b in zip([0, *cuts], [*cuts, len(wire)])])
    assert decoder.body == b"".join(pieces)
    assert decoder.done


@pytest.mark.parametrize(
    "wire", [b"\r\n3\r\nabc\r\n0\r\n\r\n", b"\n3\r\nabc\r\n0\r\n\r\n", b"3\r\nabc\r\n\r\n0\r\n\r\n"]
)
def test_an_empty_line_where_a_size_belongs_is_malformed(wire):
    with pytest.raises(APIConnectionError, match="bad chunk size line"):
        ChunkedDecoder().feed(wire)


def test_whitespace_around_the_size_is_tolerated(feed):
    assert feed(b"3 \r\nabc\r\n 0\t\r\n\r\n").body == b"abc"
