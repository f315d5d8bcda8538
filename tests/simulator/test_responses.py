"""The simulator's Responses API, as pure functions of the request body."""

from __future__ import annotations

import json

from rawchat.protocol.response_events import ResponseStreamDecoder
from rawchat.protocol.responses import parse_response
from rawchat.protocol.sse import SSEParser
from rawchat.simulator.responses import (
    RESPONSE_PATH,
    RESPONSES_PATH,
    ResponsesEndpoint,
    ResponseStore,
)

TOOL = {
    "type": "function",
    "name": "get_weather",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
HELLO = 'Hello from the rawchat simulator. I received 1 message (about 8 prompt tokens); your last message was: "hi".'


def create(endpoint, number=1, **body):
    body.setdefault("model", "gpt-4o-mini")
    return endpoint.create(body, response_id=f"resp_sim{number:06d}", created_at=1700000000)


def streamed(answer):
    decoder = ResponseStreamDecoder()
    events = [event for piece in answer.events for event in decoder.feed(piece)]
    return events, decoder.close()


def test_a_plain_answer_is_a_response_object_describing_the_request():
    answer = create(ResponsesEndpoint(), input="hi")
    body = dict(answer.body)
    assert answer.status == 200 and not answer.streaming
    assert (body["id"], body["object"], body["status"]) == (
        "resp_sim000001",
        "response",
        "completed",
    )
    assert body["output"] == [
        {
            "type": "message",
            "id": "msg_sim000001",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": HELLO, "annotations": []}],
        }
    ]
    assert body["usage"] == {
        "input_tokens": 8,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 18,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 26,
    }
    assert parse_response(body).output_text == HELLO


def test_a_stream_sends_openais_events_in_order_with_event_lines_and_numbers():
    answer = create(ResponsesEndpoint(), input="hi", stream=True)
    parser = SSEParser()
    sse = [event for piece in answer.events for event in parser.feed(piece)]
    data = [json.loads(event.data) for event in sse]
    assert [event.event for event in sse] == [d["type"] for d in data]
    assert [d["sequence_number"] for d in data] == list(range(len(data)))
    types = [d["type"] for d in data]
    assert types[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert set(types[4:-4]) == {"response.output_text.delta"}
    assert types[-5:] == [
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert data[0]["response"]["status"] == "in_progress"
    assert data[0]["response"]["output"] == []


def test_a_streamed_answer_assembles_to_the_plain_one():
    events, response = streamed(create(ResponsesEndpoint(), input="hi", stream=True))
    plain = parse_response(create(ResponsesEndpoint(), input="hi").body)
    assert "".join(event.text for event in events) == HELLO
    assert response == plain


def test_offered_tools_make_a_call_of_the_first_function_tool():
    answer = create(ResponsesEndpoint(), input="Paris", tools=[{"type": "web_search"}, TOOL])
    assert answer.body["output"] == [
        {
            "type": "function_call",
            "id": "fc_sim000001_0",
            "call_id": "call_sim000001_0",
            "name": "get_weather",
            "arguments": '{"city": "Paris"}',
            "status": "completed",
        }
    ]


def test_a_streamed_call_sends_its_arguments_in_fragments():
    answer = create(ResponsesEndpoint(), input="Paris", tools=[TOOL], stream=True)
    events, response = streamed(answer)
    fragments = [e.delta for e in events if e.type == "response.function_call_arguments.delta"]
    assert fragments == ['{"city":', ' "Paris"', "}"]
    assert response.tool_calls[0].arguments == '{"city": "Paris"}'


def test_a_function_call_output_is_answered_with_the_result():
    endpoint = ResponsesEndpoint()
    call = parse_response(create(endpoint, 1, input="Paris", tools=[TOOL]).body).tool_calls[0]
    answer = create(
        endpoint,
        2,
        input=[call.answer("sunny")],
        previous_response_id="resp_sim000001",
        tools=[TOOL],
    )
    assert parse_response(answer.body).output_text == "The tool returned: sunny"


def test_previous_response_id_puts_the_earlier_turn_in_the_context():
    endpoint = ResponsesEndpoint()
    create(endpoint, 1, input="hi")
    answer = create(endpoint, 2, input="and?", previous_response_id="resp_sim000001")
    assert parse_response(answer.body).output_text.startswith(
        "Hello from the rawchat simulator. I received 3 messages (about 44 prompt tokens)"
    )
    assert answer.body["usage"]["input_tokens"] == 44
    assert answer.body["previous_response_id"] == "resp_sim000001"


def test_an_unknown_previous_response_id_is_a_404_with_its_code():
    answer = create(ResponsesEndpoint(), input="hi", previous_response_id="resp_nope")
    assert answer.status == 404
    assert answer.body == {
        "error": {
            "message": "Previous response with id 'resp_nope' not found.",
            "type": "invalid_request_error",
            "param": "previous_response_id",
            "code": "previous_response_not_found",
        }
    }


def test_a_response_made_with_store_false_cannot_be_continued():
    endpoint = ResponsesEndpoint()
    create(endpoint, 1, input="hi", store=False)
    assert create(endpoint, 2, input="x", previous_response_id="resp_sim000001").status == 404


def test_a_stored_response_can_be_retrieved_and_an_unknown_one_is_a_404():
    endpoint = ResponsesEndpoint()
    made = create(endpoint, input="hi")
    assert endpoint.retrieve("resp_sim000001") == made
    missing = endpoint.retrieve("resp_x")
    assert missing.status == 404
    assert missing.body["error"]["message"] == "Response with id 'resp_x' not found."


def test_max_output_tokens_cuts_the_answer_into_an_incomplete_response():
    answer = create(ResponsesEndpoint(), input="hi", max_output_tokens=3, stream=True)
    events, response = streamed(answer)
    assert events[-1].type == "response.incomplete"
    assert response.status == "incomplete"
    assert response.incomplete_reason == "max_output_tokens"
    assert response.output_text == "Hello from the"


def test_a_reasoning_model_streams_a_summary_before_the_message():
    answer = create(ResponsesEndpoint(), model="deepseek-reasoner", input="hi", stream=True)
    events, response = streamed(answer)
    assert [item["type"] for item in response.output] == ["reasoning", "message"]
    assert response.reasoning == "The user wrote 2 characters. I will describe the request."
    assert "response.reasoning_summary_text.delta" in {event.type for event in events}
    assert response.usage.reasoning_tokens == 10


def test_instructions_reach_the_model_as_a_system_message():
    answer = create(ResponsesEndpoint(), input="hi", instructions="Be brief.")
    assert parse_response(answer.body).output_text.startswith(
        "Hello from the rawchat simulator. I received 2 messages (about 15 prompt tokens)"
    )
    assert answer.body["instructions"] == "Be brief."


def test_requests_in_the_chat_shape_are_refused_as_openai_does():
    endpoint = ResponsesEndpoint()
    moved = create(endpoint, messages=[{"role": "user", "content": "hi"}])
    assert (moved.status, moved.body["error"]["param"]) == (400, "messages")
    assert "has moved to 'input'" in moved.body["error"]["message"]
    limit = create(endpoint, input="hi", max_tokens=5)
    assert "has moved to 'max_output_tokens'" in limit.body["error"]["message"]
    tool = create(endpoint, input="hi", tools=[{"type": "function", "function": {"name": "f"}}])
    assert tool.body["error"]["message"] == "Missing required parameter: 'tools[0].name'."


def test_bad_bodies_and_unknown_models_are_refused():
    endpoint = ResponsesEndpoint()
    assert endpoint.create([], response_id="r", created_at=0).status == 400
    assert create(endpoint, input=[]).status == 400
    unknown = create(endpoint, model="gpt-9", input="hi")
    assert (unknown.status, unknown.body["error"]["code"]) == (404, "model_not_found")


def test_the_store_drops_the_oldest_response_past_its_limit():
    store = ResponseStore(limit=2)
    endpoint = ResponsesEndpoint(store=store)
    for number in (1, 2, 3):
        create(endpoint, number, input="hi")
    assert len(store) == 2
    assert "resp_sim000001" not in store
    assert store.conversation("resp_sim000003")[0] == {"role": "user", "content": "hi"}


def test_the_paths_the_app_routes_here():
    assert RESPONSES_PATH.match("/v1/responses")
    assert RESPONSES_PATH.match("/openai/v1/responses")
    assert RESPONSE_PATH.match("/v1/responses/resp_1").group(1) == "resp_1"
    assert not RESPONSES_PATH.match("/v1/chat/completions")


# -- through the app: routes, stored responses, faults ---------------------------

from rawchat.protocol.http import Headers  # noqa: E402
from rawchat.simulator.app import SimRequest, SimulatorApp  # noqa: E402


def post(app, fault="", **body):
    body.setdefault("model", "gpt-4o-mini")
    body.setdefault("input", "hi")
    headers = Headers({"authorization": "Bearer sk-x", "x-rawchat-fault": fault})
    return app.handle(SimRequest("POST", "/v1/responses", headers, json.dumps(body).encode()))


def stream_bytes(app, fault=""):
    answer = post(app, fault, stream=True)
    return b"".join(step for step in answer.steps if isinstance(step, bytes))


def types_of(data):
    return [
        json.loads(e.data).get("type") if e.data != "[DONE]" else "[DONE]"
        for e in SSEParser().feed(data)
    ]


def test_the_app_answers_get_and_delete_of_a_stored_response():
    app = SimulatorApp()
    made = json.loads(post(app).body)
    auth = Headers({"authorization": "Bearer sk-x"})
    path = f"/v1/responses/{made['id']}"
    assert json.loads(app.handle(SimRequest("GET", path, auth)).body)["id"] == made["id"]
    deleted = app.handle(SimRequest("DELETE", path, auth))
    assert json.loads(deleted.body) == {"id": made["id"], "object": "response", "deleted": True}
    assert app.handle(SimRequest("GET", path, auth)).status == 404
    assert app.handle(SimRequest("PUT", path, auth)).status == 405


def test_the_responses_api_asks_for_a_key_like_chat():
    app = SimulatorApp()
    answer = app.handle(SimRequest("POST", "/v1/responses", Headers(), b"{}"))
    assert answer.status == 401


def test_no_terminal_drops_only_the_terminal_event():
    app = SimulatorApp()
    whole, cut = types_of(stream_bytes(app)), types_of(stream_bytes(app, "no-terminal"))
    assert cut == whole[:-1]
    assert whole[-1] == "response.completed"


def test_failed_and_error_faults_end_the_stream_after_the_first_delta():
    app = SimulatorApp()
    assert types_of(stream_bytes(app, "failed"))[-2:] == [
        "response.output_text.delta",
        "response.failed",
    ]
    assert types_of(stream_bytes(app, "error-event"))[-2:] == [
        "response.output_text.delta",
        "error",
    ]
    assert b"event: error\ndata: " in stream_bytes(SimulatorApp(), "error-event")


def test_trailing_done_and_after_done_add_to_the_end():
    app = SimulatorApp()
    assert types_of(stream_bytes(app, "trailing-done"))[-2:] == ["response.completed", "[DONE]"]
    assert types_of(stream_bytes(app, "after-done"))[-2:] == [
        "response.completed",
        "response.output_text.delta",
    ]


def test_gaps_skip_one_sequence_number_at_the_first_delta():
    decoder = ResponseStreamDecoder()
    decoder.feed(stream_bytes(SimulatorApp(), "gaps"))
    assert decoder.close().sequence_gaps == (4,)


def test_bad_json_replaces_the_first_delta():
    data = stream_bytes(SimulatorApp(), "bad-json")
    assert b'data: {"type":"response.output_text.delta","delta":"oops"\n\n' in data


def test_chat_streams_are_left_alone_by_the_responses_only_faults():
    from rawchat.simulator.faults import parse_faults, shape_stream

    events = [b"data: {}\n\n", b"data: [DONE]\n\n"]
    faults = parse_faults("no-terminal,failed,gaps,trailing-done")
    assert shape_stream(events, faults) == events
