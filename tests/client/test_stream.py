"""Streams: the pure decoder, and the Stream handle against real sockets."""

from __future__ import annotations

import json
import threading
import time

import pytest

import rawchat
from rawchat.client.stream import Stream
from rawchat.errors import (
    APIConnectionError,
    APITimeoutError,
    IncompleteStreamError,
    InvalidResponseError,
    RateLimitError,
    StreamError,
)
from rawchat.policies import Fallback, Policies
from rawchat.protocol.chat_stream import ChatStreamDecoder
from rawchat.protocol.http import Headers
from rawchat.simulator import Simulator

from ..conftest import KEY
from ..feeds import FEEDS
from ..raw_server import RawServer

HI = [{"role": "user", "content": "hi"}]


def frame(obj) -> bytes:
    return b"data: " + json.dumps(obj, ensure_ascii=False).encode() + b"\n\n"


def delta(content=None, finish=None, **fields):
    if content is not None:
        fields["content"] = content
    return frame(
        {
            "id": "c1",
            "model": "m",
            "choices": [{"index": 0, "delta": fields, "finish_reason": finish}],
        }
    )


STREAM = (
    delta(role="assistant", content="")
    + b": keep-alive\n\n"
    + delta("你")
    + delta("好")
    + delta(finish="stop")
    + frame(
        {
            "id": "c1",
            "choices": [],
            "usage": {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6},
        }
    )
    + b"data: [DONE]\n\n"
)


@pytest.mark.parametrize("split", FEEDS, ids=lambda f: f.__name__)
def test_the_decoder_assembles_a_stream_fed_any_way(split):
    decoder = ChatStreamDecoder()
    texts = [c.content for piece in split(STREAM) for c in decoder.feed(piece)]
    done = decoder.close()
    assert "".join(texts) == "你好"
    assert (done.content, done.finish_reason, done.usage.total_tokens) == (
        "你好",
        "stop",
        6,
    )


def test_a_stream_without_done_or_finish_reason_is_incomplete_with_the_partial_text():
    decoder = ChatStreamDecoder()
    decoder.feed(delta("The answer is"))
    with pytest.raises(
        IncompleteStreamError, match="ended after 1 events without \\[DONE\\]"
    ) as caught:
        decoder.close()
    assert caught.value.partial.content == "The answer is"


def test_a_finish_reason_without_done_is_complete():
    decoder = ChatStreamDecoder()
    decoder.feed(delta("ok") + delta(finish="stop"))
    assert decoder.close().content == "ok"


def test_done_without_finish_reason_is_complete():
    decoder = ChatStreamDecoder()
    decoder.feed(delta("ok") + b"data: [DONE]\n\n")
    assert decoder.close().finish_reason is None


def test_an_empty_stream_is_incomplete():
    with pytest.raises(IncompleteStreamError, match="after no events"):
        ChatStreamDecoder().close()


def test_an_error_mid_stream_carries_what_arrived_before_it():
    decoder = ChatStreamDecoder()
    with pytest.raises(StreamError, match="server_error happened") as caught:
        decoder.feed(delta("half") + frame({"error": {"message": "server_error happened"}}))
    assert caught.value.partial.content == "half"


# -- the Stream handle, against the simulator ---------------------------------


def test_text_yields_deltas_that_add_up_to_the_completion(client):
    with client.stream(HI, model="gpt-4o-mini") as stream:
        texts = list(stream.text())
    assert len(texts) > 5
    assert "".join(texts) == stream.completion.content
    assert stream.completion.content.endswith('your last message was: "hi".')
    assert stream.completion.usage.prompt_tokens == 8
    assert stream.completion.request_id.startswith("req_sim")
    assert stream.time_to_first_delta is not None


def test_completion_reads_the_rest_of_an_unread_stream(client):
    stream = client.stream(HI, model="gpt-4o-mini")
    assert stream.completion.finish_reason == "stop"


def test_streamed_tool_call_arguments_are_joined(client):
    tools = [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "parameters": {
                    "type": "object",
                    "properties": {"query": {"type": "string"}},
                    "required": ["query"],
                },
            },
        }
    ]
    with client.stream(
        [{"role": "user", "content": "Paris weather"}], model="gpt-4o-mini", tools=tools
    ) as stream:
        assert list(stream.text()) == []
    call = stream.completion.tool_calls[0]
    assert (call.id, call.function.name, call.function.arguments) == (
        "call_sim_0001",
        "lookup",
        '{"query": "Paris weather"}',
    )
    assert stream.completion.finish_reason == "tool_calls"


def test_streamed_reasoning_is_assembled_apart_from_content(client):
    with client.stream(HI, model="deepseek-reasoner") as stream:
        text = "".join(stream.text())
    assert (
        stream.completion.reasoning == "The user wrote 2 characters. I will describe the request."
    )
    assert "The user wrote" not in text


def test_breaking_early_releases_the_connection_for_the_next_call(client, sim):
    for _ in range(12):  # more than the pool holds
        with client.stream(HI, model="gpt-4o-mini") as stream:
            for _text in stream.text():
                break
    assert client.chat(HI, model="gpt-4o-mini").finish_reason == "stop"
    assert sim.request_count == 13


def test_a_stream_error_status_is_raised_on_entering(client):
    with pytest.raises(rawchat.NotFoundError, match="does not exist"):
        with client.stream(HI, model="no-such-model"):
            pass


# -- misbehaving servers ------------------------------------------------------

SSE_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"


def raw_client(server, **kwargs):
    return rawchat.Client(KEY, server.base_url, clock=rawchat.Clock(sleep=lambda s: None), **kwargs)


def test_a_truncated_stream_raises_incomplete_with_the_partial_text():
    with RawServer(
        lambda conn, req: conn.sendall(SSE_HEAD + delta("The capital of France is"))
    ) as server, raw_client(server).stream(HI, model="m") as stream:
        with pytest.raises(IncompleteStreamError) as caught:
            "".join(stream.text())
    assert caught.value.partial.content == "The capital of France is"


def test_an_error_event_mid_stream_raises_stream_error():
    body = (
        delta("so far")
        + b'event: error\ndata: {"error": {"message": "overloaded", "code": "busy"}}\n\n'
    )
    with RawServer(lambda conn, req: conn.sendall(SSE_HEAD + body)) as server:
        with pytest.raises(StreamError, match="overloaded") as caught:
            raw_client(server).stream(HI, model="m").completion
    assert (caught.value.code, caught.value.partial.content) == ("busy", "so far")


def test_a_stream_cut_before_any_content_is_retried():
    def script(conn, request):
        if len(server.requests) == 1:
            conn.sendall(
                SSE_HEAD + delta(role="assistant", content="")
            )  # then the connection drops
            conn.shutdown(2)
            return
        conn.sendall(SSE_HEAD + STREAM)

    with RawServer(script) as server:
        stream = raw_client(server).stream(HI, model="m")
        assert "".join(stream.text()) == "你好"
    assert len(server.requests) == 2
    assert stream.completion.retries_taken == 1


def test_bad_messages_are_refused_when_the_stream_is_made_not_when_it_is_read(client, sim):
    orphan = [{"role": "tool", "tool_call_id": "call_x", "content": "42"}]
    with pytest.raises(rawchat.errors.InvalidRequestError, match="call_x"):
        client.stream(orphan, model="gpt-4o-mini")
    assert sim.request_count == 0


def test_on_complete_gets_the_answer_once_the_stream_ends(client):
    finished = []
    with client.stream(HI, model="gpt-4o-mini", on_complete=finished.append) as stream:
        assert finished == []
        text = "".join(stream.text())
    assert [(done.content, done.degraded) for done in finished] == [(text, False)]


CHUNKED_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
)


def chunks_then_a_cut(piece):
    """A script: ``piece`` in one chunk, then a chunk that breaks off."""
    return lambda conn, request: conn.sendall(
        CHUNKED_HEAD + b"%x\r\n%s\r\n" % (len(piece), piece) + b"ff\r\ndata: cut"
    )


def test_a_stream_cut_before_any_content_falls_back_once_its_retries_are_spent(sim):
    finished = []
    policies = Policies(fallbacks=[Fallback(base_url=sim.base_url, api_key=KEY)])
    with RawServer(chunks_then_a_cut(delta(role="assistant", content=""))) as server:
        client = raw_client(server, max_retries=1, policies=policies)
        with client.stream(HI, model="gpt-4o-mini", on_complete=finished.append) as stream:
            text = "".join(stream.text())
    assert len(server.requests) == 2 and sim.request_count == 1
    assert text.startswith("Hello from the rawchat simulator.")
    assert stream.completion.degraded and finished[0].degraded


def test_a_drop_after_content_reached_the_caller_is_not_retried():
    with RawServer(chunks_then_a_cut(delta("partial answer"))) as server, Simulator() as fallback:
        policies = Policies(fallbacks=[Fallback(base_url=fallback.base_url, api_key=KEY)])
        seen = []
        with pytest.raises(APIConnectionError, match="broke off") as caught:
            for text in raw_client(server, policies=policies).stream(HI, model="m").text():
                seen.append(text)
        assert fallback.request_count == 0  # nor falls back: the caller has half an answer
    assert seen == ["partial answer"]
    assert len(server.requests) == 1
    assert caught.value.partial.content == "partial answer"


def test_a_json_answer_to_a_stream_request_is_yielded_whole():
    body = json.dumps(
        {
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "whole"},
                    "finish_reason": "stop",
                }
            ]
        }
    ).encode()
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(
        body
    )
    with RawServer(lambda conn, req: conn.sendall(head + body)) as server:
        with raw_client(server).stream(HI, model="m") as stream:
            assert list(stream.text()) == ["whole"]
    assert stream.completion.finish_reason == "stop"


def test_an_html_page_answering_a_stream_is_a_typed_error():
    body = b"<html><title>Login</title></html>"
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n" % len(body)
    with RawServer(lambda conn, req: conn.sendall(head + body)) as server, pytest.raises(
        InvalidResponseError,
        match="expected an event stream, got 33 bytes of text/html",
    ), raw_client(server).stream(HI, model="m"):
        pass


def test_a_stall_mid_stream_ends_at_the_read_timeout():
    def script(conn, request):
        conn.sendall(SSE_HEAD + delta("wait for it"))
        time.sleep(2)

    with RawServer(script) as server:
        started = time.monotonic()
        with pytest.raises(APITimeoutError):
            "".join(raw_client(server, timeout=(1, 0.3)).stream(HI, model="m").text())
    assert time.monotonic() - started < 1.5


def test_a_429_before_the_stream_is_retried_then_raised_with_its_history():
    def script(conn, request):
        conn.sendall(
            b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nretry-after-ms: 10\r\n"
            b"Content-Length: 33\r\nConnection: close\r\n\r\n"
            + b'{"error": {"message": "slow down"}}'[:33]
        )

    with RawServer(script) as server, pytest.raises(RateLimitError) as caught:
        raw_client(server).stream(HI, model="m").completion
    assert len(server.requests) == 3
    assert caught.value.attempts == (
        (1, "429", 0.01),
        (2, "429", 0.01),
        (3, "429", 0.0),
    )


def test_iter_feed_hands_over_each_chunk_before_decoding_the_next():
    decoder = ChatStreamDecoder()
    chunks = decoder.iter_feed(delta("a") + delta("b") + delta("c"))
    assert next(chunks).content == "a"
    # Decoded one at a time: a read's JSON objects are never all alive at once.
    assert decoder.accumulator.chunks == 1
    assert [c.content for c in chunks] == ["b", "c"]
    assert decoder.accumulator.chunks == 3


def test_a_deeply_nested_json_answer_to_a_stream_request_is_a_typed_error():
    body = b"[" * 100_000
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(
        body
    )
    with RawServer(lambda conn, req: conn.sendall(head + body)) as server, pytest.raises(
        InvalidResponseError, match="answered the stream request with malformed JSON"
    ), raw_client(server).stream(HI, model="m") as stream:
        list(stream.text())


# -- [DONE] ends the stream; a stall says what arrived --------------------------


class Source:
    """A response whose body is ``reads``, after which reading raises ``then``."""

    headers = Headers([("content-type", "text/event-stream")])
    status_code = 200
    url = "https://api.example.com/v1/chat/completions"

    def __init__(self, reads, then, before_then=lambda: None):
        self.reads, self.then, self.before_then = reads, then, before_then
        self.closed = False

    def iter_bytes(self):
        yield from self.reads
        self.before_then()
        raise self.then

    def finish(self):
        # The transport's finish() drains what has arrived, then closes.
        self.close()

    def close(self):
        self.closed = True


def stream_of(source, clock=lambda: 0.0):
    def opener(failure):
        if failure is not None:
            raise failure  # no retries here
        return source, 0

    return Stream(opener, clock=clock)


def test_done_ends_the_stream_at_once_and_releases_the_connection():
    source = Source([STREAM + delta(" and more")], then=AssertionError("read past [DONE]"))
    with stream_of(source) as stream:
        assert "".join(stream.text()) == "你好"
        assert source.closed
    assert (stream.completion.content, stream.completion.usage.total_tokens) == ("你好", 6)


def test_a_server_holding_the_connection_open_after_done_does_not_time_the_answer_out():
    release = threading.Event()

    def script(conn, request):
        conn.sendall(SSE_HEAD + STREAM + delta(" and more"))
        release.wait(10)  # open and silent until the test is over

    with RawServer(script) as server:
        try:
            with raw_client(server, timeout=(2, 0.5)).stream(HI, model="m") as stream:
                text = "".join(stream.text())
        finally:
            release.set()
    assert (text, stream.completion.finish_reason) == ("你好", "stop")


def test_a_stall_after_events_says_how_many_arrived_and_keeps_the_partial_answer():
    now = [100.0]

    def later():
        now[0] += 0.3

    cause = APITimeoutError("api.example.com sent nothing in 0.3 s (read timeout)")
    events = delta(role="assistant", content="") + delta("word " * 9) * 9
    source = Source([events], then=cause, before_then=later)
    with pytest.raises(APITimeoutError) as caught:
        "".join(stream_of(source, clock=lambda: now[0]).text())
    assert caught.value.message == (
        "the stream from api.example.com stalled: nothing for 0.3 s after 10 events "
        "(405 characters of the answer)"
    )
    assert "overloaded" in caught.value.hint and "proxy" in caught.value.hint
    assert caught.value.__cause__ is cause
    assert caught.value.partial.content == "word " * 81
    assert source.closed


def test_a_stall_message_names_the_host_without_credentials_in_the_url():
    source = Source([delta("x")], then=APITimeoutError("read timeout"))
    source.url = "https://user:secret@gateway.example:8443/v1/chat/completions"
    with pytest.raises(APITimeoutError) as caught:
        stream_of(source).completion
    assert caught.value.message == (
        "the stream from gateway.example:8443 stalled: nothing for 0 s after 1 events "
        "(1 characters of the answer)"
    )


def test_a_timeout_before_any_event_keeps_the_transports_words():
    cause = APITimeoutError("api.example.com sent nothing in 0.3 s (read timeout)")
    with pytest.raises(APITimeoutError) as caught:
        stream_of(Source([b": keep-alive\n\n"], then=cause)).completion
    assert caught.value is cause


def test_streams_one_after_another_share_one_connection(sim):
    with rawchat.Client(KEY, sim.base_url) as client:
        for _ in range(3):
            with client.stream(HI, model="gpt-4o-mini") as stream:
                "".join(stream.text())
        pools = client.transport.session.get_adapter(sim.base_url).poolmanager.pools
        # urllib3's pool container refuses plain iteration; keys() is its public list.
        assert [pools[key].num_connections for key in pools.keys()] == [1]  # noqa: SIM118
