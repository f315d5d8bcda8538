"""The Responses API through the client: respond(), respond_stream(), stored responses."""

from __future__ import annotations

import io

import pytest
import responses as responses_mock

import rawchat
from rawchat.client.trace import TextTrace
from rawchat.errors import (
    IncompleteStreamError,
    InvalidRequestError,
    NotFoundError,
    StreamError,
)
from rawchat.policies import Fallback, Policies, UsageMeter
from rawchat.protocol.completion import Usage
from rawchat.protocol.responses import ResponseUsage

from ..conftest import KEY

HELLO = (
    "Hello from the rawchat simulator. I received 1 message (about 8 prompt tokens); "
    'your last message was: "hi".'
)
TOOL = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}
USAGE = ResponseUsage(input_tokens=8, output_tokens=18, total_tokens=26)


def faulty(fault):
    return {"X-Rawchat-Fault": fault}


def test_respond_returns_the_assembled_response(client):
    response = client.respond("hi", model="gpt-4o-mini")
    assert (response.id, response.status, response.model) == (
        "resp_sim000001",
        "completed",
        "gpt-4o-mini",
    )
    assert response.output_text == HELLO
    assert response.usage == USAGE
    assert response.request_id == "req_sim000001"
    assert response.retries_taken == 0


def test_a_stream_yields_text_as_it_arrives_and_assembles_the_same_response(client):
    with client.respond_stream("hi", model="gpt-4o-mini") as stream:
        pieces = list(stream.text())
    assert pieces[:3] == ["Hello", " from", " the"]
    assert "".join(pieces) == HELLO
    assert stream.response.output_text == HELLO
    assert stream.response.usage == USAGE
    assert stream.response.status == "completed"
    assert stream.time_to_first_delta is not None


def test_events_are_every_named_event_in_order(client):
    with client.respond_stream("hi", model="gpt-4o-mini") as stream:
        types = [event.type for event in stream.events()]
    assert types[:5] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
    ]
    assert types[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]


def test_a_function_call_and_its_answer_go_round_trip(client):
    first = client.respond("Paris", model="gpt-4o-mini", tools=[TOOL])
    (call,) = first.tool_calls
    assert (call.name, call.arguments) == ("get_weather", '{"city": "Paris"}')
    with client.respond_stream(
        [*first.output, call.answer("sunny")], model="gpt-4o-mini", tools=[TOOL]
    ) as stream:
        text = "".join(stream.text())
    assert text == "The tool returned: sunny"


def test_a_streamed_function_call_is_assembled_from_its_argument_deltas(client):
    with client.respond_stream("Paris", model="gpt-4o-mini", tools=[TOOL]) as stream:
        deltas = [e.delta for e in stream if e.type.endswith("arguments.delta")]
    assert "".join(deltas) == '{"city": "Paris"}'
    assert stream.response.tool_calls[0].arguments == '{"city": "Paris"}'


def test_a_stored_response_is_retrieved_and_deleted(client):
    made = client.respond("hi", model="gpt-4o-mini")
    assert client.retrieve_response(made.id).output_text == HELLO
    assert client.delete_response(made.id) == {
        "id": made.id,
        "object": "response",
        "deleted": True,
    }
    with pytest.raises(NotFoundError) as caught:
        client.retrieve_response(made.id)
    assert caught.value.hint.startswith("no stored response has that id here")


def test_a_response_id_must_be_a_non_empty_string(client):
    with pytest.raises(InvalidRequestError):
        client.retrieve_response("  ")


def test_an_unknown_previous_response_id_gets_the_responses_hint(client):
    with pytest.raises(NotFoundError) as caught:
        client.respond("hi", model="gpt-4o-mini", previous_response_id="resp_gone")
    assert caught.value.code == "previous_response_not_found"
    assert caught.value.hint.startswith("previous_response_id names a response")


def test_previous_response_id_bills_the_whole_chain_as_input(client):
    first = client.respond("hi", model="gpt-4o-mini")
    second = client.respond("again", model="gpt-4o-mini", previous_response_id=first.id)
    assert second.previous_response_id == first.id
    assert second.usage.input_tokens > first.usage.input_tokens + first.usage.output_tokens


def test_stream_is_not_a_parameter_of_respond(client):
    with pytest.raises(InvalidRequestError) as caught:
        client.respond("hi", model="gpt-4o-mini", stream=True)
    assert caught.value.hint == "call client.respond_stream(...) for a streamed answer"


def test_a_cut_before_any_content_is_retried(client):
    with client.respond_stream(
        "hi", model="gpt-4o-mini", extra_headers=faulty("truncate=3")
    ) as stream:
        assert "".join(stream.text()) == HELLO
    assert stream.response.retries_taken == 1


def test_a_cut_after_content_is_incomplete_with_the_text_so_far(client):
    seen = []
    with pytest.raises(IncompleteStreamError) as caught:
        with client.respond_stream(
            "hi", model="gpt-4o-mini", extra_headers=faulty("no-terminal")
        ) as stream:
            seen.extend(stream.text())
    assert "".join(seen) == HELLO
    assert caught.value.partial.output_text == HELLO
    assert caught.value.partial.status == "in_progress"


@pytest.mark.parametrize("fault", ["failed", "error-event", "error-mid"])
def test_a_failed_response_or_an_error_event_raises_stream_error_with_the_code(client, fault):
    with pytest.raises(StreamError) as caught:
        with client.respond_stream("hi", model="gpt-4o-mini", extra_headers=faulty(fault)) as s:
            "".join(s.text())
    assert caught.value.code == "server_error"
    assert caught.value.partial.output_text == "Hello"


def test_sequence_gaps_and_a_trailing_done_are_not_fatal(client):
    with client.respond_stream(
        "hi", model="gpt-4o-mini", extra_headers=faulty("gaps,trailing-done")
    ) as stream:
        assert "".join(stream.text()) == HELLO
    assert stream.response.sequence_gaps == (4,)
    assert stream.gaps == (4,)


def test_a_whole_json_answer_to_a_stream_request_still_yields_its_text(client):
    with client.respond_stream(
        "hi", model="gpt-4o-mini", extra_headers=faulty("json-stream")
    ) as stream:
        assert list(stream.text()) == [HELLO]
    assert stream.response.usage == USAGE


def test_reported_usage_goes_to_the_meter_as_prompt_and_completion_tokens(sim):
    meter = UsageMeter()
    with rawchat.Client(KEY, sim.base_url, policies=Policies(usage=meter)) as client:
        client.respond("hi", model="gpt-4o-mini")
        with client.respond_stream("hi", model="gpt-4o-mini") as stream:
            "".join(stream.text())
    assert (meter.total.prompt_tokens, meter.total.completion_tokens) == (16, 36)
    assert client.calibration.correct("gpt-4o-mini", 100) > 0


def test_a_fallback_answers_when_the_primary_fails_and_is_marked_degraded(sim):
    policies = Policies(fallbacks=(Fallback(model="gpt-4o"),))
    with rawchat.Client(
        KEY, sim.base_url, max_retries=0, policies=policies,
        clock=rawchat.Clock(sleep=lambda s: None),
    ) as client:  # fmt: skip
        response = client.respond("hi", model="gpt-4o-mini", extra_headers=faulty("503"))
    assert (response.model, response.degraded) == ("gpt-4o", True)


@responses_mock.activate
def test_an_endpoint_without_responses_gets_a_hint_to_use_chat():
    responses_mock.add(
        responses_mock.POST,
        "http://llm.local/v1/responses",
        json={"error": {"message": "Not Found", "type": "invalid_request_error"}},
        status=404,
    )
    client = rawchat.Client(KEY, "http://llm.local/v1", max_retries=0)
    with pytest.raises(NotFoundError) as caught:
        client.respond("hi", model="llama3")
    assert "has no Responses API" in caught.value.hint
    assert "client.chat" in caught.value.hint


def test_a_text_trace_shows_each_named_event_on_its_own_line(sim):
    out = io.StringIO()
    with rawchat.Client(KEY, sim.base_url, trace=TextTrace(out)) as client:
        with client.respond_stream("hi", model="gpt-4o-mini") as stream:
            "".join(stream.text())
    lines = [line for line in out.getvalue().splitlines() if "event: response." in line]
    assert len(lines) == 26
    assert all(line.count("event: response.") == 1 for line in lines)
    assert "event: response.completed\\ndata: " in lines[-1]


def test_the_official_sdk_sees_what_rawchat_sees(sim):
    openai = pytest.importorskip("openai")
    sdk = openai.OpenAI(api_key=KEY, base_url=sim.base_url, max_retries=0)
    with rawchat.Client(KEY, sim.base_url) as client:
        for input, tools in (("hi", []), ("Paris", [TOOL])):
            ours = client.respond(input, model="gpt-4o-mini", tools=tools)
            theirs = sdk.responses.create(model="gpt-4o-mini", input=input, tools=tools)
            _same(ours, theirs)
            with client.respond_stream(input, model="gpt-4o-mini", tools=tools) as stream:
                ours_events = [event.type for event in stream.events()]
            events = list(
                sdk.responses.create(model="gpt-4o-mini", input=input, tools=tools, stream=True)
            )
            assert [event.type for event in events] == ours_events
            _same(stream.response, events[-1].response)


def _same(ours, theirs):
    assert ours.output_text == theirs.output_text
    # Each call made its own response, so only the call ids' shape agrees.
    assert [(c.call_id[:9], c.name, c.arguments) for c in ours.tool_calls] == [
        (item.call_id[:9], item.name, item.arguments)
        for item in theirs.output
        if item.type == "function_call"
    ]
    usage = theirs.usage
    assert (ours.usage.input_tokens, ours.usage.output_tokens, ours.usage.total_tokens) == (
        usage.input_tokens,
        usage.output_tokens,
        usage.total_tokens,
    )


def test_usage_of_either_api_is_counted_in_chat_terms():
    from rawchat.client.client import _chat_usage

    assert _chat_usage(ResponseUsage(3, 4, 7, 1, 2)) == Usage(3, 4, 7, 1, 2)
    assert _chat_usage(Usage(1, 2, 3)) == Usage(1, 2, 3)
    assert _chat_usage(None) is None
