"""Conversations on the Responses API: stateless (store=False) and chained (store=True)."""

from __future__ import annotations

import pytest

import rawchat
from rawchat.errors import IncompleteStreamError, InvalidRequestError, NotFoundError

TOOL = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def test_a_stateless_turn_sends_the_history_as_items_with_store_false(client, sim):
    conv = rawchat.Conversation(system="Be brief.", api="responses")
    first = conv.ask(client, "hi", model="gpt-4o-mini")
    second = conv.ask(client, "again", model="gpt-4o-mini")
    assert isinstance(second, rawchat.Response)
    assert conv.last_sent == [
        {"role": "user", "content": "hi"},
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": first.output_text, "annotations": []}],
        },
        {"role": "user", "content": "again"},
    ]
    assert second.raw["instructions"] == "Be brief."
    assert second.raw["store"] is False
    assert len(sim.app.responses.store) == 0
    assert [m["role"] for m in conv.messages] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
    ]


def test_a_stored_conversation_chains_with_previous_response_id(client):
    conv = rawchat.Conversation(system="Be brief.", api="responses", store=True)
    first = conv.ask(client, "one", model="gpt-4o-mini")
    second = conv.ask(client, "two", model="gpt-4o-mini")
    assert conv.last_sent == [{"role": "user", "content": "two"}]
    assert second.previous_response_id == first.id
    assert conv.last_response_id == second.id
    # The server replays the chain: all of it is billed as input again.
    assert second.usage.input_tokens > first.usage.total_tokens
    assert second.raw["instructions"] == "Be brief."  # resent: not carried over


def test_save_and_load_keep_the_api_the_store_and_the_last_response_id(client, tmp_path):
    conv = rawchat.Conversation(api="responses", store=True)
    made = conv.ask(client, "one", model="gpt-4o-mini")
    path = str(tmp_path / "chat.json")
    conv.save(path)
    loaded = rawchat.Conversation.load(path)
    assert (loaded.api, loaded.store, loaded.last_response_id) == ("responses", True, made.id)
    after = loaded.ask(client, "two", model="gpt-4o-mini")
    assert after.previous_response_id == made.id
    assert loaded.last_sent == [{"role": "user", "content": "two"}]


def test_a_chat_conversations_file_has_no_responses_fields(client, tmp_path):
    conv = rawchat.Conversation()
    conv.ask(client, "one", model="gpt-4o-mini")
    assert "api" not in conv.to_dict()
    assert rawchat.Conversation.from_dict(conv.to_dict()).api == "chat"


def test_tool_results_answer_calls_by_call_id(client):
    conv = rawchat.Conversation(api="responses")
    asked = conv.ask(client, "Paris", model="gpt-4o-mini", tools=[TOOL])
    (call,) = asked.tool_calls
    done = conv.ask(client, model="gpt-4o-mini", tools=[TOOL], tool_results={call.call_id: "sunny"})
    assert done.output_text == "The tool returned: sunny"
    assert conv.last_sent[-2:] == [
        {
            "type": "function_call",
            "call_id": call.call_id,
            "name": "get_weather",
            "arguments": '{"city": "Paris"}',
        },
        {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"},
    ]


def test_a_streamed_turn_commits_when_the_stream_completes(client):
    conv = rawchat.Conversation(api="responses")
    with conv.stream(client, "hi", model="gpt-4o-mini") as stream:
        text = "".join(stream.text())
    assert stream.response.output_text == text
    assert conv.messages[-1]["content"] == text


def test_a_broken_stream_leaves_the_history_as_it_was(client):
    conv = rawchat.Conversation(api="responses", store=True)
    conv.ask(client, "one", model="gpt-4o-mini")
    before, last_id = conv.messages, conv.last_response_id
    with pytest.raises(IncompleteStreamError):
        with conv.stream(
            client, "two", model="gpt-4o-mini", extra_headers={"X-Rawchat-Fault": "no-terminal"}
        ) as stream:
            "".join(stream.text())
    assert (conv.messages, conv.last_response_id) == (before, last_id)
    conv.ask(client, "three", model="gpt-4o-mini")  # the next turn is free to start


def test_a_failed_call_leaves_the_history_as_it_was(client):
    conv = rawchat.Conversation(api="responses")
    with pytest.raises(NotFoundError):
        conv.ask(client, "hi", model="no-such-model")
    assert conv.messages == []


def test_reasoning_items_go_back_only_with_their_encrypted_content():
    from rawchat.conversation.conversation import _input_items

    reply = {
        "role": "assistant",
        "content": "ok",
        "response_output": [
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"type": "reasoning", "id": "rs_2", "summary": [], "encrypted_content": "gAAA"},
            {
                "type": "message",
                "id": "msg_1",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "ok"}],
            },
        ],
    }
    assert _input_items([reply], [reply]) == [
        {"type": "reasoning", "id": "rs_2", "summary": [], "encrypted_content": "gAAA"},
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "ok"}],
        },
    ]


def test_unknown_apis_and_store_on_chat_are_refused():
    with pytest.raises(InvalidRequestError):
        rawchat.Conversation(api="completions")
    with pytest.raises(InvalidRequestError):
        rawchat.Conversation(store=True)
