"""Interpreting the events of a chat stream."""

from __future__ import annotations

import dataclasses
import re

import pytest

from rawchat.errors import InvalidResponseError, StreamError
from rawchat.protocol.chunks import (
    DONE,
    ChoiceDelta,
    Chunk,
    ToolCallDelta,
    chunk_from_object,
    interpret,
)
from rawchat.protocol.completion import Usage
from rawchat.protocol.response import parse_completion
from rawchat.protocol.sse import ServerSentEvent, SSEParser


def data(text: str, event: str = "message") -> ServerSentEvent:
    return ServerSentEvent(event=event, data=text)


def test_done_ends_the_stream():
    assert interpret(data("[DONE]")) is DONE
    assert interpret(data(" [DONE] ")) is DONE


def test_a_content_delta_becomes_a_choice_delta():
    chunk = interpret(
        data(
            '{"id":"c1","model":"m","created":5,"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}'
        )
    )
    assert chunk == Chunk(
        id="c1",
        model="m",
        created=5,
        choices=(ChoiceDelta(0, content="Hi"),),
        raw=chunk.raw,
    )
    assert chunk.content == "Hi"


def test_the_usage_chunk_has_no_choices_and_does_not_crash():
    chunk = interpret(
        data('{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}')
    )
    assert chunk.choices == ()
    assert chunk.usage == Usage(5, 2, 7)
    assert chunk.content == ""


def test_tool_call_fragments_keep_their_index():
    chunk = interpret(
        data(
            '{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_b","type":"function",'
            '"function":{"name":"f","arguments":"{\\"a"}}]}}]}'
        )
    )
    assert chunk.choices[0].tool_calls == (ToolCallDelta(1, "call_b", "function", "f", '{"a'),)


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_both_reasoning_fields_land_in_reasoning(field):
    chunk = interpret(data('{"choices":[{"index":0,"delta":{"' + field + '":"think"}}]}'))
    assert chunk.choices[0].reasoning == "think"


def test_an_error_object_in_a_data_event_raises_with_the_provider_message():
    with pytest.raises(StreamError, match="inside the stream: Internal error") as caught:
        interpret(
            data('{"error":{"message":"Internal error","type":"server_error","code":"oops"}}')
        )
    assert caught.value.code == "oops"


def test_an_error_event_raises_even_with_plain_text_data():
    with pytest.raises(StreamError, match="inside the stream: overloaded"):
        interpret(data("overloaded", event="error"))


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"choices": [', re.escape("malformed chunk, not JSON: '{\"choices\": ['")),
        ("[1, 2]", "not a JSON object"),
        ('{"choices": {"0": 1}}', "'choices' is not a list"),
        ('{"choices": [1]}', r"choices\[0\] is not an object"),
        ('{"choices": [{"delta": "x"}]}', r"choices\[0\].delta is not an object"),
        ('{"choices": [{"delta": {"tool_calls": {}}}]}', ""),  # empty: nothing to read
    ],
)
def test_malformed_chunks_raise_stream_error_not_json_errors(text, message):
    if not message:
        assert interpret(data(text)).choices[0].tool_calls == ()
        return
    with pytest.raises(StreamError, match=message):
        interpret(data(text))


@pytest.mark.parametrize(
    "text",
    ['{"choices": []} ', '{"choices": []}\n', ' {"choices": []}'],
    ids=["trailing space", "trailing newline", "leading space"],
)
def test_a_chunk_with_whitespace_around_it_still_parses(text):
    assert interpret(data(text)).choices == ()


@pytest.mark.parametrize("text", ['{"choices": []}x', '{"choices": []}{}', "{"])
def test_text_after_or_inside_a_chunk_object_is_malformed(text):
    with pytest.raises(StreamError, match="malformed chunk, not JSON"):
        interpret(data(text))


def test_unknown_event_types_are_skipped():
    assert interpret(data('{"x":1}', event="ping")) is None


@pytest.mark.parametrize("capture", [b"data:\n\n", b"data\n\n", b"data: \n\n", b"data:\ndata:\n\n"])
def test_an_event_with_empty_data_is_skipped_not_malformed(capture):
    parser = SSEParser()
    [event] = parser.feed(capture)
    assert interpret(event) is None


def test_an_event_with_only_whitespace_data_is_skipped():
    assert interpret(data(" \t\n ")) is None


@pytest.mark.parametrize(
    "text",
    ["[" * 100_000, '{"choices":' + "[" * 100_000, '{"x":' + '{"x":' * 100_000],
    ids=["arrays", "inside a chunk", "objects"],
)
def test_json_nested_too_deeply_is_a_malformed_chunk_not_a_recursion_error(text):
    with pytest.raises(StreamError, match="malformed chunk, nested too deeply to parse: '"):
        interpret(data(text))


def test_an_error_event_nested_too_deeply_still_raises_stream_error():
    with pytest.raises(StreamError, match="inside the stream: \\[\\[\\["):
        interpret(data("[" * 100_000, event="error"))


def test_a_whole_completion_reads_as_one_big_delta():
    chunk = chunk_from_object(
        {
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "all"},
                    "finish_reason": "stop",
                }
            ]
        }
    )
    assert chunk.choices == (ChoiceDelta(0, role="assistant", content="all", finish_reason="stop"),)


def test_a_choice_with_neither_delta_nor_message_is_an_empty_delta():
    chunk = interpret(data('{"choices":[{"index":0,"finish_reason":"stop"}]}'))
    assert chunk.choices == (ChoiceDelta(0, finish_reason="stop"),)


def test_a_tool_call_fragment_without_a_function_keeps_its_index_and_id():
    chunk = interpret(data('{"choices":[{"delta":{"tool_calls":[{"index":2,"id":"c"}]}}]}'))
    assert chunk.choices[0].tool_calls == (ToolCallDelta(2, id="c"),)


def test_tool_call_arguments_sent_as_an_object_become_json_text():
    chunk = interpret(
        data('{"choices":[{"delta":{"tool_calls":[{"function":{"arguments":{"a":1}}}]}}]}')
    )
    assert chunk.choices[0].tool_calls == (ToolCallDelta(0, arguments='{"a": 1}'),)


def test_a_boolean_index_counts_as_absent():
    chunk = interpret(data('{"choices":[{"index":true,"delta":{"content":"x"}}]}'))
    assert chunk.choices == (ChoiceDelta(0, content="x"),)


@pytest.mark.parametrize(
    "delta, message",
    [
        ('{"content": 5}', r"malformed chunk: choices\[0\].delta.content is int, not text"),
        ('{"refusal": {}}', r"malformed chunk: choices\[0\].delta.refusal is dict, not text"),
        ('{"tool_calls": "x"}', "malformed chunk: tool_calls is not a list"),
        ('{"tool_calls": [1]}', "malformed chunk: a tool call is not an object"),
        ('{"tool_calls": [{"function": 1}]}', "malformed chunk: a tool call's function is not"),
    ],
)
def test_malformed_delta_fields_raise_stream_error_naming_them(delta, message):
    with pytest.raises(StreamError, match=message):
        interpret(data('{"choices": [{"delta": ' + delta + "}]}"))


def test_a_message_and_a_delta_are_read_by_the_same_rules():
    message = {
        "role": "assistant",
        "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
        "reasoning_content": "why",
        "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        ],
    }
    streamed = chunk_from_object({"choices": [{"delta": message, "finish_reason": "stop"}]})
    whole = parse_completion({"choices": [{"message": message, "finish_reason": "stop"}]})
    assert streamed.choices == (
        ChoiceDelta(
            0,
            role="assistant",
            content="ab",
            reasoning="why",
            tool_calls=(ToolCallDelta(0, "c", "function", "f", "{}"),),
            finish_reason="stop",
        ),
    )
    assert (whole.content, whole.reasoning, whole.finish_reason) == ("ab", "why", "stop")
    assert whole.tool_calls[0].to_dict() == message["tool_calls"][0]


def test_the_same_malformed_field_raises_each_paths_own_error():
    body = {"choices": [{"message": {"content": 5}}]}
    with pytest.raises(StreamError, match=r"malformed chunk: choices\[0\].message.content is int"):
        chunk_from_object(body)
    with pytest.raises(InvalidResponseError, match=r"^choices\[0\].message.content is int"):
        parse_completion(body)


@pytest.mark.parametrize(
    "value",
    [ToolCallDelta(0), ChoiceDelta(0), Chunk()],
    ids=["ToolCallDelta", "ChoiceDelta", "Chunk"],
)
def test_chunk_values_are_frozen(value):
    with pytest.raises(dataclasses.FrozenInstanceError):
        value.index = 1  # type: ignore[misc]
