"""The SSE parser against the WHATWG rules, each stream fed three ways."""

from __future__ import annotations

import dataclasses
from typing import List

import pytest
import sseclient
from hypothesis import given, settings
from hypothesis import strategies as st

from rawchat.errors import StreamError
from rawchat.protocol.sse import ServerSentEvent, SSEParser, encode_comment, encode_event

from ..feeds import FEEDS, byte_by_byte, random_splits, split_at, whole


def parse(pieces: List[bytes], parser: SSEParser = None) -> List[ServerSentEvent]:
    parser = parser or SSEParser()
    events = []
    for piece in pieces:
        events += parser.feed(piece)
    return events + parser.close()


@pytest.fixture(params=FEEDS, ids=lambda f: f.__name__)
def feed(request):
    return lambda data, parser=None: parse(request.param(data), parser)


def test_the_contract_example_yields_one_message_event():
    parser = SSEParser()
    events = parser.feed(b"data: hello\n\n")
    events += parser.close()
    assert events == [ServerSentEvent(event="message", data="hello", id="", retry=None)]


def test_an_event_reads_as_its_fields_and_cannot_be_changed():
    event = SSEParser().feed(b"data: hello\n\n")[0]
    assert repr(event) == "ServerSentEvent(event='message', data='hello', id='', retry=None)"
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.data = "changed"  # type: ignore[misc]


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"], ids=["LF", "CRLF", "CR"])
def test_lf_crlf_and_cr_each_end_a_line(feed, ending):
    stream = b"data: a" + ending + b"data: b" + ending + ending
    assert feed(stream) == [ServerSentEvent(data="a\nb")]


def test_mixed_line_endings_in_one_stream(feed):
    stream = b"data: 1\r\n\r\ndata: 2\n\ndata: 3\r\rdata: 4\n\r\n"
    assert [e.data for e in feed(stream)] == ["1", "2", "3", "4"]


def test_a_crlf_split_across_reads_is_one_line_terminator():
    parser = SSEParser()
    assert parser.feed(b"data: a\r") == []
    # Were the LF taken as a second line end, "a" would dispatch here, early.
    assert parser.feed(b"\ndata: b\r") == []
    assert parser.feed(b"\n\r\n") == [ServerSentEvent(data="a\nb")]


def test_an_lf_after_a_split_crlf_is_a_line_of_its_own():
    # CR | LF is one line end; the next LF is the blank line that dispatches.
    assert parse([b"data: a\r", b"\n", b"\n"]) == [ServerSentEvent(data="a")]


def test_a_cr_ending_one_read_and_a_cr_starting_the_next_are_two_line_ends():
    assert parse([b"data: a\r", b"\rdata: b\n\n"]) == [
        ServerSentEvent(data="a"),
        ServerSentEvent(data="b"),
    ]


def test_a_multibyte_character_split_across_reads_arrives_whole():
    encoded = "data: 你好\n\n".encode()
    parser = SSEParser()
    events = []
    for i in range(len(encoded)):
        events += parser.feed(encoded[i : i + 1])
    assert events == [ServerSentEvent(data="你好")]


def test_u2028_and_nel_inside_json_do_not_split_lines(feed):
    payload = '{"text": "a\u2028b\u0085c\u2029d"}'
    assert feed(f"data: {payload}\n\n".encode()) == [ServerSentEvent(data=payload)]


def test_u2028_inside_data_does_not_split_a_line(feed):
    assert feed('data: {"text": "one\u2028two"}\n\n'.encode()) == [
        ServerSentEvent(data='{"text": "one\u2028two"}')
    ]


def test_vertical_tab_form_feed_and_separators_do_not_end_a_line(feed):
    # str.splitlines() ends lines at each of these; the spec only at CR and LF.
    text = "a\x0bb\x0cc\x1cd\x1de\x1ef"
    assert feed(f"data: {text}\n\n".encode()) == [ServerSentEvent(data=text)]


def test_a_leading_bom_is_stripped(feed):
    assert feed(b"\xef\xbb\xbfdata: x\n\n") == [ServerSentEvent(data="x")]


def test_a_bom_split_across_reads_is_stripped():
    assert parse([b"\xef", b"\xbb", b"\xbfdata: x\n\n"]) == [ServerSentEvent(data="x")]


@pytest.mark.parametrize("point", [1, 2])
def test_a_bom_split_across_two_reads_is_stripped(point):
    stream = b"\xef\xbb\xbfdata: x\n\n"
    assert parse(split_at(stream, [point])) == [ServerSentEvent(data="x")]


def test_a_bom_arriving_alone_is_stripped_from_the_line_that_follows():
    assert parse([b"\xef\xbb\xbf", b"", b"data: x\n\n"]) == [ServerSentEvent(data="x")]


def test_a_bom_before_a_blank_first_line_is_stripped(feed):
    assert feed(b"\xef\xbb\xbf\ndata: x\n\n") == [ServerSentEvent(data="x")]


def test_only_a_leading_bom_is_stripped(feed):
    # A second BOM is part of the field name, which is then unknown.
    assert feed(b"\xef\xbb\xbf\xef\xbb\xbfdata: x\n\ndata: y\n\n") == [ServerSentEvent(data="y")]


def test_comments_are_ignored_and_keepalives_yield_nothing(feed):
    assert feed(b": keep-alive\n\n:\n\ndata: x\n: mid-event comment\n\n") == [
        ServerSentEvent(data="x")
    ]


def test_a_field_with_no_colon_has_an_empty_value(feed):
    assert feed(b"data\ndata\n\n") == [ServerSentEvent(data="\n")]


def test_exactly_one_space_after_the_colon_is_removed(feed):
    assert feed(b"data:  two\ndata:none\n\n") == [ServerSentEvent(data=" two\nnone")]


def test_field_names_are_case_sensitive(feed):
    assert feed(b"Data: x\nDATA: y\n\n") == []


def test_data_lines_join_with_lf(feed):
    assert feed(b'data: {\ndata: "a": 1\ndata: }\n\n') == [ServerSentEvent(data='{\n"a": 1\n}')]


def test_an_empty_data_line_dispatches_an_event_with_empty_data(feed):
    assert feed(b"data:\n\n") == [ServerSentEvent(data="")]


def test_an_event_with_no_data_lines_is_not_dispatched(feed):
    assert feed(b"id: 7\n\nevent: ping\n\nretry: 100\n\n") == []


def test_the_event_field_sets_the_type_for_one_event(feed):
    assert feed(b"event: error\ndata: x\n\ndata: y\n\n") == [
        ServerSentEvent(event="error", data="x"),
        ServerSentEvent(event="message", data="y"),
    ]


def test_the_last_event_id_persists_across_events(feed):
    assert feed(b"id: 1\ndata: a\n\ndata: b\n\nid\ndata: c\n\n") == [
        ServerSentEvent(data="a", id="1"),
        ServerSentEvent(data="b", id="1"),
        ServerSentEvent(data="c", id=""),
    ]


def test_an_id_only_block_sets_the_id_of_the_events_after_it(feed):
    parser = SSEParser()
    assert feed(b"id: 5\n\ndata: x\n\n", parser) == [ServerSentEvent(data="x", id="5")]
    assert parser.last_event_id == "5"


def test_an_id_containing_nul_is_ignored(feed):
    assert feed(b"id: 1\ndata: a\n\nid: 2\x00\ndata: b\n\n")[1].id == "1"


@pytest.mark.parametrize(
    "value, expected",
    [
        (b"5000", 5000),
        (b"+5", None),
        (b"1_000", None),
        (b" 5", 5),
        (b"  5", None),
        (b"\xd9\xa3", None),
        (b"", None),
    ],
)
def test_retry_counts_only_when_all_ascii_digits(value, expected):
    parser = SSEParser()
    events = parse([b"retry:" + value + b"\ndata: x\n\n"], parser)
    assert events[0].retry == expected
    assert parser.reconnection_time == expected


def test_an_unterminated_event_at_end_of_stream_is_discarded(feed):
    parser = SSEParser()
    assert feed(b"data: whole\n\ndata: cut", parser) == [ServerSentEvent(data="whole")]
    assert parser.discarded is True


def test_a_data_line_without_the_blank_line_is_discarded_at_the_end():
    parser = SSEParser()
    assert parse([b"data: x\n"], parser) == []
    assert parser.discarded is True


def test_a_clean_end_discards_nothing():
    parser = SSEParser()
    parse([b"data: x\n\n"], parser)
    assert parser.discarded is False


def test_a_trailing_cr_before_eof_ends_the_line(feed):
    assert feed(b"data: x\r\r") == [ServerSentEvent(data="x")]


def test_invalid_utf8_becomes_the_replacement_character(feed):
    assert feed(b"data: a\xffb\xe4\xbd\n\n") == [ServerSentEvent(data="a\ufffdb\ufffd")]


def test_a_runaway_line_raises_instead_of_eating_memory():
    parser = SSEParser(max_line_bytes=1000)
    parser.feed(b"data: " + b"x" * 900)
    with pytest.raises(StreamError, match="exceeds the 1000-byte limit"):
        parser.feed(b"x" * 200)


def test_a_long_line_arriving_in_one_read_is_refused_too():
    with pytest.raises(StreamError, match="SSE line"):
        SSEParser(max_line_bytes=100).feed(b"data: " + b"x" * 200 + b"\n\n")


def test_an_event_with_too_much_data_is_refused():
    parser = SSEParser(max_line_bytes=100, max_event_bytes=250)
    with pytest.raises(StreamError, match="SSE event"):
        parser.feed(b"data: " + b"x" * 90 + b"\n" * 1 + (b"data: " + b"y" * 90 + b"\n") * 3)


def test_an_events_data_is_bounded_across_reads():
    parser = SSEParser(max_event_bytes=10)
    assert parser.feed(b"data: 123456\n") == []
    with pytest.raises(StreamError, match="SSE event of over 12 bytes"):
        parser.feed(b"data: 123456\n")


def test_the_event_limit_counts_each_event_on_its_own(feed):
    parser = SSEParser(max_event_bytes=10)
    assert len(feed(b"data: 123456\n\n" * 5, parser)) == 5


def test_a_long_line_split_into_many_reads_is_collected_once():
    parser = SSEParser()
    line = b"data: " + b"x" * 100_000
    for start in range(0, len(line), 10):
        parser.feed(line[start : start + 10])
    assert parser.feed(b"\n\n") == [ServerSentEvent(data="x" * 100_000)]


def test_memoryview_and_bytearray_pieces_are_accepted():
    parser = SSEParser()
    assert parser.feed(bytearray(b"data: a\n")) == []
    assert parser.feed(memoryview(b"\n")) == [ServerSentEvent(data="a")]


def test_an_openai_stream_parses_to_its_data_lines(feed):
    stream = (
        b'data: {"choices":[{"delta":{"content":"Hi"}}]}\n\n'
        b": OPENROUTER PROCESSING\n\n"
        b'data: {"choices":[],"usage":{"total_tokens":3}}\n\n'
        b"data: [DONE]\n\n"
    )
    assert [e.data for e in feed(stream)] == [
        '{"choices":[{"delta":{"content":"Hi"}}]}',
        '{"choices":[],"usage":{"total_tokens":3}}',
        "[DONE]",
    ]


# -- the encoder ----------------------------------------------------------


def test_the_encoder_writes_one_data_line_per_line():
    assert encode_event("a\nb", event="x", id="9", retry=10) == (
        b"event: x\nid: 9\nretry: 10\ndata: a\ndata: b\n\n"
    )


def test_the_encoder_can_use_crlf():
    assert encode_event("z", line_end="\r\n") == b"data: z\r\n\r\n"


def test_the_encoder_writes_comments():
    assert encode_comment("ping") == b": ping\n"
    assert encode_comment() == b":\n"


@given(
    st.lists(
        st.tuples(st.sampled_from([None, "message", "error", "ping"]), st.text()),
        max_size=8,
    ),
    st.sampled_from(["\n", "\r\n", "\r"]),
)
def test_encoded_events_parse_back_to_themselves(events, line_end):
    stream = b"".join(encode_event(data, event=kind, line_end=line_end) for kind, data in events)
    expected = [
        ServerSentEvent(event=kind or "message", data="\n".join(_lines(data)))
        for kind, data in events
    ]
    assert parse(random_splits(stream, seed=len(stream))) == expected


def _lines(text: str) -> List[str]:
    import re

    return re.split("\r\n|\r|\n", text)


# -- sseclient-py as an independent oracle ----------------------------------
#
# sseclient-py departs from the spec in ways our parser must not copy, so
# the generated streams stay where it follows the spec: no BOM, one line
# ending for the whole stream (it misses "\n\r\n" as an event end), every
# event terminated (it dispatches an unterminated event at EOF), no `id`
# (it does not carry the last id over) and no `retry` (it does not check
# for digits), valid UTF-8 (it raises on invalid bytes).

_value = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"),
    max_size=20,
)
_line = st.one_of(
    st.tuples(st.just("data"), _value),
    st.tuples(st.just("event"), _value.filter(lambda v: v.strip() and ":" not in v)),
    st.tuples(st.just(":"), _value),
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.lists(_line, min_size=1, max_size=4), max_size=6),
    st.sampled_from(["\n", "\r\n", "\r"]),
    st.randoms(use_true_random=False),
)
def test_agrees_with_sseclient_py_where_it_follows_the_spec(blocks, line_end, rng):
    text = ""
    for block in blocks:
        for name, value in block:
            text += (f":{value}" if name == ":" else f"{name}: {value}") + line_end
        text += line_end
    stream = text.encode("utf-8")
    pieces = split_at(stream, [rng.randint(0, len(stream)) for _ in range(rng.randint(0, 6))])

    ours = [(e.event, e.data) for e in parse(pieces)]
    theirs = [(e.event, e.data) for e in sseclient.SSEClient(iter(pieces)).events()]
    assert ours == theirs


def test_an_empty_read_between_cr_and_lf_does_not_split_the_crlf():
    assert parse([b"event: ping\r", b"", b"\ndata: x\r\n\r\n"]) == [
        ServerSentEvent(event="ping", data="x")
    ]


# What earlier reads left (a field, a data line, half a line) shapes the
# event that a later read, holding one whole "data: ..." event, completes.


def test_a_one_event_read_after_an_event_field_keeps_the_type():
    parser = SSEParser()
    assert parser.feed(b"event: delta\n") == []
    assert parser.feed(b"data: x\n\n") == [ServerSentEvent(event="delta", data="x")]


def test_a_one_event_read_after_a_data_line_joins_with_it():
    parser = SSEParser()
    assert parser.feed(b"data: a\n") == []
    assert parser.feed(b"data: b\n\n") == [ServerSentEvent(data="a\nb")]


def test_a_one_event_read_completes_an_unterminated_line():
    parser = SSEParser()
    assert parser.feed(b"data: a") == []
    assert parser.feed(b"data: b\n\n") == [ServerSentEvent(data="adata: b")]


def test_a_one_event_read_after_a_retry_field_carries_the_retry():
    parser = SSEParser()
    assert parser.feed(b"retry: 50\n") == []
    assert parser.feed(b"data: x\n\n") == [ServerSentEvent(data="x", retry=50)]


def test_a_one_event_read_with_a_cr_inside_splits_there():
    assert parse([b"data: x\n\n", b"data: a\rdata: b\n\n"]) == [
        ServerSentEvent(data="x"),
        ServerSentEvent(data="a\nb"),
    ]


def test_a_one_event_read_carries_the_last_event_id():
    assert parse([b"id: 7\ndata: a\n\n", b"data: b\n\n"]) == [
        ServerSentEvent(data="a", id="7"),
        ServerSentEvent(data="b", id="7"),
    ]


def test_a_one_event_read_over_the_line_limit_is_refused():
    parser = SSEParser(max_line_bytes=16)
    parser.feed(b"data: ok\n\n")
    with pytest.raises(StreamError, match="line of over"):
        parser.feed(b"data: " + b"x" * 20 + b"\n\n")


def test_a_one_event_read_with_invalid_utf8_gets_the_replacement_character():
    assert parse([b"data: a\n\n", b"data: \xff\n\n"])[1] == ServerSentEvent(data="\ufffd")


# An event open at the end of one read, finished by the next.


def test_an_event_left_open_at_the_end_of_a_read_is_finished_by_the_next():
    assert [e.data for e in parse([b"data: a\n\ndata: b\n", b"\ndata: c\n\n"])] == ["a", "b", "c"]


def test_an_open_event_written_without_the_space_keeps_its_data():
    assert [e.data for e in parse([b"data:x\n", b"\ndata: y\n\n"])] == ["x", "y"]


def test_an_open_event_with_two_data_lines_joins_them():
    assert [e.data for e in parse([b"data: a\ndata: b\n", b"\ndata: c\n\n"])] == ["a\nb", "c"]


def test_extra_blank_lines_between_events_dispatch_nothing_more(feed):
    assert [e.data for e in feed(b"data: a\n\n\n\ndata: b\n\n")] == ["a", "b"]


def test_a_data_line_with_its_own_leading_space_keeps_it(feed):
    assert [e.data for e in feed(b"data:  a\n\ndata: b\n\n")] == [" a", "b"]


def test_an_open_event_over_the_size_limit_is_refused_in_one_read():
    parser = SSEParser(max_event_bytes=10)
    with pytest.raises(StreamError, match="event of over 20 bytes"):
        parser.feed(b"data: a\n\ndata: " + b"x" * 20 + b"\n")


# -- any bytes, any cuts: the three feeds agree -------------------------------

_wire_bytes = st.lists(
    # Field names, separators, line ends, a BOM, multi-byte and invalid UTF-8, NUL.
    st.sampled_from(
        [
            b"data",
            b"event",
            b"id",
            b"retry",
            b":",
            b" ",
            b"x",
            b"5",
            b"\r",
            b"\n",
            b"\r\n",
            b"\xef\xbb\xbf",
            b"\xe4\xbd\xa0",
            b"\xe2\x80\xa8",
            b"\xff",
            b"\x00",
        ]
    ),
    max_size=40,
).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(_wire_bytes, st.lists(st.integers(0, 200), max_size=8))
def test_events_do_not_depend_on_where_the_reads_were_cut(stream, points):
    expected = parse(whole(stream))
    assert parse(byte_by_byte(stream)) == expected
    assert parse(random_splits(stream, seed=len(stream))) == expected
    assert parse(split_at(stream, points)) == expected
