"""Every simulator fault, through the client: what the user ends up with."""

from __future__ import annotations

import pytest

import rawchat
from rawchat.errors import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    IncompleteStreamError,
    InternalServerError,
    InvalidResponseError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    StreamError,
    UnprocessableEntityError,
)
from rawchat.protocol.http import Headers
from rawchat.protocol.request import encode_json
from rawchat.protocol.sse import SSEParser
from rawchat.simulator import SimRequest
from rawchat.simulator.faults import (
    SPLIT_GAP,
    Drop,
    Fault,
    FaultError,
    Pause,
    parse_faults,
    shape_stream,
)

from ..conftest import KEY

HI = [{"role": "user", "content": "你好"}]
ANSWER = 'Hello from the rawchat simulator. I received 1 message (about 9 prompt tokens); your last message was: "你好".'


# -- the script language ----------------------------------------------------------


def test_a_script_lists_faults_with_values_and_counts():
    assert parse_faults(" 429*2, delay=0.5*, crlf ,truncate=3") == (
        Fault("429", 1.0, 2, "429*2"),
        Fault("delay", 0.5, None, "delay=0.5*"),
        Fault("crlf", None, 1, "crlf"),
        Fault("truncate", 3.0, 1, "truncate=3"),
    )


@pytest.mark.parametrize(
    "script, message",
    [("teapot", "unknown fault 'teapot'; known faults: 400, 401"), ("crlf=2", "takes no value")],
)
def test_a_bad_script_says_what_is_known(script, message):
    with pytest.raises(FaultError, match=message):
        parse_faults(script)


EVENTS = [b"data: role\n\n", b"data: one\n\n", b"data: two\n\n", b"data: [DONE]\n\n"]


@pytest.mark.parametrize(
    "script, steps",
    [
        ("no-done", [b"data: role\n\n", b"data: one\n\n", b"data: two\n\n"]),
        ("truncate=2", [b"data: role\n\n", b"data: one\n\n"]),
        ("drop-after=1", [b"data: role\n\n", Drop()]),
        ("drop-mid-chunk", [b"data: role\n\n", Drop(b"data:")]),
        ("stall=3,no-done", [b"data: role\n\n", b"data: one\n\n", Pause(3.0), b"data: two\n\n"]),
        ("cr,bom,truncate=1", [b"\xef\xbb\xbfdata: role\r\r"]),
        ("keepalive,truncate=2", [b"data: role\n\n", b": keep-alive\n\n", b"data: one\n\n"]),
        ("interval=0.5,truncate=2", [b"data: role\n\n", Pause(0.5), b"data: one\n\n"]),
        ("empty-data,truncate=2", [b"data: role\n\n", b"data:\n\n", b"data: one\n\n"]),
        ("hold-open=3", [*EVENTS, Pause(3.0)]),
        ("hold-open,drop-after=1", [b"data: role\n\n", Drop()]),
        (
            "after-done",
            [
                *EVENTS,
                b'data: {"id": "chatcmpl-sim", "object": "chat.completion.chunk", "choices": '
                b'[{"index": 0, "delta": {"content": " (sent after [DONE])"}, '
                b'"finish_reason": null}]}\n\n',
            ],
        ),
        ("after-done,no-done", [b"data: role\n\n", b"data: one\n\n", b"data: two\n\n"]),
        ("deep-json,truncate=2", [b"data: role\n\n", b"data: " + b"[" * 100_000 + b"\n\n"]),
        (
            "crlf,split,truncate=1",
            [b"data: role\r", Pause(SPLIT_GAP), b"\n\r", Pause(SPLIT_GAP), b"\n"],
        ),
    ],
)
def test_stream_faults_reshape_the_events(script, steps):
    assert shape_stream(EVENTS, parse_faults(script)) == steps


def test_split_cuts_inside_multibyte_characters():
    pieces = shape_stream(["data: 你\n\n".encode()], parse_faults("split"))
    assert pieces == [b"data: \xe4", Pause(SPLIT_GAP), b"\xbd\xa0\n\n"]


# -- through the client ---------------------------------------------------------------


@pytest.fixture
def slept():
    return []


@pytest.fixture
def faulty(sim, slept):
    client = rawchat.Client(
        KEY,
        sim.base_url,
        clock=rawchat.Clock(sleep=slept.append, random=lambda: 0.5),
        timeout=(2, 2),
    )

    def call(script, operation="chat", **params):
        headers = {"X-Rawchat-Fault": script}
        if operation == "chat":
            return client.chat(HI, model="gpt-4o-mini", extra_headers=headers, **params)
        with client.stream(HI, model="gpt-4o-mini", extra_headers=headers, **params) as stream:
            text = "".join(stream.text())
        assert text == stream.completion.content
        return stream.completion

    yield call
    client.close()


def attempts(sim):
    return sim.requests_by_key["...cdef"]


@pytest.mark.parametrize(
    "script, operation, retries, sleeps",
    [
        ("503*2", "chat", 2, [0.25, 0.5]),
        ("500", "stream", 1, [0.25]),
        ("502", "chat", 1, [0.25]),
        ("409", "chat", 1, [0.25]),
        ("429", "chat", 1, [1.0]),
        ("429=0.2*2", "stream", 2, [0.2, 0.2]),
        ("drop", "chat", 1, [0.25]),
        ("drop", "stream", 1, [0.25]),
        ("delay=0.05", "chat", 0, []),
        ("drop-after=1", "stream", 1, [0.25]),
        ("drop-mid-chunk", "stream", 1, [0.25]),
        ("truncate=1", "stream", 1, [0.25]),
        ("no-done", "stream", 0, []),
        ("keepalive", "stream", 0, []),
        ("crlf", "stream", 0, []),
        ("cr", "stream", 0, []),
        ("bom", "stream", 0, []),
        ("crlf,split,bom", "stream", 0, []),
        ("interval=0.001", "stream", 0, []),
        ("json-stream", "stream", 0, []),
        ("after-done", "stream", 0, []),
        ("hold-open=5", "stream", 0, []),
        ("empty-data,crlf", "stream", 0, []),
        ("deep-json", "chat", 0, []),
    ],
)
def test_faults_the_client_survives(faulty, sim, slept, script, operation, retries, sleeps):
    done = faulty(script, operation)
    assert done.content == ANSWER
    assert done.retries_taken == retries
    assert attempts(sim) == retries + 1
    assert slept == sleeps


@pytest.mark.parametrize(
    "script, operation, error, message, tries",
    [
        ("400", "chat", BadRequestError, "Invalid value for 'temperature'", 1),
        ("401", "chat", AuthenticationError, "Incorrect API key", 1),
        ("403", "stream", PermissionDeniedError, "not supported", 1),
        ("404", "chat", NotFoundError, "does not exist", 1),
        ("422", "chat", UnprocessableEntityError, "Unprocessable", 1),
        ("quota", "chat", RateLimitError, "exceeded your current quota", 1),
        ("500*", "chat", InternalServerError, "had an error", 3),
        ("429=120", "chat", RateLimitError, "Rate limit reached", 1),
        ("html", "chat", InvalidResponseError, "HTML page titled 'Sign in to the network'", 1),
        ("html", "stream", InvalidResponseError, "expected an event stream", 1),
        ("bad-json", "stream", StreamError, "malformed chunk, not JSON", 1),
        ("deep-json", "stream", StreamError, "malformed chunk, nested too deeply", 1),
        ("error-mid", "stream", StreamError, "error while streaming", 1),
        ("error-event", "stream", StreamError, "error while streaming", 1),
        ("drop-after=3", "stream", APIConnectionError, "broke off", 1),
        ("truncate=4", "stream", IncompleteStreamError, "without \\[DONE\\]", 1),
    ],
)
def test_faults_that_end_in_a_typed_error(faulty, sim, script, operation, error, message, tries):
    with pytest.raises(error, match=message):
        faulty(script, operation)
    assert attempts(sim) == tries


def test_a_truncated_stream_keeps_the_partial_answer(faulty):
    with pytest.raises(IncompleteStreamError) as caught:
        faulty("truncate=4", "stream")
    assert caught.value.partial.content == "Hello from the"


def test_a_stall_mid_stream_ends_at_the_read_timeout(sim):
    client = rawchat.Client(KEY, sim.base_url, timeout=(2, 0.3), max_retries=0)
    with pytest.raises(
        APITimeoutError, match=r"stalled: nothing for [0-9.]+ s after 2 events \(5 char"
    ) as caught:
        client.stream(
            HI, model="gpt-4o-mini", extra_headers={"X-Rawchat-Fault": "stall=3"}
        ).completion
    assert caught.value.partial.content == "Hello"


def test_a_429_carries_the_rate_limit_headers(faulty):
    with pytest.raises(RateLimitError) as caught:
        faulty("429=120", "chat")
    headers = caught.value.headers
    assert (
        headers["retry-after"],
        headers["retry-after-ms"],
        headers["x-ratelimit-reset-tokens"],
    ) == ("120", "120000", "6m0s")
    assert caught.value.retry_after == 120.0


def test_the_reasoning_fault_streams_reasoning_first(faulty):
    done = faulty("reasoning", "stream")
    assert done.reasoning == "The user wrote 2 characters. I will describe the request."


def test_tool_calls_stream_as_argument_fragments(sim):
    tools = [
        {
            "type": "function",
            "function": {"name": "lookup", "parameters": {"properties": {"q": {}}}},
        }
    ]
    body = encode_json({"model": "gpt-4o-mini", "stream": True, "messages": HI, "tools": tools})
    request = SimRequest(
        "POST", "/v1/chat/completions", Headers({"Authorization": "Bearer sk-x"}), body
    )
    response = sim.app.handle(request)
    events = SSEParser().feed(b"".join(s for s in response.steps if isinstance(s, bytes)))
    fragments = [e.data for e in events if '"arguments":"' in e.data and '"name"' not in e.data]
    assert len(fragments) == 2  # '{"q": "你好"}' cut into 8-character pieces


def test_faults_in_the_header_are_counted_per_key(sim):
    a = rawchat.Client("sk-key-a-00000000aaaa", sim.base_url, max_retries=0)
    b = rawchat.Client("sk-key-b-00000000bbbb", sim.base_url, max_retries=0)
    fault = {"X-Rawchat-Fault": "503"}
    with pytest.raises(InternalServerError):
        a.chat(HI, model="gpt-4o-mini", extra_headers=fault)
    with pytest.raises(InternalServerError):
        b.chat(HI, model="gpt-4o-mini", extra_headers=fault)
    assert a.chat(HI, model="gpt-4o-mini", extra_headers=fault).content == ANSWER


def test_server_wide_faults_apply_to_every_client():
    from rawchat.simulator import Simulator

    with Simulator(faults="503*2") as sim:
        client = rawchat.Client(KEY, sim.base_url, clock=rawchat.Clock(sleep=lambda s: None))
        assert client.chat(HI, model="gpt-4o-mini").retries_taken == 2


def test_an_unknown_fault_is_a_400_naming_the_header(faulty):
    with pytest.raises(BadRequestError, match="unknown fault 'nope'") as caught:
        faulty("nope")
    assert caught.value.param == "X-Rawchat-Fault"
