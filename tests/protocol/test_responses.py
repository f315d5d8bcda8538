"""The Responses API request and answer: building, checking, reading, error hints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rawchat.errors import BadRequestError, InvalidRequestError, InvalidResponseError, NotFoundError
from rawchat.protocol.http import HTTPResponse
from rawchat.protocol.responses import (
    CustomToolCall,
    FunctionToolCall,
    Response,
    ResponseUsage,
    build_responses_request,
    parse_response,
    response_error_hint,
    response_from_http,
    responses_error,
)
from rawchat.protocol.settings import Settings

DATA = Path(__file__).resolve().parent.parent / "data" / "responses"
SETTINGS = Settings(api_key="sk-test-0123456789abcdef", base_url="https://api.openai.com/v1")
TOOL = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def build(input, **params):
    return build_responses_request(SETTINGS, input, model="gpt-4o-mini", **params)


def refusal(input, **params) -> str:
    with pytest.raises(InvalidRequestError) as caught:
        build(input, **params)
    return str(caught.value)


# -- the request -----------------------------------------------------------------


def test_a_string_input_is_posted_to_responses_with_the_model():
    request = build("hi")
    assert request.method == "POST"
    assert request.url == "https://api.openai.com/v1/responses"
    assert request.body == b'{"model":"gpt-4o-mini","input":"hi"}'
    assert request.headers["Authorization"] == "Bearer sk-test-0123456789abcdef"
    assert request.headers["Accept"] == "application/json"


def test_a_stream_asks_for_event_stream_and_says_stream_true():
    request = build("hi", stream=True)
    assert request.json() == {"model": "gpt-4o-mini", "input": "hi", "stream": True}
    assert request.headers["Accept"] == "text/event-stream"
    assert request.stream is True


def test_parameters_of_the_responses_api_go_into_the_body_as_given():
    request = build(
        [{"role": "user", "content": [{"type": "input_text", "text": "weather?"}]}],
        instructions="Be brief.",
        tools=[TOOL, {"type": "custom", "name": "execute_sql"}, {"type": "web_search"}],
        tool_choice={"type": "function", "name": "get_weather"},
        text={"format": {"type": "text"}},
        reasoning={"effort": "low", "summary": "auto"},
        max_output_tokens=200,
        previous_response_id="resp_1",
        store=True,
        include=["reasoning.encrypted_content"],
    )
    assert request.json() == {
        "model": "gpt-4o-mini",
        "input": [{"role": "user", "content": [{"type": "input_text", "text": "weather?"}]}],
        "instructions": "Be brief.",
        "tools": [TOOL, {"type": "custom", "name": "execute_sql"}, {"type": "web_search"}],
        "tool_choice": {"type": "function", "name": "get_weather"},
        "text": {"format": {"type": "text"}},
        "reasoning": {"effort": "low", "summary": "auto"},
        "max_output_tokens": 200,
        "previous_response_id": "resp_1",
        "store": True,
        "include": ["reasoning.encrypted_content"],
    }


def test_output_items_of_an_earlier_response_pass_back_as_input():
    earlier = parse_response(json.loads((DATA / "response.json").read_text("utf-8")))
    items = [*earlier.output, earlier.tool_calls[0].answer('{"temp": 21}')]
    assert build(items).json()["input"] == [*earlier.output, items[-1]]


def test_an_image_part_and_a_tool_output_are_accepted():
    items = [
        {
            "role": "user",
            "content": [
                {"type": "input_text", "text": "what is this?"},
                {"type": "input_image", "image_url": "data:image/png;base64,AAAA"},
            ],
        },
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
    ]
    assert build(items).json()["input"] == items


@pytest.mark.parametrize(
    "params, expected",
    [
        ({"max_tokens": 5}, "use max_output_tokens=... instead of max_tokens"),
        ({"max_completion_tokens": 5}, "use max_output_tokens"),
        (
            {"messages": []},
            "use input=... (a string, or a list of input items) instead of messages=",
        ),
        ({"response_format": {}}, 'use text={"format": {...}}'),
    ],
)
def test_chat_parameters_are_refused_with_the_name_to_use(params, expected):
    text = refusal("hi", **params)
    assert "is a Chat Completions parameter" in text
    assert expected in text


def test_a_function_call_output_without_call_id_names_its_index():
    text = refusal(
        [{"role": "user", "content": "hi"}, {"type": "function_call_output", "output": "x"}]
    )
    assert text.startswith("input[1] is a function_call_output without a call_id")
    assert "call.call_id" in text


def test_a_message_with_an_unknown_role_names_its_index():
    assert refusal([{"role": "robot", "content": "hi"}]).startswith(
        "input[0] has role 'robot'\n  hint: the role must be one of user, assistant, system, developer"
    )


def test_a_tool_message_is_refused_with_the_function_call_output_shape():
    text = refusal([{"role": "tool", "tool_call_id": "c", "content": "x"}])
    assert "input[0] has role 'tool', which is Chat Completions'" in text
    assert '"type": "function_call_output"' in text


def test_chat_content_parts_are_refused_with_their_responses_names():
    text = refusal([{"role": "user", "content": [{"type": "text", "text": "hi"}]}])
    assert "input[0] content part 0 has the Chat Completions type 'text'" in text
    assert "'input_text'" in text


@pytest.mark.parametrize(
    "input, expected",
    [
        ([], "input is empty"),
        ({"role": "user"}, "input must be a string or a list of input items, got dict"),
        ([{"content": "hi"}], "input[0] has neither a type nor a role"),
        ([{"role": "user", "content": 3}], "input[0] has content of type int"),
        ([{"role": "user", "content": [{"type": "input_image"}]}], "neither image_url nor file_id"),
        ([{"type": "function_call", "call_id": "c", "name": "f", "arguments": {}}], "arguments"),
        ([{"type": "function_call_output", "call_id": "c", "output": {"a": 1}}], "not text"),
    ],
)
def test_malformed_input_is_refused_before_sending(input, expected):
    assert expected in refusal(input)


def test_a_chat_shaped_tool_is_refused_with_the_flat_shape():
    chat_tool = {"type": "function", "function": {"name": "get_weather", "parameters": {}}}
    assert refusal("hi", tools=[chat_tool]) == (
        "tools[0] is in the Chat Completions shape\n"
        '  hint: the Responses API takes function tools flat: {"type": "function", '
        '"name": "get_weather", "parameters": {}}'
    )


def test_a_chat_shaped_tool_choice_is_refused_with_the_flat_shape():
    text = refusal("hi", tool_choice={"type": "function", "function": {"name": "f"}})
    assert text.endswith('{"type": "function", "name": "f"}')


@pytest.mark.parametrize(
    "params, expected",
    [
        (
            {"tools": [{"type": "function", "parameters": {}}]},
            "tools[0] is a function tool without a name",
        ),
        ({"tools": {"type": "function"}}, "tools must be a list, got dict"),
        ({"max_output_tokens": 0}, "max_output_tokens must be a positive integer, got 0"),
        ({"previous_response_id": ""}, "previous_response_id must be a response id"),
        ({"instructions": ["x"]}, "instructions is a list, not a string"),
        ({"include": "usage"}, "include must be a list of strings"),
    ],
)
def test_malformed_parameters_are_refused_before_sending(params, expected):
    assert expected in refusal("hi", **params)


def test_without_a_model_the_request_is_refused():
    with pytest.raises(InvalidRequestError, match="no model given"):
        build_responses_request(Settings(api_key="k", base_url="http://x/v1"), "hi")


# -- the answer --------------------------------------------------------------------


def whole() -> dict:
    return json.loads((DATA / "response.json").read_text("utf-8"))


def test_a_whole_response_reads_into_a_response():
    response = parse_response(whole())
    assert (response.id, response.status, response.model) == (
        "resp_68c2",
        "completed",
        "gpt-5-2025-08-07",
    )
    assert response.created_at == 1757000000
    assert response.previous_response_id == "resp_68c1"
    assert response.usage == ResponseUsage(
        input_tokens=9463,
        output_tokens=582,
        total_tokens=10045,
        cached_tokens=4096,
        reasoning_tokens=448,
    )


def test_output_text_joins_the_message_parts_not_the_top_level_field():
    assert parse_response(whole()).output_text == "Paris is the capital of France."


def test_unknown_item_types_are_kept_in_order():
    types = [item["type"] for item in parse_response(whole()).output]
    assert types == ["reasoning", "web_search_call", "message", "function_call", "custom_tool_call"]


def test_tool_calls_are_function_and_custom_calls_in_order():
    assert parse_response(whole()).tool_calls == (
        FunctionToolCall(
            call_id="call_1", name="get_weather", arguments='{"city":"Paris"}', id="fc_68c2"
        ),
        CustomToolCall(call_id="call_2", name="execute_sql", input="SELECT 1;", id="ctc_68c2"),
    )


def test_a_tool_call_answers_with_its_call_id():
    call = parse_response(whole()).tool_calls
    assert call[0].answer("21 C") == {
        "type": "function_call_output",
        "call_id": "call_1",
        "output": "21 C",
    }
    assert call[1].answer("1 row")["type"] == "custom_tool_call_output"


def test_reasoning_is_the_summaries_one_paragraph_each():
    assert parse_response(whole()).reasoning == "**Looking it up**\n\nThe search found it."


def test_without_summaries_reasoning_is_the_raw_reasoning_text():
    data = {
        "output": [
            {
                "type": "reasoning",
                "summary": [],
                "content": [{"type": "reasoning_text", "text": "2+2"}],
            }
        ]
    }
    assert parse_response(data).reasoning == "2+2"


def test_a_refusal_part_is_the_refusal_and_no_text():
    data = {
        "output": [
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "refusal", "refusal": "I can't help with that."}],
            }
        ]
    }
    response = parse_response(data)
    assert response.refusal == "I can't help with that."
    assert response.output_text == ""
    assert response.reasoning is None


def test_an_incomplete_response_says_why():
    data = {
        "status": "incomplete",
        "incomplete_details": {"reason": "max_output_tokens"},
        "output": [],
    }
    response = parse_response(data)
    assert response.status == "incomplete"
    assert response.incomplete_reason == "max_output_tokens"


def test_what_compatible_servers_leave_out_reads_as_defaults():
    assert parse_response({"output": []}) == Response()


@pytest.mark.parametrize(
    "data, expected",
    [
        ([], "expected a JSON object, got list"),
        ({"object": "response"}, "the response has no 'output' list"),
        (
            {"object": "chat.completion", "choices": []},
            "expected a response object, got object 'chat.completion'",
        ),
        ({"output": ["text"]}, "output[0] is not an object"),
        (
            {"error": {"message": "boom", "code": "server_error"}},
            "an error with a success status: boom",
        ),
    ],
)
def test_unreadable_bodies_raise_invalid_response(data, expected):
    with pytest.raises(InvalidResponseError) as caught:
        parse_response(data)
    assert expected in str(caught.value)


def test_a_chat_completion_in_place_of_a_response_hints_at_client_chat():
    with pytest.raises(InvalidResponseError) as caught:
        parse_response({"object": "chat.completion", "choices": []})
    assert "client.chat" in caught.value.hint


def test_an_http_answer_keeps_headers_and_request_id():
    http = HTTPResponse(
        200,
        [("Content-Type", "application/json"), ("x-request-id", "req_9")],
        json.dumps(whole()).encode(),
        elapsed=0.25,
    )
    response = response_from_http(http)
    assert response.request_id == "req_9"
    assert response.elapsed == 0.25
    assert response.headers["X-Request-Id"] == "req_9"


def test_an_html_page_is_not_a_response():
    http = HTTPResponse(200, [("Content-Type", "text/html")], b"<html><title>Login</title></html>")
    with pytest.raises(InvalidResponseError, match="got an HTML page titled 'Login'"):
        response_from_http(http)


# -- error hints ---------------------------------------------------------------------


def error(status, body, url="https://api.openai.com/v1/responses"):
    http = HTTPResponse(
        status, [("Content-Type", "application/json")], json.dumps(body).encode(), url=url
    )
    return responses_error(http)


def test_an_unknown_previous_response_id_says_what_happened_to_it():
    exc = error(
        400,
        {
            "error": {
                "message": "Previous response with id 'resp_x' not found.",
                "type": "invalid_request_error",
                "param": "previous_response_id",
                "code": "previous_response_not_found",
            }
        },
    )
    assert isinstance(exc, BadRequestError)
    assert exc.code == "previous_response_not_found"
    assert exc.hint.startswith("previous_response_id names a response this server does not have")


def test_a_404_with_previous_response_not_found_gets_the_same_hint():
    hint = response_error_hint(404, code="previous_response_not_found")
    assert "send the conversation as input instead" in hint


def test_a_server_that_keeps_no_state_says_to_send_the_conversation():
    exc = error(400, {"error": {"message": "store is not supported", "param": "store"}})
    assert exc.hint.startswith("this server keeps no responses: send store=false")
    assert response_error_hint(400, message="previous_response_id is not supported") == exc.hint


def test_an_endpoint_without_responses_points_to_chat_completions():
    exc = error(404, {"error": "404 page not found"}, url="http://localhost:8000/v1/responses")
    assert isinstance(exc, NotFoundError)
    assert exc.hint == (
        "http://localhost:8000/v1/responses is not there: this server has no Responses API "
        "(many OpenAI-compatible servers offer only /chat/completions); use Chat Completions "
        "(client.chat) instead"
    )


def test_a_base_url_without_v1_keeps_the_hint_to_add_it():
    exc = error(404, {"error": "not found"}, url="http://localhost:8000/responses")
    assert "add it to the base URL" in exc.hint


def test_an_unknown_model_keeps_the_model_hint():
    exc = error(
        404,
        {"error": {"message": "The model `nope` does not exist", "code": "model_not_found"}},
    )
    assert "does not exist here or your key cannot use it" in exc.hint


def test_retrieving_an_unknown_stored_response_says_why_it_may_be_gone():
    hint = response_error_hint(404, url="https://api.openai.com/v1/responses/resp_x")
    assert hint.startswith("no stored response has that id here")


def test_other_errors_keep_the_generic_hint():
    assert response_error_hint(400, param="temperature", message="decimal below minimum") == ""
