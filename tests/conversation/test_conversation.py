"""Conversation memory: commit on success only, trimming by strategy, threads, saving."""

from __future__ import annotations

import gc
import json
import os
import threading

import pytest

import rawchat
from rawchat import Conversation, DropOldest, KeepFirstAndRecent, Summarize
from rawchat.errors import (
    ContextOverflowError,
    IncompleteStreamError,
    InternalServerError,
    InvalidRequestError,
)

from ..conftest import KEY

MODEL = "gpt-4o-mini"


@pytest.fixture
def strict(sim):
    """A client that gives up at once, so faults reach the conversation."""
    return rawchat.Client(KEY, sim.base_url, max_retries=0)


def users(messages):
    return [m["content"][:7] for m in messages if m["role"] in ("user", "system")]


def long_conversation(client, strategy, turns=8):
    conv = Conversation(system="Be terse.", context_window=300, reserve=50, strategy=strategy)
    for i in range(1, turns + 1):
        conv.ask(client, f"turn {i}: tell me about topic number {i} please", model=MODEL)
    return conv


def test_ask_appends_the_question_and_the_answer(client):
    conv = Conversation(system="Be terse.")
    reply = conv.ask(client, "hi", model=MODEL)
    assert conv.messages == [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": reply.content},
    ]
    assert "I received 2 messages" in reply.content


def test_stream_commits_when_the_stream_completes(client):
    conv = Conversation()
    with conv.stream(client, "hi", model=MODEL) as stream:
        assert conv.messages == []  # nothing committed mid-stream
        text = "".join(stream.text())
    assert conv.messages[-1]["content"] == text


CHAT_FAULTS = ["400", "401", "404", "429", "quota", "500", "502", "503", "drop", "html"]
STREAM_FAULTS = [
    "drop-mid-chunk",
    "bad-json",
    "error-mid",
    "error-event",
    "truncate=4",
    "drop-after=3",
]


@pytest.mark.parametrize(
    "operation, fault",
    [("ask", f) for f in CHAT_FAULTS] + [("stream", f) for f in CHAT_FAULTS + STREAM_FAULTS],
)
def test_a_failed_turn_leaves_the_history_exactly_as_before(strict, operation, fault):
    conv = Conversation(system="S")
    conv.ask(strict, "first", model=MODEL)
    before = json.dumps(conv.to_dict(), sort_keys=True)
    headers = {"X-Rawchat-Fault": fault}
    with pytest.raises(rawchat.RawchatError):
        if operation == "ask":
            conv.ask(strict, "second", model=MODEL, extra_headers=headers)
        else:
            with conv.stream(strict, "second", model=MODEL, extra_headers=headers) as stream:
                "".join(stream.text())
    assert json.dumps(conv.to_dict(), sort_keys=True) == before


def test_a_broken_stream_keeps_the_partial_answer_on_the_error_not_in_the_history(strict):
    conv = Conversation()
    with pytest.raises(IncompleteStreamError) as caught:
        with conv.stream(
            strict, "hi", model=MODEL, extra_headers={"X-Rawchat-Fault": "truncate=4"}
        ) as stream:
            "".join(stream.text())
    assert caught.value.partial.content == "Hello from the"
    assert conv.messages == []


def test_a_server_error_mid_conversation_changes_nothing(strict):
    conv = Conversation()
    conv.ask(strict, "one", model=MODEL)
    with pytest.raises(InternalServerError):
        conv.ask(strict, "two", model=MODEL, extra_headers={"X-Rawchat-Fault": "500"})
    assert [m["content"] for m in conv.messages if m["role"] == "user"] == ["one"]


# -- trimming -------------------------------------------------------------------


def test_drop_oldest_keeps_the_system_prompt_and_the_latest_turns(client):
    conv = long_conversation(client, DropOldest())
    assert users(conv.last_sent) == ["Be ters", "turn 5:", "turn 6:", "turn 7:", "turn 8:"]
    assert conv.last_trim == rawchat.TrimReport("drop-oldest", 250, 166, 8, 192)
    assert len(conv.messages) == 17  # the history itself keeps everything


def test_keep_first_and_recent_keeps_the_first_turn(client):
    conv = long_conversation(client, KeepFirstAndRecent())
    assert users(conv.last_sent) == ["Be ters", "turn 1:", "turn 6:", "turn 7:", "turn 8:"]


def test_summarize_folds_dropped_turns_into_one_summary_message(client):
    conv = long_conversation(client, Summarize(summary_tokens=40))
    assert users(conv.last_sent) == [
        "Be ters",
        "Summary",
        "turn 4:",
        "turn 5:",
        "turn 6:",
        "turn 7:",
        "turn 8:",
    ]
    assert conv.last_sent[1]["content"] == (
        "Summary of the earlier conversation:\n"
        "turn 1: tell me about topic number 1 please Hello from the rawchat simulator."
    )  # the simulator's extractive summary: the turns' sentences, cut to 40 tokens
    assert conv.last_trim.dropped_messages == 6


def test_the_summary_is_updated_only_when_more_turns_are_dropped(client):
    conv = Conversation(context_window=300, reserve=50, strategy=Summarize(summary_tokens=40))
    summaries = []
    for i in range(1, 9):
        conv.ask(client, f"turn {i}: tell me about topic number {i} please", model=MODEL)
        summaries.append(conv.last_trim.summarized_messages)
    assert summaries == [0, 0, 0, 0, 0, 6, 0, 0]


def test_trimming_is_sticky_so_the_prompt_prefix_stays_put(client):
    conv = Conversation(context_window=300, reserve=50)
    firsts = []
    for i in range(1, 11):
        conv.ask(client, f"turn {i}: tell me about topic number {i} please", model=MODEL)
        firsts.append(conv.last_sent[0]["content"][:7])
    # Each trim drops down to 75% of the budget, two turns here; the prompt
    # then starts at the same turn for the next two requests.
    assert firsts == ["turn 1:"] * 5 + ["turn 3:"] * 2 + ["turn 5:"] * 2 + ["turn 7:"]


def test_a_pinned_turn_is_never_dropped(client):
    conv = Conversation(context_window=300, reserve=50)
    conv.add({"role": "user", "content": "My name is Ann."}, pinned=True)
    conv.add({"role": "assistant", "content": "Noted."})
    for i in range(1, 9):
        conv.ask(client, f"turn {i}: tell me about topic number {i} please", model=MODEL)
    assert users(conv.last_sent) == ["My name", "turn 5:", "turn 6:", "turn 7:", "turn 8:"]


def test_tool_calls_and_their_results_are_dropped_together(client):
    tools = [
        {
            "type": "function",
            "function": {"name": "lookup", "parameters": {"properties": {"q": {}}}},
        }
    ]
    conv = Conversation(context_window=350, reserve=50)
    reply = conv.ask(client, "look this up", model=MODEL, tools=tools)
    conv.ask(client, tool_results={reply.tool_calls[0].id: "42"}, model=MODEL)
    for i in range(1, 8):
        conv.ask(client, f"turn {i}: tell me about topic number {i} please", model=MODEL)
    # The first turn (question, tool call, tool result, answer) went as one.
    assert conv.last_trim.dropped_messages == 4 + 2 * 2
    roles = [m["role"] for m in conv.last_sent]
    assert "tool" not in roles and roles[0] == "user"


def test_a_message_larger_than_the_budget_is_refused_before_sending(client, sim):
    conv = Conversation(context_window=100, reserve=50)
    with pytest.raises(ContextOverflowError, match="do not fit the budget of 50"):
        conv.ask(client, "word " * 200, model=MODEL)
    assert sim.request_count == 0
    assert conv.messages == []


def test_the_window_comes_from_the_model_of_the_call(client):
    conv = Conversation()
    conv.ask(client, "hi", model="rawchat-sim")  # not in the table: 8,192
    assert conv.last_trim.budget == 8_192 - 2_048
    conv.ask(client, "hi", model="deepseek-chat", max_tokens=100)
    assert conv.last_trim.budget == 65_536 - 100


def test_a_failed_turn_does_not_keep_the_summary_written_for_it(strict):
    conv = Conversation(context_window=300, reserve=50, strategy=Summarize(summary_tokens=40))
    for i in range(1, 6):
        conv.ask(strict, f"turn {i}: tell me about topic number {i} please", model=MODEL)
    before = json.dumps(conv.to_dict(), sort_keys=True)
    with pytest.raises(InternalServerError):
        conv.ask(
            strict,
            "turn 6: tell me about topic number 6 please",
            model=MODEL,
            extra_headers={"X-Rawchat-Fault": "500"},
        )
    assert json.dumps(conv.to_dict(), sort_keys=True) == before
    conv.ask(strict, "turn 6: tell me about topic number 6 please", model=MODEL)
    assert conv.last_trim.summarized_messages == 6
    assert conv.to_dict()["threads"]["main"]["summary"].startswith("turn 1: tell me")


def test_a_streamed_turn_commits_its_summary_when_the_stream_completes(client):
    conv = Conversation(context_window=300, reserve=50, strategy=Summarize(summary_tokens=40))
    for i in range(1, 6):
        conv.ask(client, f"turn {i}: tell me about topic number {i} please", model=MODEL)
    with conv.stream(client, "turn 6: tell me about topic number 6 please", model=MODEL) as s:
        assert conv.to_dict()["threads"]["main"]["summary"] is None
        "".join(s.text())
    assert conv.last_trim.summarized_messages == 6
    assert users(conv.last_sent)[:2] == ["Summary", "turn 4:"]


# -- threads, reset, saving -------------------------------------------------------------


def test_threads_keep_separate_histories(client):
    conv = Conversation(system="S")
    conv.ask(client, "about cats", model=MODEL)
    conv.switch("dogs")
    conv.ask(client, "about dogs", model=MODEL)
    assert conv.threads == ["main", "dogs"]
    assert [m["content"] for m in conv.messages if m["role"] == "user"] == ["about dogs"]
    conv.switch("main")
    assert [m["content"] for m in conv.messages if m["role"] == "user"] == ["about cats"]


def test_reset_keeps_or_drops_the_system_prompt(client):
    conv = Conversation(system="S")
    conv.ask(client, "hi", model=MODEL)
    conv.reset()
    assert conv.messages == [{"role": "system", "content": "S"}]
    conv.reset(keep_system=False)
    assert conv.messages == []


def test_save_and_load_round_trip(client, tmp_path):
    conv = Conversation(
        system="S", context_window=300, reserve=50, strategy=KeepFirstAndRecent(), model=MODEL
    )
    for i in range(1, 8):
        conv.ask(client, f"turn {i}: tell me about topic number {i} please")
    conv.switch("other")
    conv.ask(client, "elsewhere")
    path = tmp_path / "conv.json"
    conv.save(str(path))
    loaded = Conversation.load(str(path))
    assert loaded.to_dict() == conv.to_dict()
    assert isinstance(loaded.strategy, KeepFirstAndRecent)
    assert os.listdir(tmp_path) == ["conv.json"]


#: A conversation as ``save()`` writes it: a pinned turn, a turn folded into
#: the summary, a kept turn.
SAVED = {
    "format": "rawchat.conversation/1",
    "system": "S",
    "model": MODEL,
    "context_window": 300,
    "reserve": 50,
    "strategy": "summarize",
    "thread": "main",
    "threads": {
        "main": {
            "messages": [
                {"role": "user", "content": "My name is Ann."},
                {"role": "assistant", "content": "Noted."},
                {"role": "user", "content": "Tell me about cats."},
                {"role": "assistant", "content": "Cats purr."},
                {"role": "user", "content": "And birds?"},
                {"role": "assistant", "content": "Birds sing."},
            ],
            "pinned": [0],
            "start": 2,
            "summary": "The user asked about cats.",
            "summary_upto": 2,
        }
    },
}


def test_a_saved_conversation_resumes_where_its_trimming_left_off(client, tmp_path):
    path = tmp_path / "conv.json"
    path.write_text(json.dumps(SAVED), encoding="utf-8")
    conv = Conversation.load(str(path))
    assert conv.to_dict() == SAVED
    assert isinstance(conv.strategy, Summarize)
    conv.ask(client, "And dogs?")
    assert [m["content"] for m in conv.last_sent] == [
        "S",
        "Summary of the earlier conversation:\nThe user asked about cats.",
        "My name is Ann.",
        "Noted.",
        "And birds?",
        "Birds sing.",
        "And dogs?",
    ]
    assert conv.last_trim.dropped_messages == 2


def test_loading_garbage_says_what_is_wrong(tmp_path):
    path = tmp_path / "x.json"
    path.write_text("{not json")
    with pytest.raises(InvalidRequestError, match="cannot load a conversation from"):
        Conversation.load(str(path))


def test_asking_with_nothing_is_refused(client):
    with pytest.raises(InvalidRequestError, match="nothing to send"):
        Conversation().ask(client, model=MODEL)


@pytest.mark.parametrize(
    "text, problem",
    [
        ("[1, 2]", "a JSON object, not a list"),
        ('"chat"', "a JSON object, not a str"),
        ("{", "Expecting property name"),
        ('{"format": "rawchat.conversation/1", "threads": []}', ""),
        ("[" * 100_000, "recursion"),
    ],
)
def test_every_malformed_saved_file_gets_the_same_clear_error(tmp_path, text, problem):
    path = tmp_path / "chat.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InvalidRequestError, match=f"cannot load a conversation from .*{problem}"):
        Conversation.load(str(path))


# -- one turn at a time ------------------------------------------------------------------

STREAM_OPEN = (
    "a streamed turn of this conversation is still open\n"
    "  hint: read that stream to its end or close it (leave its `with` block) first; "
    "a conversation takes one turn at a time"
)


def test_asks_from_many_threads_are_serialized_turn_by_turn(client):
    conv = Conversation()
    failures = []

    def asker(worker):
        try:
            for turn in range(25):
                conv.ask(client, f"worker {worker} turn {turn}", model=MODEL)
        except Exception as exc:  # reported below, not lost in the thread
            failures.append(exc)

    workers = [threading.Thread(target=asker, args=(w,)) for w in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert failures == []
    messages = conv.messages
    assert len(messages) == 400
    assert [m["role"] for m in messages] == ["user", "assistant"] * 200
    for n in range(200):
        question, answer = messages[2 * n]["content"], messages[2 * n + 1]["content"]
        # Each answer saw the whole history before it, its own question last.
        assert f" I received {2 * n + 1} message" in answer
        assert answer.endswith(f'your last message was: "{question}".')
    asked = sorted(m["content"] for m in messages if m["role"] == "user")
    assert asked == sorted(f"worker {w} turn {t}" for w in range(8) for t in range(25))


def test_a_second_turn_is_refused_while_a_stream_is_open(client):
    conv = Conversation()
    with conv.stream(client, "first", model=MODEL) as stream:
        for attempt in (
            lambda: conv.ask(client, "second", model=MODEL),
            lambda: conv.stream(client, "second", model=MODEL),
            lambda: conv.add({"role": "user", "content": "aside"}),
            lambda: conv.reset(),
        ):
            with pytest.raises(InvalidRequestError) as caught:
                attempt()
            assert str(caught.value).split(": ", 1)[1] == STREAM_OPEN
        "".join(stream.text())
    conv.ask(client, "second", model=MODEL)
    assert users(conv.messages) == ["first", "second"]


def test_the_refusal_names_what_was_refused(client):
    conv = Conversation()
    with conv.stream(client, "first", model=MODEL):
        with pytest.raises(InvalidRequestError) as caught:
            conv.ask(client, "second", model=MODEL)
    assert caught.value.message == (
        "cannot ask: a streamed turn of this conversation is still open"
    )


def test_a_completed_stream_frees_the_conversation_without_its_with_block(client):
    conv = Conversation()
    stream = conv.stream(client, "first", model=MODEL)
    "".join(stream.text())
    conv.ask(client, "second", model=MODEL)
    assert users(conv.messages) == ["first", "second"]


def test_a_stream_closed_early_frees_the_conversation_and_commits_nothing(client):
    conv = Conversation()
    with conv.stream(client, "first", model=MODEL) as stream:
        next(iter(stream.text()))
    conv.ask(client, "second", model=MODEL)
    assert users(conv.messages) == ["second"]


@pytest.mark.parametrize("fault", ["401", "truncate=4"])
def test_a_failed_stream_frees_the_conversation(strict, fault):
    conv = Conversation()
    with pytest.raises(rawchat.RawchatError):
        with conv.stream(
            strict, "first", model=MODEL, extra_headers={"X-Rawchat-Fault": fault}
        ) as s:
            "".join(s.text())
    conv.ask(strict, "second", model=MODEL)
    assert users(conv.messages) == ["second"]


def test_a_stream_dropped_unread_frees_the_conversation(client):
    conv = Conversation()
    stream = conv.stream(client, "never read", model=MODEL)
    del stream
    gc.collect()
    conv.ask(client, "second", model=MODEL)
    assert users(conv.messages) == ["second"]


def test_a_turn_stream_reads_like_the_client_stream(client):
    conv = Conversation()
    with conv.stream(client, "hi", model=MODEL) as stream:
        chunks = list(stream)
    assert isinstance(stream.stream, rawchat.Stream)
    assert stream.retries_taken == 0
    assert stream.completion.content == "".join(
        c.choices[0].content for c in chunks if c.choices and c.choices[0].content
    )
    assert conv.messages[-1] == {"role": "assistant", "content": stream.completion.content}
