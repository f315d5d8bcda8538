"""HTTP/1.1 framing: literal bytes in, events out, every reader fed three ways."""

from __future__ import annotations

from typing import List

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rawchat.errors import APIConnectionError, InvalidRequestError
from rawchat.protocol.http import Headers, HTTPRequest
from rawchat.protocol.http11 import (
    MAX_CHUNK_SIZE,
    MAX_HEAD_BYTES,
    Data,
    EndOfMessage,
    Event,
    MalformedResponseError,
    RequestHead,
    ResponseHead,
    ResponseParser,
    request_head,
)

from ..feeds import FEEDS, split_at


def parse(pieces: List[bytes], method: str = "GET", *, eof: bool = False) -> List[Event]:
    """Feed the pieces; Data events joined, so that every feed gives one answer."""
    parser = ResponseParser(method)
    events: List[Event] = []
    for piece in pieces:
        events += parser.feed(piece)
    if eof:
        events += parser.end_of_stream()
    joined: List[Event] = []
    for event in events:
        if isinstance(event, Data) and joined and isinstance(joined[-1], Data):
            joined[-1] = Data(joined[-1].data + event.data)
        else:
            joined.append(event)
    return joined


def parser_after(data: bytes, method: str = "GET") -> ResponseParser:
    parser = ResponseParser(method)
    parser.feed(data)
    return parser


# ---------------------------------------------------------------- request heads


def test_a_post_head_is_request_line_host_headers_and_content_length():
    request = HTTPRequest(
        "POST",
        "https://api.example.com/v1/chat/completions?x=1",
        Headers([("Authorization", "Bearer sk-1"), ("Content-Type", "application/json")]),
        b'{"a":1}',
    )
    assert request_head(request).encode() == (
        b"POST /v1/chat/completions?x=1 HTTP/1.1\r\n"
        b"Host: api.example.com\r\n"
        b"Authorization: Bearer sk-1\r\n"
        b"Content-Type: application/json\r\n"
        b"Content-Length: 7\r\n"
        b"\r\n"
    )


def test_a_get_has_no_content_length_and_a_root_target():
    head = request_head(HTTPRequest("GET", "http://127.0.0.1:8080"))
    assert head.encode() == b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"


def test_an_empty_post_says_content_length_0():
    head = request_head(HTTPRequest("POST", "http://h/x"))
    assert head.headers == (("Host", "h"), ("Content-Length", "0"))


def test_credentials_in_the_url_never_reach_the_host_header():
    head = request_head(HTTPRequest("GET", "http://user:pw@h:81/x"))
    assert head.headers == (("Host", "h:81"),)


def test_a_target_and_extra_fields_can_be_given_for_a_proxy():
    head = request_head(
        HTTPRequest("GET", "http://h/x"),
        target="http://h/x",
        extra=[("Proxy-Authorization", "Basic dTpw")],
    )
    assert head.encode() == (
        b"GET http://h/x HTTP/1.1\r\nHost: h\r\nProxy-Authorization: Basic dTpw\r\n\r\n"
    )


def test_a_request_naming_its_own_host_keeps_it():
    head = request_head(HTTPRequest("GET", "http://10.0.0.1/x", Headers({"Host": "api.example"})))
    assert head.headers == (("Host", "api.example"),)


@pytest.mark.parametrize(
    "headers",
    [{"Transfer-Encoding": "chunked"}, {"Content-Length": "3"}],
)
def test_a_request_framing_its_own_body_is_refused(headers):
    with pytest.raises(InvalidRequestError):
        request_head(HTTPRequest("POST", "http://h/", Headers(headers), b"{}"))


def test_a_matching_content_length_is_sent_once():
    request = HTTPRequest("POST", "http://h/", Headers({"Content-Length": "2"}), b"{}")
    assert request_head(request).headers == (("Host", "h"), ("Content-Length", "2"))


@pytest.mark.parametrize(
    "method, target, headers",
    [
        ("GET /x", "/", ()),
        ("GET", "/a b", ()),
        ("GET", "", ()),
        ("GET", "/", (("X", "sk-1\n"),)),
        ("GET", "/", (("X", "a\rb"),)),
        ("GET", "/", (("X Y", "1"),)),
        ("GET", "/", (("", "1"),)),
    ],
)
def test_a_head_that_would_not_mean_what_it_says_is_refused(method, target, headers):
    with pytest.raises(InvalidRequestError):
        RequestHead(method, target, headers)


def test_a_header_value_outside_latin_1_cannot_be_encoded():
    with pytest.raises(InvalidRequestError, match="ISO-8859-1"):
        RequestHead("GET", "/", (("X-Name", "中文"),)).encode()


# ---------------------------------------------------------------- response heads

SIMPLE = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


@pytest.mark.parametrize("feed", FEEDS)
def test_a_content_length_response_is_head_data_end(feed):
    assert parse(feed(SIMPLE)) == [
        ResponseHead(
            200, "OK", Headers([("Content-Type", "application/json"), ("Content-Length", "2")])
        ),
        Data(b"{}"),
        EndOfMessage(),
    ]


@pytest.mark.parametrize("feed", FEEDS)
def test_lines_may_end_in_a_bare_lf(feed):
    events = parse(feed(b"HTTP/1.1 200 OK\nContent-Length: 1\n\nx"))
    assert events == [
        ResponseHead(200, "OK", Headers({"Content-Length": "1"})),
        Data(b"x"),
        EndOfMessage(),
    ]


@pytest.mark.parametrize(
    "line, status, reason, version",
    [
        (b"HTTP/1.1 404 Not Found", 404, "Not Found", "1.1"),
        (b"HTTP/1.0 200 OK", 200, "OK", "1.0"),
        (b"HTTP/1.1 200 ", 200, "", "1.1"),
        (b"HTTP/1.1 200", 200, "", "1.1"),
        (b"HTTP/1.2 200 OK", 200, "OK", "1.1"),
        (b"HTTP/1.1 503 Service \xe9 Unavailable", 503, "Service \xe9 Unavailable", "1.1"),
    ],
)
def test_the_status_line(line, status, reason, version):
    (head, _) = parse([line + b"\r\nContent-Length: 0\r\n\r\n"])
    assert (head.status, head.reason, head.http_version) == (status, reason, version)


@pytest.mark.parametrize(
    "line",
    [
        b"HTTP/2 200 OK",
        b"HTTP/2.0 200 OK",
        b"HTTP/1.1 20 OK",
        b"HTTP/1.1 2000 OK",
        b"HTTP/1.1 099 Odd",
        b"HTTP/1.1 600 Odd",
        b"HTTP/1.1  200 OK",
        b"http/1.1 200 OK",
        b"ICY 200 OK",
        b"<html>",
        b"HTTP/1.1 200 O\x00K",
        b"HTTP/1.1 200 O\rK",
    ],
)
def test_a_malformed_status_line_is_refused(line):
    with pytest.raises(MalformedResponseError):
        ResponseParser().feed(line + b"\r\n\r\n")


def test_the_error_is_an_api_connection_error_with_a_hint():
    with pytest.raises(APIConnectionError) as caught:
        ResponseParser().feed(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
    assert caught.value.message == (
        "the response from the server is malformed: "
        "not an HTTP/1.x status line: b'SSH-2.0-OpenSSH_9.6'"
    )
    assert "HTTP/1.1" in caught.value.hint


@pytest.mark.parametrize(
    "line",
    [b"X-Bad : 1", b"X Bad: 1", b": no name", b"no colon", b"X-Nul: a\x00b", b"X-Cr: a\rb"],
)
def test_a_malformed_header_line_is_refused(line):
    with pytest.raises(MalformedResponseError):
        ResponseParser().feed(b"HTTP/1.1 200 OK\r\n" + line + b"\r\n\r\n")


def test_header_values_lose_surrounding_whitespace_and_keep_obs_text():
    (head, _) = parse(
        [
            b"HTTP/1.1 200 OK\r\nX-A: \t spaced \t\r\nX-B: caf\xe9\r\nX-C:\r\nContent-Length: 0\r\n\r\n"
        ]
    )
    assert head.headers.items() == (
        ("X-A", "spaced"),
        ("X-B", "caf\xe9"),
        ("X-C", ""),
        ("Content-Length", "0"),
    )


def test_an_obsolete_folded_line_joins_its_field_with_one_space():
    (head, _) = parse(
        [b"HTTP/1.1 200 OK\r\nX-Long: one\r\n   two\r\n\tthree\r\nContent-Length: 0\r\n\r\n"]
    )
    assert head.headers["x-long"] == "one two three"


def test_a_folded_line_before_any_field_is_refused():
    with pytest.raises(MalformedResponseError, match="folded"):
        ResponseParser().feed(b"HTTP/1.1 200 OK\r\n folded\r\n\r\n")


def test_blank_lines_before_the_status_line_are_skipped():
    assert parse([b"\r\n\r\n" + SIMPLE])[1:] == [Data(b"{}"), EndOfMessage()]


@pytest.mark.parametrize("feed", FEEDS)
def test_a_head_larger_than_the_bound_is_refused_before_it_ends(feed):
    big = b"HTTP/1.1 200 OK\r\n" + b"X-Filler: " + b"a" * MAX_HEAD_BYTES
    parser = ResponseParser()
    with pytest.raises(MalformedResponseError, match="a head longer than 65536 bytes"):
        for piece in feed(big):
            parser.feed(piece)


def test_a_head_of_many_fields_just_under_the_bound_is_read():
    lines = b"".join(b"X-%05d: %s\r\n" % (i, b"v" * 90) for i in range(600))
    head = b"HTTP/1.1 200 OK\r\n" + lines + b"Content-Length: 0\r\n\r\n"
    assert len(head) < MAX_HEAD_BYTES
    (response, end) = parse([head])
    assert len(response.headers) == 601 and end == EndOfMessage()


def test_a_head_of_many_fields_over_the_bound_is_refused():
    lines = b"".join(b"X-%05d: %s\r\n" % (i, b"v" * 90) for i in range(700))
    with pytest.raises(MalformedResponseError, match="a head longer than"):
        ResponseParser().feed(b"HTTP/1.1 200 OK\r\n" + lines + b"\r\n")


# ---------------------------------------------------------------- 1xx


@pytest.mark.parametrize("feed", FEEDS)
def test_interim_responses_are_skipped(feed):
    data = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    )
    assert parse(feed(data)) == [
        ResponseHead(200, "OK", Headers({"Content-Length": "2"})),
        Data(b"ok"),
        EndOfMessage(),
    ]


def test_101_switching_protocols_is_an_error():
    with pytest.raises(MalformedResponseError, match="101 Switching Protocols"):
        ResponseParser().feed(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n")


# ---------------------------------------------------------------- bodies

CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
CHUNKED_RESPONSE = ResponseHead(200, "OK", Headers({"Transfer-Encoding": "chunked"}))


@pytest.mark.parametrize("feed", FEEDS)
def test_a_chunked_body(feed):
    data = CHUNKED_HEAD + b"5\r\nhello\r\n1;ext=1;other\r\n \r\nA\r\n0123456789\r\n0\r\n\r\n"
    assert parse(feed(data)) == [CHUNKED_RESPONSE, Data(b"hello 0123456789"), EndOfMessage()]


@pytest.mark.parametrize("feed", FEEDS)
def test_a_chunked_body_with_trailers(feed):
    data = CHUNKED_HEAD + b"2\r\nhi\r\n0\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n"
    assert parse(feed(data)) == [
        CHUNKED_RESPONSE,
        Data(b"hi"),
        EndOfMessage(Headers([("X-Checksum", "abc"), ("X-Other", "1")])),
    ]


def test_a_crlf_split_after_chunk_data_is_one_terminator():
    data = CHUNKED_HEAD + b"2\r\nhi\r\n2\r\nyo\r\n0\r\n\r\n"
    cut = len(CHUNKED_HEAD) + len(b"2\r\nhi\r")
    assert parse(split_at(data, [cut])) == [CHUNKED_RESPONSE, Data(b"hiyo"), EndOfMessage()]


def test_each_chunk_is_handed_over_as_it_arrives():
    parser = ResponseParser()
    assert parser.feed(CHUNKED_HEAD + b"a\r\nhel") == [CHUNKED_RESPONSE, Data(b"hel")]
    assert parser.feed(b"lo") == [Data(b"lo")]
    assert parser.feed(b"") == []
    assert parser.feed(b"12345\r\n0\r\n\r\n") == [Data(b"12345"), EndOfMessage()]


@pytest.mark.parametrize("feed", FEEDS)
def test_chunk_sizes_may_be_upper_case_with_leading_zeros_and_spaces_before_extensions(feed):
    data = CHUNKED_HEAD + b'000B \t;name="quoted;value"\r\n01234567890\r\n00\r\n\r\n'
    assert parse(feed(data)) == [CHUNKED_RESPONSE, Data(b"01234567890"), EndOfMessage()]


@pytest.mark.parametrize(
    "size_line",
    [b"+5", b"-5", b"0x5", b"5_0", b" 5", b"", b";ext", b"5 5", b"g", b"\xd9\xa5", b"\xef\xbc\x95"],
)
def test_a_chunk_size_is_hex_digits_only(size_line):
    with pytest.raises(MalformedResponseError, match="chunk size is not hex digits"):
        ResponseParser().feed(CHUNKED_HEAD + size_line + b"\r\nhello\r\n0\r\n\r\n")


def test_a_chunk_over_the_bound_is_refused():
    size = b"%x" % (MAX_CHUNK_SIZE + 1)
    with pytest.raises(MalformedResponseError, match="a chunk of 16777217 bytes is over 16777216"):
        ResponseParser().feed(CHUNKED_HEAD + size + b"\r\n")


def test_a_huge_chunk_size_is_refused_not_overflowed():
    with pytest.raises(MalformedResponseError, match="over"):
        ResponseParser().feed(CHUNKED_HEAD + b"f" * 200 + b"\r\n")


def test_a_chunk_of_exactly_the_bound_is_accepted():
    events = ResponseParser().feed(CHUNKED_HEAD + b"%x\r\n" % MAX_CHUNK_SIZE + b"abc")
    assert events == [CHUNKED_RESPONSE, Data(b"abc")]


@pytest.mark.parametrize("feed", FEEDS)
def test_an_overlong_chunk_size_line_is_refused(feed):
    data = CHUNKED_HEAD + b"5;" + b"x" * 5000 + b"\r\nhello\r\n"
    parser = ResponseParser()
    with pytest.raises(MalformedResponseError, match="longer than 4096 bytes"):
        for piece in feed(data):
            parser.feed(piece)


def test_an_overlong_trailer_line_is_refused():
    with pytest.raises(MalformedResponseError, match="longer than 4096 bytes"):
        ResponseParser().feed(CHUNKED_HEAD + b"0\r\nX-T: " + b"t" * 5000 + b"\r\n\r\n")


def test_a_chunk_size_line_of_4096_bytes_is_accepted():
    line = b"5;" + b"x" * (4096 - 4)
    events = ResponseParser().feed(CHUNKED_HEAD + line + b"\r\nhello")
    assert events == [CHUNKED_RESPONSE, Data(b"hello")]


def test_chunk_data_longer_than_its_size_is_refused():
    with pytest.raises(MalformedResponseError, match="chunk data longer than its size line said"):
        ResponseParser().feed(CHUNKED_HEAD + b"2\r\nhello\r\n0\r\n\r\n")


@pytest.mark.parametrize(
    "coding",
    [b"gzip", b"gzip, chunked", b"chunked, gzip", b"identity", b"chunked, chunked"],
)
def test_a_transfer_coding_other_than_chunked_alone_is_refused(coding):
    with pytest.raises(MalformedResponseError, match="unsupported Transfer-Encoding"):
        ResponseParser().feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: " + coding + b"\r\n\r\n")


def test_chunked_is_case_insensitive():
    events = ResponseParser().feed(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding:  Chunked \r\n\r\n0\r\n\r\n"
    )
    assert events[-1] == EndOfMessage()


def test_transfer_encoding_and_content_length_together_are_refused():
    with pytest.raises(MalformedResponseError, match="both Transfer-Encoding and Content-Length"):
        ResponseParser().feed(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"
        )


@pytest.mark.parametrize(
    "value", [b"-1", b"+5", b"5.0", b"0x5", b"", b"1 2", b"5, 6", b"9" * 19, b"\xd9\xa5"]
)
def test_a_bad_content_length_is_refused(value):
    with pytest.raises(MalformedResponseError, match="Content-Length"):
        ResponseParser().feed(b"HTTP/1.1 200 OK\r\nContent-Length: " + value + b"\r\n\r\n")


def test_a_repeated_identical_content_length_is_that_length():
    data = b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\nContent-Length: 2\r\n\r\nok"
    assert parse([data])[1:] == [Data(b"ok"), EndOfMessage()]


@pytest.mark.parametrize("feed", FEEDS)
def test_a_close_delimited_body_ends_at_end_of_stream(feed):
    data = b"HTTP/1.0 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: 1\n\ndata: 2\n\n"
    assert parse(feed(data), eof=True) == [
        ResponseHead(200, "OK", Headers({"Content-Type": "text/event-stream"}), "1.0"),
        Data(b"data: 1\n\ndata: 2\n\n"),
        EndOfMessage(),
    ]


def test_a_close_delimited_body_is_handed_over_as_it_arrives():
    parser = ResponseParser()
    assert parser.feed(b"HTTP/1.1 200 OK\r\n\r\nfirst")[1:] == [Data(b"first")]
    assert parser.feed(b"second") == [Data(b"second")]
    assert parser.end_of_stream() == [EndOfMessage()]
    assert not parser.reusable


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "closed the connection without sending a response"),
        (b"HTTP/1.1 200 OK\r\nContent-Le", "before a complete response head"),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
            "with 7 bytes of the body still to come",
        ),
        (CHUNKED_HEAD + b"5\r\nab", "with 3 bytes of the body still to come"),
        (CHUNKED_HEAD + b"5\r\nhello", "in the middle of a chunked body"),
        (CHUNKED_HEAD + b"5\r\nhello\r\n", "in the middle of a chunked body"),
        (CHUNKED_HEAD + b"0\r\nX-T: 1\r\n", "in the middle of a chunked body"),
    ],
)
def test_an_early_end_of_stream_says_where_it_stopped(data, message):
    parser = ResponseParser()
    parser.feed(data)
    with pytest.raises(MalformedResponseError, match=message):
        parser.end_of_stream()
    with pytest.raises(MalformedResponseError, match=message):
        parser.feed(b"more")  # a failed parser stays failed


@pytest.mark.parametrize(
    "method, status",
    [("HEAD", 200), ("GET", 204), ("GET", 304), ("POST", 204)],
)
def test_no_body_after_head_or_for_204_and_304_whatever_the_headers(method, status):
    data = b"HTTP/1.1 %d X\r\nContent-Length: 99\r\n\r\n" % status
    events = parse([data], method)
    assert events[1:] == [EndOfMessage()]
    assert events[0].status == status


def test_a_2xx_to_connect_opens_a_tunnel_and_keeps_what_follows():
    parser = ResponseParser("CONNECT")
    events = parser.feed(b"HTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x01")
    assert events == [ResponseHead(200, "Connection established"), EndOfMessage()]
    assert parser.trailing_data == b"\x16\x03\x01"
    assert not parser.reusable


def test_a_refused_connect_has_a_body_like_any_response():
    data = b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 4\r\n\r\nnope"
    assert parse([data], "CONNECT")[1:] == [Data(b"nope"), EndOfMessage()]


# ---------------------------------------------------------------- keep-alive


@pytest.mark.parametrize(
    "head, reusable",
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0", True),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close", False),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: Keep-Alive, CLOSE", False),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 0", False),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive", True),
        (b"HTTP/1.1 204 No Content", True),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0", True),
    ],
)
def test_keep_alive_follows_the_version_and_the_connection_header(head, reusable):
    parser = parser_after(head + b"\r\n\r\n")
    assert parser.complete
    assert parser.reusable is reusable


def test_a_connection_is_not_reusable_before_the_end_of_the_message():
    parser = parser_after(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab")
    assert not parser.complete and not parser.reusable


def test_bytes_after_the_message_make_the_connection_unusable():
    parser = parser_after(SIMPLE + b"HTTP/1.1 200 OK\r\n")
    assert parser.trailing_data == b"HTTP/1.1 200 OK\r\n"
    assert not parser.reusable
    assert parser.feed(b"more") == []
    assert parser.trailing_data == b"HTTP/1.1 200 OK\r\nmore"


def test_started_tells_a_silent_close_from_a_broken_response():
    parser = ResponseParser()
    assert not parser.started
    parser.feed(b"H")
    assert parser.started


# ---------------------------------------------------------------- events


def test_events_check_their_fields():
    with pytest.raises(ValueError):
        ResponseHead(100)
    with pytest.raises(ValueError):
        ResponseHead(200, http_version="2")
    assert ResponseHead(200, headers={"A": "1"}).headers == Headers({"A": "1"})
    assert EndOfMessage({"T": "1"}).trailers == Headers({"T": "1"})


# ---------------------------------------------------------------- fuzzing

_PIECES = st.sampled_from(
    [
        b"HTTP/1.1 200 OK\r\n",
        b"HTTP/1.0 100 Continue\r\n",
        b"Content-Length: 3\r\n",
        b"Transfer-Encoding: chunked\r\n",
        b"Connection: close\r\n",
        b"\r\n",
        b"\n",
        b"5\r\n",
        b"0\r\n",
        b"hello",
        b" folded\r\n",
        b"X: \x00\r\n",
        b"ffffffff\r\n",
    ]
)


@given(st.lists(st.one_of(st.binary(max_size=40), _PIECES), max_size=30), st.data())
def test_no_bytes_raise_anything_but_the_typed_error(pieces, data):
    method = data.draw(st.sampled_from(["GET", "HEAD", "CONNECT", "POST"]))
    parser = ResponseParser(method)
    try:
        for piece in pieces:
            for event in parser.feed(piece):
                assert isinstance(event, (ResponseHead, Data, EndOfMessage))
        parser.end_of_stream()
    except MalformedResponseError:
        pass


@given(st.binary(max_size=300), st.lists(st.integers(0, 300), max_size=8))
def test_any_split_gives_the_same_events(body, cuts):
    data = CHUNKED_HEAD + b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (body[:7], body[7:]) if p)
    data += b"0\r\n\r\n"
    assert parse(split_at(data, cuts)) == parse([data])
