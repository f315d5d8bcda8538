"""Reading answers and errors from response bodies."""

from __future__ import annotations

import json

import pytest

from rawchat.errors import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    InternalServerError,
    InvalidResponseError,
    NotFoundError,
    RateLimitError,
    UnprocessableEntityError,
)
from rawchat.protocol.completion import FunctionCall, ToolCall, Usage
from rawchat.protocol.http import HTTPResponse
from rawchat.protocol.response import (
    ErrorContext,
    completion_from_response,
    error_from_response,
    parse_completion,
)

COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "gpt-4o-mini-2024-07-18",
    "system_fingerprint": "fp_1",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hi!", "refusal": None},
            "finish_reason": "stop",
        },
        {
            "index": 1,
            "message": {"role": "assistant", "content": "Hello!"},
            "finish_reason": "length",
        },
    ],
    "usage": {
        "prompt_tokens": 9,
        "completion_tokens": 3,
        "total_tokens": 12,
        "prompt_tokens_details": {"cached_tokens": 4},
        "completion_tokens_details": {"reasoning_tokens": 1},
    },
}


def ok(body, content_type="application/json", headers=()):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return HTTPResponse(
        200,
        [("Content-Type", content_type), *headers],
        data,
        url="https://x/v1/chat/completions",
    )


def test_choices_0_message_content_is_the_answer():
    done = completion_from_response(ok(COMPLETION, headers=[("x-request-id", "req_1")]))
    assert done.content == "Hi!"
    assert done.finish_reason == "stop"
    assert done.request_id == "req_1"
    assert (done.id, done.model, done.created, done.system_fingerprint) == (
        "chatcmpl-1",
        "gpt-4o-mini-2024-07-18",
        1700000000,
        "fp_1",
    )


def test_all_choices_are_kept_for_n_greater_than_one():
    done = parse_completion(COMPLETION)
    assert [(c.index, c.message.content, c.finish_reason) for c in done.choices] == [
        (0, "Hi!", "stop"),
        (1, "Hello!", "length"),
    ]


def test_usage_includes_cached_and_reasoning_tokens():
    assert parse_completion(COMPLETION).usage == Usage(
        9, 3, 12, cached_tokens=4, reasoning_tokens=1
    )


def test_deepseek_cache_hits_count_as_cached_tokens():
    usage = Usage.from_wire(
        {"prompt_tokens": 10, "completion_tokens": 2, "prompt_cache_hit_tokens": 6}
    )
    assert usage == Usage(10, 2, 12, cached_tokens=6)


def test_tool_calls_are_read_as_on_the_wire():
    data = {
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_9",
                            "type": "function",
                            "function": {
                                "name": "get_weather",
                                "arguments": '{"city":"Paris"}',
                            },
                        }
                    ],
                },
            }
        ]
    }
    done = parse_completion(data)
    assert done.tool_calls == (ToolCall("call_9", FunctionCall("get_weather", '{"city":"Paris"}')),)
    assert done.content == ""
    assert done.message.to_dict()["tool_calls"][0]["function"]["arguments"] == '{"city":"Paris"}'


def test_tool_call_arguments_sent_as_an_object_become_json_text():
    data = {
        "choices": [
            {
                "message": {
                    "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": {"a": 1}}}]
                }
            }
        ]
    }
    assert parse_completion(data).tool_calls[0].function.arguments == '{"a": 1}'


def test_refusal_and_reasoning_are_kept():
    data = {
        "choices": [
            {
                "message": {
                    "content": None,
                    "refusal": "I can't.",
                    "reasoning_content": "hmm",
                }
            }
        ]
    }
    done = parse_completion(data)
    assert (done.refusal, done.reasoning) == ("I can't.", "hmm")


def test_missing_optional_fields_are_tolerated():
    done = parse_completion({"choices": [{"message": {"content": "x"}}]})
    assert (done.content, done.id, done.usage, done.choices[0].index) == (
        "x",
        "",
        None,
        0,
    )


def test_content_sent_as_text_parts_is_joined():
    data = {
        "choices": [
            {
                "message": {
                    "content": [
                        {"type": "text", "text": "a"},
                        {"type": "text", "text": "b"},
                    ]
                }
            }
        ]
    }
    assert parse_completion(data).content == "ab"


@pytest.mark.parametrize(
    "body, message",
    [
        ([1, 2], "expected a JSON object, got list"),
        ({"object": "chat.completion"}, "no 'choices' list"),
        ({"choices": [1]}, r"choices\[0\] has no 'message' object"),
        (
            {"error": {"message": "overloaded", "code": "busy"}},
            "error with a success status: overloaded",
        ),
    ],
)
def test_unreadable_completions_raise_invalid_response_error(body, message):
    with pytest.raises(InvalidResponseError, match=message):
        parse_completion(body)


@pytest.mark.parametrize(
    "message, error",
    [
        ({"content": 5}, r"choices\[0\].message.content is int, not text"),
        ({"refusal": True}, r"choices\[0\].message.refusal is bool, not text"),
        ({"reasoning": 1.5}, r"choices\[0\] reasoning is float, not text"),
        ({"tool_calls": {"id": "c"}}, "tool_calls is not a list"),
        ({"tool_calls": ["c"]}, "a tool call is not an object"),
        ({"tool_calls": [{"function": "f"}]}, "a tool call's function is not an object"),
    ],
)
def test_malformed_message_fields_raise_invalid_response_error_naming_them(message, error):
    with pytest.raises(InvalidResponseError, match=error):
        parse_completion({"choices": [{"message": message}]})


def test_a_message_without_a_role_is_the_assistants_and_a_call_without_a_type_a_function():
    done = parse_completion(
        {"choices": [{"message": {"tool_calls": [{"id": "c", "function": {"name": "f"}}]}}]}
    )
    assert done.message.role == "assistant"
    assert done.tool_calls == (ToolCall("c", FunctionCall("f", ""), type="function"),)


def test_a_200_html_page_is_a_typed_error_naming_its_title():
    page = b"<html><head><title>Sign in - Corp Proxy</title></head></html>"
    with pytest.raises(
        InvalidResponseError, match="HTML page titled 'Sign in - Corp Proxy'"
    ) as caught:
        completion_from_response(ok(page, "text/html"))
    assert "base URL" in caught.value.hint


def test_a_200_with_broken_json_is_a_typed_error_not_a_json_decode_error():
    with pytest.raises(InvalidResponseError, match="expected a JSON body"):
        completion_from_response(ok(b'{"choices": [', "application/json"))


# -- errors -------------------------------------------------------------------


def failed(
    status,
    body,
    content_type="application/json",
    headers=(),
    url="https://api.openai.com/v1/chat/completions",
):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return HTTPResponse(
        status,
        [("Content-Type", content_type), ("x-request-id", "req_e"), *headers],
        data,
        url=url,
        reason="Reason",
    )


def openai_error(message, type_="invalid_request_error", code=None, param=None):
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


@pytest.mark.parametrize(
    "status, cls",
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (404, NotFoundError),
        (422, UnprocessableEntityError),
        (429, RateLimitError),
        (500, InternalServerError),
        (503, InternalServerError),
        (418, APIStatusError),
    ],
)
def test_each_status_maps_to_its_error_class(status, cls):
    error = error_from_response(failed(status, openai_error("m")))
    assert type(error) is cls
    assert (error.status_code, error.message, error.request_id) == (
        status,
        "m",
        "req_e",
    )


def test_the_openai_error_object_fields_are_kept():
    error = error_from_response(
        failed(400, openai_error("bad temp", code="invalid_value", param="temperature"))
    )
    assert (error.type, error.code, error.param) == (
        "invalid_request_error",
        "invalid_value",
        "temperature",
    )
    assert "parameter 'temperature'" in error.hint
    assert str(error).startswith("400 bad temp (request id req_e)\n  hint: ")


def test_a_401_hint_names_the_key_source_and_last_four_characters_only():
    context = ErrorContext(key="sk-proj-abcdefghijklmnopWXYZ", key_source="OPENAI_API_KEY")
    error = error_from_response(
        failed(401, openai_error("Incorrect API key", code="invalid_api_key")), context
    )
    assert "OPENAI_API_KEY" in error.hint and "...WXYZ" in error.hint
    assert "abcdefgh" not in str(error)


def test_a_401_without_a_key_says_to_set_the_variable():
    error = error_from_response(
        failed(401, openai_error("no key")),
        ErrorContext(key_variable="DEEPSEEK_API_KEY"),
    )
    assert error.hint.startswith("no API key was sent to api.openai.com; set DEEPSEEK_API_KEY")


def test_a_404_on_a_base_url_without_v1_suggests_adding_it():
    error = error_from_response(
        failed(
            404,
            b"404 page not found",
            "text/plain",
            url="http://localhost:11434/chat/completions",
        )
    )
    assert "http://localhost:11434/chat/completions was not found" in error.hint
    assert "/v1" in error.hint


def test_a_404_for_an_unknown_model_names_the_model():
    error = error_from_response(
        failed(
            404,
            openai_error("The model `gpt-5x` does not exist", code="model_not_found"),
        ),
        ErrorContext(model="gpt-5x"),
    )
    assert "the model 'gpt-5x' does not exist here" in error.hint


def test_an_azure_404_talks_about_deployments():
    error = error_from_response(
        failed(
            404,
            {
                "error": {
                    "code": "DeploymentNotFound",
                    "message": "The API deployment for this resource does not exist.",
                }
            },
            url="https://r.openai.azure.com/openai/deployments/x/chat/completions",
        ),
        ErrorContext(model="x", profile="azure"),
    )
    assert "the deployment 'x'" in error.hint


def test_a_429_rate_limit_and_insufficient_quota_are_told_apart():
    limited = error_from_response(
        failed(429, openai_error("slow down", "requests"), headers=[("retry-after", "3")])
    )
    broke = error_from_response(
        failed(
            429,
            openai_error(
                "You exceeded your current quota",
                "insufficient_quota",
                "insufficient_quota",
            ),
        )
    )
    assert (
        limited.hint
        == "rate limited: too many requests or tokens per minute; the server asked to wait 3 s"
    )
    assert limited.retry_after == 3.0
    assert "billing" in broke.hint and "will not help" in broke.hint


def test_a_gateway_502_html_page_becomes_a_readable_message():
    page = b"<html><head><title>502 Bad Gateway</title></head><body><center>nginx</center></body></html>"
    error = error_from_response(failed(502, page, "text/html"))
    assert type(error) is InternalServerError
    assert error.message == "Reason: an HTML page titled '502 Bad Gateway', not a JSON error"
    assert "server side" in error.hint


@pytest.mark.parametrize(
    "body, content_type, message",
    [
        (b"", "text/plain", "Reason: an empty body"),
        (
            b"upstream connect error",
            "text/plain",
            "Reason: 22 bytes of text/plain: 'upstream connect error'",
        ),
        (
            b'{"error": "model \\"x\\" not found"}',
            "application/json",
            'model "x" not found',
        ),
        (
            b'{"object": "error", "message": "bad", "type": "BadRequestError", "code": 400}',
            "application/json",
            "bad",
        ),
        (
            b'{"detail": [{"msg": "field required"}, {"msg": "too long"}]}',
            "application/json",
            "field required; too long",
        ),
        (b'{"detail": "Not Found"}', "application/json", "Not Found"),
        (b'"just a string"', "application/json", "just a string"),
        (b"[1]", "application/json", "(no message in the error body)"),
    ],
)
def test_error_bodies_of_every_shape_give_a_message(body, content_type, message):
    assert error_from_response(failed(400, body, content_type)).message == message


def test_a_vllm_error_code_number_becomes_text():
    error = error_from_response(failed(400, b'{"object": "error", "message": "m", "code": 400}'))
    assert error.code == "400"


def test_context_length_exceeded_suggests_trimming():
    error = error_from_response(
        failed(400, openai_error("too long", code="context_length_exceeded"))
    )
    assert "context window" in error.hint


def test_a_key_the_server_quotes_in_its_error_shows_only_as_its_fingerprint():
    key = "sk-proj-abcdefghijklmnop"
    body = json.dumps({"error": {"message": f"Incorrect API key provided: {key}", "param": key}})
    error = error_from_response(
        HTTPResponse(401, body=body.encode(), url="https://api.openai.com/v1/chat/completions"),
        ErrorContext(key=key, key_source="OPENAI_API_KEY"),
    )
    assert (error.message, error.param) == ("Incorrect API key provided: ...mnop", "...mnop")
    assert error.body == {
        "error": {"message": "Incorrect API key provided: ...mnop", "param": "...mnop"}
    }


def test_credentials_in_the_url_stay_out_of_the_hint():
    error = error_from_response(
        HTTPResponse(404, body=b"{}", url="http://user:hunter2@host:8/chat/completions"),
        ErrorContext(key="sk-proj-abcdefghijklmnop"),
    )
    assert error.hint == (
        "http://***@host:8/chat/completions was not found; most OpenAI-compatible base "
        "URLs end in /v1 (e.g. http://localhost:11434/v1), so add it to the base URL"
    )
