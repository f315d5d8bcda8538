"""The chat stream decoder: bytes in, chunks out, the same answer as the plain path."""

from __future__ import annotations

import json

import pytest

from rawchat.errors import StreamError
from rawchat.protocol.chat_stream import ChatStreamDecoder
from rawchat.protocol.response import parse_completion

from ..feeds import FEEDS

MESSAGE = {
    "role": "assistant",
    "content": None,
    "tool_calls": [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"巴黎"}'},
        }
    ],
}
WHOLE = {
    "id": "c1",
    "model": "m",
    "choices": [{"index": 0, "message": MESSAGE, "finish_reason": "tool_calls"}],
}


def frame(obj, line_end: str = "\n") -> bytes:
    return f"data: {json.dumps(obj, ensure_ascii=False)}{line_end}{line_end}".encode()


def chunk(delta, finish=None):
    return {
        "id": "c1",
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def call_delta(**fields):
    return chunk({"tool_calls": [{"index": 0, **fields}]})


# The same answer as WHOLE, streamed: a BOM first, CRLF line ends, a
# keep-alive in the middle, the arguments cut inside a Chinese word.
STREAM = b"".join(
    [
        b"\xef\xbb\xbf",
        frame(chunk({"role": "assistant"}), "\r\n"),
        frame(call_delta(id="call_1", type="function", function={"name": "get_weather"}), "\r\n"),
        frame(call_delta(function={"arguments": '{"city":"巴'}), "\r\n"),
        b": keep-alive\r\n\r\n",
        frame(call_delta(function={"arguments": '黎"}'}), "\r\n"),
        frame(chunk({}, finish="tool_calls"), "\r\n"),
        b"data: [DONE]\r\n\r\n",
    ]
)


@pytest.mark.parametrize("split", FEEDS, ids=lambda f: f.__name__)
def test_a_streamed_answer_assembles_to_what_the_plain_path_reads(split):
    decoder = ChatStreamDecoder()
    for piece in split(STREAM):
        decoder.feed(piece)
    assert decoder.close() == parse_completion(WHOLE)


def test_a_whole_completion_fed_to_the_decoder_is_the_plain_answer():
    decoder = ChatStreamDecoder()
    decoder.feed_completion(WHOLE)
    assert decoder.close() == parse_completion(WHOLE)


def test_a_malformed_chunk_raises_with_the_answer_so_far():
    decoder = ChatStreamDecoder()
    stream = frame(chunk({"content": "half"})) + frame(chunk({"content": 5}))
    with pytest.raises(StreamError, match=r"choices\[0\].delta.content is int") as caught:
        decoder.feed(stream)
    assert caught.value.partial.content == "half"


def test_iter_feed_yields_the_chunks_of_one_read_in_order():
    decoder = ChatStreamDecoder()
    stream = b"".join(frame(chunk({"content": text})) for text in ["a", "b", "c"])
    assert [c.content for c in decoder.iter_feed(stream)] == ["a", "b", "c"]
    assert decoder.events == 3


# After [DONE]: a stray chunk, an error and a second [DONE], none of them read.
AFTER_DONE = (
    frame(chunk({"content": " and more"}))
    + b'event: error\ndata: {"error": {"message": "late"}}\n\n'
    + b"data: [DONE]\n\n"
)


@pytest.mark.parametrize("split", FEEDS, ids=lambda f: f.__name__)
def test_done_makes_the_answer_final_and_what_follows_is_only_counted(split):
    decoder = ChatStreamDecoder()
    stream = frame(chunk({"content": "ok"}, finish="stop")) + b"data: [DONE]\n\n" + AFTER_DONE
    chunks = [c for piece in split(stream) for c in decoder.feed(piece)]
    assert [c.content for c in chunks] == ["ok"]
    assert decoder.close().content == "ok"
    assert (decoder.done, decoder.events, decoder.ignored_events) == (True, 5, 3)
    assert decoder.ignored_bytes == 147  # their data: 111 + 30 + len("[DONE]")


def test_a_stream_with_nothing_after_done_ignores_nothing():
    decoder = ChatStreamDecoder()
    decoder.feed(frame(chunk({"content": "ok"})) + b"data: [DONE]\n\n")
    assert (decoder.ignored_events, decoder.ignored_bytes) == (0, 0)


@pytest.mark.parametrize("split", FEEDS, ids=lambda f: f.__name__)
def test_empty_data_events_between_chunks_are_skipped(split):
    decoder = ChatStreamDecoder()
    stream = (
        frame(chunk({"content": "a"}))
        + b"data:\n\n"
        + b"data\r\n\r\n"
        + frame(chunk({"content": "b"}, finish="stop"))
    )
    for piece in split(stream):
        decoder.feed(piece)
    assert decoder.close().content == "ab"


def test_a_deeply_nested_chunk_raises_stream_error_with_the_answer_so_far():
    decoder = ChatStreamDecoder()
    with pytest.raises(StreamError, match="malformed chunk, nested too deeply") as caught:
        decoder.feed(frame(chunk({"content": "half"})) + b"data: " + b"[" * 100_000 + b"\n\n")
    assert caught.value.partial.content == "half"
