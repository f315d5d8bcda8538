"""The Responses stream decoder: bytes in, events out, one Response at the end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rawchat.errors import IncompleteStreamError, StreamError
from rawchat.protocol.response_events import ResponseEvent, ResponseStreamDecoder
from rawchat.protocol.responses import FunctionToolCall, ResponseUsage

from ..feeds import FEEDS, split_at

DATA = Path(__file__).resolve().parent.parent / "data" / "responses"
OPENAI = (DATA / "openai_text.sse").read_bytes()
OPENROUTER = (DATA / "openrouter_text.sse").read_bytes()
FUNCTION_CALL = (DATA / "function_call.sse").read_bytes()


def decode(pieces):
    decoder = ResponseStreamDecoder()
    events = [event for piece in pieces for event in decoder.feed(piece)]
    return decoder, events, decoder.close()


def frame(obj, event=None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(obj, ensure_ascii=False)}\n\n".encode()


def boundaries(data: bytes):
    """The offsets just after each event's blank line."""
    return [n + 2 for n in range(len(data)) if data[n : n + 2] == b"\n\n"]


@pytest.mark.parametrize("feed", FEEDS)
def test_an_openai_stream_assembles_text_reasoning_and_usage(feed):
    decoder, events, response = decode(feed(OPENAI))
    assert "".join(event.text for event in events) == "你好！巴黎今天晴。"
    assert response.output_text == "你好！巴黎今天晴。"
    assert response.reasoning == "The user greets in Chinese."
    assert (response.id, response.status) == ("resp_0a1b2c", "completed")
    assert response.usage == ResponseUsage(
        input_tokens=12, output_tokens=30, total_tokens=42, reasoning_tokens=20
    )
    assert [event.sequence_number for event in events] == list(range(18))
    assert decoder.gaps == ()


def test_events_are_dispatched_on_the_type_in_their_data():
    _, events, _ = decode([OPENAI])
    assert events[0] == ResponseEvent("response.created", 0)
    assert events[-1].type == "response.completed"
    assert events[4].delta == "The user"
    assert events[4].text == ""  # a reasoning delta is not answer text
    assert (events[11].output_index, events[11].item_id) == (1, "msg_0a1b2c")


@pytest.mark.parametrize("feed", FEEDS)
def test_an_openrouter_stream_reads_without_event_lines_and_ends_before_done(feed):
    decoder, events, response = decode(feed(OPENROUTER))
    assert [event.text for event in events if event.text] == ["4"]
    # The top-level output_text of the wire says "": the message says "4".
    assert response.raw["output_text"] == ""
    assert response.output_text == "4"
    assert response.reasoning == "Two plus two is four."
    assert decoder.saw_done is True
    assert decoder.ignored == 0


def test_an_out_of_order_stream_cut_before_the_end_keeps_each_piece_in_its_item():
    cut = OPENROUTER[: boundaries(OPENROUTER)[-3]]  # before the last item is done
    with pytest.raises(IncompleteStreamError) as caught:
        decode([cut])
    partial = caught.value.partial
    assert partial.status == "in_progress"
    assert [item["type"] for item in partial.output] == ["reasoning", "message"]
    assert partial.output_text == "4"
    assert partial.output[0]["content"] == [
        {"type": "reasoning_text", "text": "Two plus two is four."}
    ]


def test_a_delta_before_its_item_is_announced_is_kept():
    stream = b"".join(
        [
            frame(
                {
                    "type": "response.output_text.delta",
                    "output_index": 0,
                    "item_id": "m",
                    "content_index": 0,
                    "delta": "Hi",
                }
            ),
            frame(
                {
                    "type": "response.output_item.added",
                    "output_index": 0,
                    "item": {"type": "message", "id": "m", "role": "assistant", "content": []},
                }
            ),
            frame(
                {
                    "type": "response.output_text.delta",
                    "item_id": "m",
                    "content_index": 0,
                    "delta": "!",
                }
            ),
        ]
    )
    decoder = ResponseStreamDecoder()
    decoder.feed(stream)
    assert decoder.response().output == (
        {
            "type": "message",
            "id": "m",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Hi!"}],
        },
    )


@pytest.mark.parametrize("feed", FEEDS)
def test_a_stream_without_sequence_numbers_assembles_a_function_call(feed):
    decoder, events, response = decode(feed(FUNCTION_CALL))
    assert {event.sequence_number for event in events} == {None}
    assert decoder.gaps == ()
    assert response.tool_calls == (
        FunctionToolCall(
            call_id="call_kL0P", name="get_weather", arguments='{"city":"Paris"}', id="fc_67e5"
        ),
    )
    assert response.output_text == ""


def test_arguments_are_joined_from_their_deltas_before_the_item_is_done():
    cut = FUNCTION_CALL[: boundaries(FUNCTION_CALL)[5]]  # after the third arguments delta
    with pytest.raises(IncompleteStreamError) as caught:
        decode([cut])
    assert caught.value.partial.tool_calls[0].arguments == '{"city":"Paris"}'


def test_custom_tool_input_is_joined_from_its_deltas():
    start = {
        "type": "custom_tool_call",
        "id": "ctc",
        "call_id": "call_9",
        "name": "execute_sql",
        "input": "",
    }
    stream = b"".join(
        [
            frame({"type": "response.output_item.added", "output_index": 0, "item": start}),
            frame(
                {
                    "type": "response.custom_tool_call_input.delta",
                    "output_index": 0,
                    "item_id": "ctc",
                    "delta": "SELECT",
                    "obfuscation": "aB3",
                }
            ),
            frame(
                {
                    "type": "response.custom_tool_call_input.delta",
                    "output_index": 0,
                    "item_id": "ctc",
                    "delta": " 1;",
                }
            ),
        ]
    )
    decoder = ResponseStreamDecoder()
    decoder.feed(stream)
    assert decoder.response().tool_calls[0].input == "SELECT 1;"


def test_a_refusal_is_assembled_from_its_deltas():
    stream = frame(
        {"type": "response.refusal.delta", "output_index": 0, "content_index": 0, "delta": "No."}
    )
    decoder = ResponseStreamDecoder()
    decoder.feed(stream)
    assert decoder.response().refusal == "No."


def test_a_cut_at_every_event_boundary_is_incomplete_with_the_text_so_far():
    ends = boundaries(OPENAI)
    for cut in [0, *ends[:-1]]:
        decoder = ResponseStreamDecoder()
        texts = [event.text for event in decoder.feed(OPENAI[:cut])]
        with pytest.raises(IncompleteStreamError) as caught:
            decoder.close()
        assert caught.value.partial.output_text == "".join(texts), cut
    assert decode([OPENAI[: ends[-1]]])[2].output_text == "你好！巴黎今天晴。"


def test_the_incomplete_error_says_the_answer_is_truncated():
    with pytest.raises(IncompleteStreamError) as caught:
        decode([b""])
    assert str(caught.value).startswith(
        "the stream ended after no events without response.completed: the answer is truncated"
    )


def test_missing_sequence_numbers_are_recorded_not_fatal():
    events = [
        e
        for e in OPENAI.split(b"\n\n")
        if e and b'"sequence_number":5,' not in e and b'"sequence_number":6,' not in e
    ]
    decoder, _, response = decode([b"\n\n".join(events) + b"\n\n"])
    assert decoder.gaps == (5, 6)
    assert response.sequence_gaps == (5, 6)


def test_events_after_the_terminal_one_are_ignored_and_counted():
    extra = frame({"type": "response.output_text.delta", "output_index": 9, "delta": "late"})
    decoder, events, response = decode([OPENAI + extra + extra + b"data: [DONE]\n\n"])
    assert events[-1].type == "response.completed"
    assert decoder.ignored == 2
    assert response.output_text == "你好！巴黎今天晴。"


def test_an_incomplete_response_is_a_final_answer():
    stream = frame(
        {
            "type": "response.incomplete",
            "response": {
                "id": "r",
                "status": "incomplete",
                "incomplete_details": {"reason": "max_output_tokens"},
                "output": [],
            },
        }
    )
    head = frame(
        {
            "type": "response.output_text.delta",
            "output_index": 0,
            "content_index": 0,
            "delta": "Cut sh",
        }
    )
    _, _, response = decode([head + stream])
    assert response.status == "incomplete"
    assert response.incomplete_reason == "max_output_tokens"
    # The terminal object has no output: the assembled one stands.
    assert response.output_text == "Cut sh"


def test_a_failed_response_raises_with_the_providers_code_and_the_partial():
    head = frame(
        {
            "type": "response.output_text.delta",
            "output_index": 0,
            "content_index": 0,
            "delta": "Half",
        }
    )
    failed = frame(
        {
            "type": "response.failed",
            "response": {
                "id": "r",
                "status": "failed",
                "output": [],
                "error": {"code": "server_error", "message": "The model crashed."},
            },
        },
        event="response.failed",
    )
    with pytest.raises(StreamError) as caught:
        decode([head + failed])
    assert not isinstance(caught.value, IncompleteStreamError)
    assert caught.value.code == "server_error"
    assert "The model crashed." in str(caught.value)
    assert caught.value.partial.status == "failed"
    assert caught.value.partial.output_text == "Half"


def test_an_error_event_raises_with_its_code():
    stream = frame(
        {
            "type": "error",
            "code": "rate_limit_exceeded",
            "message": "Slow down.",
            "param": None,
            "sequence_number": 0,
        },
        event="error",
    )
    with pytest.raises(StreamError) as caught:
        decode([stream])
    assert caught.value.code == "rate_limit_exceeded"
    assert "Slow down." in str(caught.value)


def test_an_event_line_that_disagrees_with_the_data_is_an_error():
    stream = frame({"type": "response.output_text.delta", "delta": "x"}, event="response.completed")
    with pytest.raises(
        StreamError,
        match="the event line says 'response.completed' but the data's type is 'response.output_text.delta'",
    ):
        decode([stream])


@pytest.mark.parametrize(
    "stream, expected",
    [
        (b"data: {not json\n\n", "malformed event, not JSON"),
        (b"data: [1]\n\n", "malformed event, not a JSON object"),
        (b'data: {"delta": "x"}\n\n', "malformed event: an event without a 'type'"),
        (
            b'data: {"type": "response.output_item.added"}\n\n',
            "output_item.added without an item object",
        ),
    ],
)
def test_malformed_events_raise_stream_error(stream, expected):
    with pytest.raises(StreamError, match=expected):
        decode([stream])


def test_unknown_event_types_pass_through():
    stream = frame(
        {"type": "response.web_search_call.searching", "output_index": 0, "item_id": "ws"}
    )
    decoder = ResponseStreamDecoder()
    assert [event.type for event in decoder.feed(stream)] == ["response.web_search_call.searching"]
    assert decoder.response().output == ()


def test_a_whole_response_answering_a_stream_request_is_final():
    decoder = ResponseStreamDecoder()
    decoder.feed_response({"id": "r", "status": "completed", "output": []})
    assert decoder.close().id == "r"


def test_a_split_anywhere_gives_the_same_answer():
    expected = decode([OPENAI])[2]
    for point in range(0, len(OPENAI), 97):
        assert decode(split_at(OPENAI, [point]))[2] == expected
