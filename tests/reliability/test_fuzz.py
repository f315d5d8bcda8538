"""Fuzzing the parsers: arbitrary bytes and JSON in, only rawchat's documented errors out.

``RAWCHAT_FUZZ_EXAMPLES`` raises the number of examples for a long run.
"""

from __future__ import annotations

import json
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rawchat.errors import InvalidResponseError, StreamError
from rawchat.protocol.chat_stream import ChatStreamDecoder
from rawchat.protocol.chunks import interpret
from rawchat.protocol.http import HTTPResponse
from rawchat.protocol.response import error_from_response, parse_completion
from rawchat.protocol.sse import ServerSentEvent, SSEParser

EXAMPLES = int(os.environ.get("RAWCHAT_FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)


# Shapes close to real chunks and completions, with any JSON in every slot,
# so the fuzzer reaches deep into the interpreters.
def _shaped(**fields):
    return st.fixed_dictionaries(
        {}, optional={name: value | json_values for name, value in fields.items()}
    )


_tool_call = _shaped(
    index=st.integers(0, 3),
    id=st.text(max_size=5),
    type=st.just("function"),
    function=_shaped(name=st.text(max_size=5), arguments=st.text(max_size=10)),
)
_delta = _shaped(
    role=st.just("assistant"),
    content=st.text(max_size=10),
    reasoning_content=st.text(max_size=5),
    reasoning=st.text(max_size=5),
    refusal=st.text(max_size=5),
    tool_calls=st.lists(_tool_call, max_size=3),
)
_usage = _shaped(
    prompt_tokens=st.integers(),
    completion_tokens=st.integers(),
    total_tokens=st.integers(),
    prompt_tokens_details=_shaped(cached_tokens=st.integers()),
    completion_tokens_details=_shaped(reasoning_tokens=st.integers()),
)
_choice = _shaped(
    index=st.integers(0, 3),
    delta=_delta,
    message=_delta,
    finish_reason=st.sampled_from(["stop", "length"]),
)
chunk_like = _shaped(
    id=st.text(max_size=5),
    model=st.text(max_size=5),
    created=st.integers(),
    choices=st.lists(_choice, max_size=3),
    usage=_usage,
    error=json_values,
)


@FUZZ
@given(st.binary(max_size=2000), st.lists(st.integers(0, 2000), max_size=8))
def test_the_sse_parser_takes_any_bytes_cut_anywhere(data, cuts):
    parser = SSEParser(max_line_bytes=512, max_event_bytes=1024)
    points = sorted(set(cuts))
    pieces = [data[a:b] for a, b in zip([0, *points], [*points, len(data)])]
    try:
        for piece in pieces:
            for event in parser.feed(piece):
                assert isinstance(event.data, str)
            assert parser._partial_size <= 512  # memory stays bounded
        parser.close()
    except StreamError:
        pass


@FUZZ
@given(
    st.text(max_size=300) | json_values.map(json.dumps) | chunk_like.map(json.dumps),
    st.sampled_from(["message", "error", "ping"]),
)
def test_the_chunk_interpreter_raises_only_stream_errors(data, event):
    try:
        interpret(ServerSentEvent(event=event, data=data))
    except StreamError:
        pass


@FUZZ
@given(st.lists(chunk_like.map(json.dumps), max_size=6), st.booleans())
def test_the_stream_decoder_raises_only_stream_errors(chunks, done):
    decoder = ChatStreamDecoder()
    body = "".join(f"data: {c}\n\n" for c in chunks) + ("data: [DONE]\n\n" if done else "")
    try:
        decoder.feed(body.encode())
        decoder.close()
    except StreamError:
        pass


@FUZZ
@given(json_values | chunk_like)
def test_the_response_parser_raises_only_invalid_response_errors(data):
    try:
        parse_completion(data)
    except InvalidResponseError:
        pass


@FUZZ
@given(
    st.integers(400, 599),
    st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()),
)
def test_any_error_body_becomes_a_typed_error(status, body):
    error = error_from_response(
        HTTPResponse(status, {"Content-Type": "application/json"}, body, url="http://x/v1")
    )
    assert error.status_code == status and isinstance(error.message, str)
