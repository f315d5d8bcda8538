"""Request building: messages and parameters to the exact bytes sent."""

from __future__ import annotations

import json

import pytest

from rawchat.errors import InvalidRequestError
from rawchat.protocol.request import (
    USER_AGENT,
    build_chat_request,
    build_request,
    encode_json,
    validate_messages,
)
from rawchat.protocol.settings import Settings

SETTINGS = Settings(
    base_url="https://api.example.com/v1", api_key="sk-secret-0123456789", model="m"
)
HI = [{"role": "user", "content": "hi"}]


def test_a_chat_request_posts_compact_json_to_chat_completions():
    request = build_chat_request(SETTINGS, HI, model="gpt-4o-mini", temperature=0)
    assert request.method == "POST"
    assert request.url == "https://api.example.com/v1/chat/completions"
    assert (
        request.body
        == b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"temperature":0}'
    )


def test_non_ascii_text_is_sent_as_utf8_not_escaped():
    request = build_chat_request(SETTINGS, [{"role": "user", "content": "你好"}])
    assert "你好".encode() in request.body


def test_headers_carry_bearer_auth_json_and_user_agent_in_order():
    request = build_chat_request(SETTINGS, HI)
    assert list(request.headers.items()) == [
        ("Authorization", "Bearer sk-secret-0123456789"),
        ("Content-Type", "application/json"),
        ("Accept", "application/json"),
        ("User-Agent", USER_AGENT),
    ]
    assert USER_AGENT.startswith("rawchat/0.2.0 python/3.")


def test_organization_project_and_client_request_id_are_sent_when_set():
    settings = Settings(
        base_url="https://x/v1",
        api_key="k" * 20,
        organization="org-1",
        project="proj_2",
    )
    request = build_chat_request(settings, HI, model="m", request_id="my-id-1")
    assert request.headers["OpenAI-Organization"] == "org-1"
    assert request.headers["OpenAI-Project"] == "proj_2"
    assert request.headers["X-Client-Request-Id"] == "my-id-1"


def test_azure_uses_the_api_key_header_and_deployment_url():
    settings = Settings(
        base_url="https://res.openai.azure.com/openai",
        api_key="a" * 32,
        auth="api-key",
        api_version="2024-10-21",
        profile="azure",
    )
    request = build_chat_request(settings, HI, model="my-deploy")
    assert request.url == (
        "https://res.openai.azure.com/openai/deployments/my-deploy/chat/completions"
        "?api-version=2024-10-21"
    )
    assert request.headers["api-key"] == "a" * 32
    assert "Authorization" not in request.headers


def test_a_keyless_endpoint_gets_no_authorization_header():
    request = build_chat_request(
        Settings(base_url="http://localhost:11434/v1", model="llama3.2"), HI
    )
    assert "Authorization" not in request.headers


def test_a_stream_asks_for_sse_and_for_usage():
    request = build_chat_request(SETTINGS, HI, stream=True)
    assert request.headers["Accept"] == "text/event-stream"
    assert request.headers["Accept-Encoding"] == "identity"
    body = request.json()
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert request.stream is True


def test_a_stream_can_skip_the_usage_chunk_and_keeps_other_stream_options():
    assert (
        "stream_options"
        not in build_chat_request(SETTINGS, HI, stream=True, include_usage=False).json()
    )
    body = build_chat_request(SETTINGS, HI, stream=True, stream_options={"x": 1}).json()
    assert body["stream_options"] == {"x": 1, "include_usage": True}


def test_unknown_parameters_pass_through_untouched():
    body = build_chat_request(SETTINGS, HI, top_k=5, enable_thinking=False).json()
    assert body["top_k"] == 5 and body["enable_thinking"] is False


def test_a_missing_model_is_refused():
    with pytest.raises(InvalidRequestError, match="no model given"):
        build_chat_request(Settings(base_url="https://x/v1"), HI)


def test_a_body_that_is_not_json_serializable_names_the_problem():
    with pytest.raises(InvalidRequestError, match="not JSON-serializable"):
        build_chat_request(SETTINGS, HI, temperature={1, 2})


def test_build_request_makes_a_get_without_body_or_content_type():
    request = build_request(SETTINGS, "get", "models")
    assert (request.method, request.url, request.body) == (
        "GET",
        "https://api.example.com/v1/models",
        b"",
    )
    assert "Content-Type" not in request.headers


# -- message validation ---------------------------------------------------

TOOL_CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "f", "arguments": "{}"},
}


def test_every_role_and_content_form_is_accepted():
    messages = [
        {"role": "system", "content": "s"},
        {"role": "developer", "content": [{"type": "text", "text": "d"}]},
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": "data:,"}}],
            "name": "ann",
        },
        {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]},
        {"role": "tool", "tool_call_id": "call_1", "content": "42"},
        {"role": "assistant", "content": "done"},
    ]
    assert validate_messages(messages) == messages


@pytest.mark.parametrize(
    "messages, message",
    [
        ("hi", "must be a list of message dicts, got str"),
        ({"role": "user"}, "got dict"),
        ([], "messages is empty"),
        (["hi"], r"messages\[0\] is a str, not a dict"),
        ([{"role": "bot", "content": "x"}], r"messages\[0\] has role 'bot'"),
        ([{"role": "user"}], r"messages\[0\] has content of type NoneType"),
        ([{"role": "user", "content": 5}], "content of type int"),
        ([{"role": "user", "content": []}], "content of type list"),
        (
            [{"role": "user", "content": [{"text": "x"}]}],
            "content part 0 has no 'type'",
        ),
        ([{"role": "user", "content": [{"type": "text"}]}], "text part without 'text'"),
        ([{"role": "user", "content": "x", "name": 3}], "name that is not a string"),
        ([{"role": "assistant"}], "neither content nor tool_calls"),
        ([{"role": "tool", "content": "x"}], "tool message without a tool_call_id"),
        (
            [{"role": "tool", "tool_call_id": "c", "content": "x"}],
            "which no preceding assistant",
        ),
    ],
)
def test_malformed_messages_are_refused_with_their_index(messages, message):
    with pytest.raises(InvalidRequestError, match=message):
        validate_messages(messages)


def test_tool_call_arguments_must_be_json_text():
    call = dict(TOOL_CALL, function={"name": "f", "arguments": {"a": 1}})
    with pytest.raises(InvalidRequestError) as caught:
        validate_messages([{"role": "assistant", "content": None, "tool_calls": [call]}])
    assert "json.dumps" in caught.value.hint


def test_every_tool_call_needs_its_tool_message_before_the_next_turn():
    with pytest.raises(
        InvalidRequestError,
        match=r"messages\[0\] made tool calls that no tool message answers: 'call_1'",
    ):
        validate_messages(
            [
                {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]},
                {"role": "user", "content": "next"},
            ]
        )


def test_a_tool_call_answered_twice_is_refused():
    with pytest.raises(InvalidRequestError, match="already answered"):
        validate_messages(
            [
                {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]},
                {"role": "tool", "tool_call_id": "call_1", "content": "1"},
                {"role": "tool", "tool_call_id": "call_1", "content": "2"},
            ]
        )


def test_message_objects_from_an_answer_are_accepted():
    from rawchat.protocol.completion import Message

    assert validate_messages([{"role": "user", "content": "q"}, Message(content="a")])[1] == {
        "role": "assistant",
        "content": "a",
    }


def test_the_body_is_valid_json_for_any_text():
    text = 'quote " backslash \\ newline \n emoji 😀 nul \x00'
    body = json.loads(build_chat_request(SETTINGS, [{"role": "user", "content": text}]).body)
    assert body["messages"][0]["content"] == text


@pytest.mark.parametrize("number", [float("nan"), float("inf"), float("-inf")])
def test_nan_and_infinity_are_refused_not_sent(number):
    with pytest.raises(InvalidRequestError, match="NaN or Infinity, which JSON cannot carry"):
        encode_json({"temperature": number})


def test_a_body_nested_too_deeply_is_an_invalid_request_not_a_recursion_error():
    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(InvalidRequestError, match="nested too deeply"):
        encode_json({"metadata": deep})


def test_text_that_is_not_unicode_says_the_input_is_not_utf8():
    garbled = b"caf\xe9".decode("utf-8", "surrogateescape")
    with pytest.raises(InvalidRequestError, match="not valid Unicode") as caught:
        encode_json({"messages": [{"role": "user", "content": garbled}]})
    assert "not UTF-8" in caught.value.hint


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"Authorization": "Bearer sk-abcdefghijklmnop\n"},
         "the header value from extra_headers (Authorization) has a character it cannot carry "
         "(U+000A) at position 26"),
        ({"X-Trace\n": "1"},
         "the header name from extra_headers has a character it cannot carry (U+000A) at position 7"),
    ],
    ids=["value", "name"],
)  # fmt: skip
def test_an_extra_header_http_cannot_carry_is_refused_naming_it_not_its_value(extra, message):
    from rawchat.errors import ConfigError

    settings = Settings.resolve(api_key="sk-test-0000000000key", base_url="http://x/v1", environ={})
    with pytest.raises(ConfigError) as caught:
        build_chat_request(
            settings, [{"role": "user", "content": "hi"}], model="m", extra_headers=extra
        )
    assert caught.value.message == message
