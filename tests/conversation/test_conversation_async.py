"""Conversation with AsyncClient: the same plan and commit rule, turns awaited."""

from __future__ import annotations

import asyncio

import pytest

import rawchat
from rawchat import Conversation, Summarize
from rawchat.errors import InvalidRequestError

from ..conftest import KEY

MODEL = "gpt-4o-mini"


def users(messages):
    return [m["content"][:7] for m in messages if m["role"] in ("user", "system")]


def run(sim, turns, **options):
    """Run ``turns(client)`` with an ``AsyncClient`` on the simulator."""

    async def main():
        async with rawchat.AsyncClient(KEY, sim.base_url, **options) as client:
            return await turns(client)

    return asyncio.run(main())


def test_ask_async_appends_the_question_and_the_answer(sim):
    conv = Conversation(system="Be terse.")
    reply = run(sim, lambda client: conv.ask_async(client, "hi", model=MODEL))
    assert conv.messages == [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": reply.content},
    ]
    assert "I received 2 messages" in reply.content
    assert conv.last_sent == conv.messages[:2]


def test_a_failed_ask_async_leaves_the_history_as_it_was(sim):
    conv = Conversation()
    conv.add({"role": "user", "content": "earlier"})
    before = conv.to_dict()
    bad = {"X-Rawchat-Fault": "400"}
    with pytest.raises(rawchat.BadRequestError):
        run(sim, lambda client: conv.ask_async(client, "hi", model=MODEL, extra_headers=bad))
    assert conv.to_dict() == before
    conv.add({"role": "assistant", "content": "free again"})  # nothing holds it


def test_stream_async_commits_when_the_stream_completes(sim):
    conv = Conversation()

    async def turn(client):
        async with conv.stream_async(client, "hi", model=MODEL) as stream:
            assert conv.messages == []  # nothing committed mid-stream
            text = "".join([t async for t in stream.text()])
        return text, stream.completion

    text, done = run(sim, turn)
    assert conv.messages[-1]["content"] == text == done.content


def test_a_broken_stream_async_commits_nothing_and_keeps_the_partial(sim):
    conv = Conversation()
    broken = {"X-Rawchat-Fault": "error-mid"}

    async def turn(client):
        async with conv.stream_async(client, "hi", model=MODEL, extra_headers=broken) as s:
            async for _ in s.text():
                pass

    with pytest.raises(rawchat.StreamError) as caught:
        run(sim, turn, max_retries=0)
    assert conv.messages == []
    assert caught.value.partial.content
    conv.add({"role": "user", "content": "free again"})


def test_async_turns_from_many_tasks_are_serialized_turn_by_turn(sim):
    conv = Conversation()

    async def turns(client):
        async def asker(worker):
            for turn in range(5):
                await conv.ask_async(client, f"worker {worker} turn {turn}", model=MODEL)

        await asyncio.gather(*(asker(w) for w in range(8)))

    run(sim, turns)
    messages = conv.messages
    assert [m["role"] for m in messages] == ["user", "assistant"] * 40
    for n in range(40):
        question, answer = messages[2 * n]["content"], messages[2 * n + 1]["content"]
        # Each answer saw the whole history before it, its own question last.
        assert f" I received {2 * n + 1} message" in answer
        assert answer.endswith(f'your last message was: "{question}".')


def test_other_turns_are_refused_while_an_async_stream_is_open(sim):
    conv = Conversation()
    refused = []

    async def turns(client):
        async with conv.stream_async(client, "first", model=MODEL) as stream:
            for attempt in (
                lambda: conv.stream_async(client, "second", model=MODEL),
                lambda: conv.add({"role": "user", "content": "aside"}),
                lambda: conv.reset(),
            ):
                with pytest.raises(InvalidRequestError) as caught:
                    attempt()
                refused.append(caught.value.message)
            with pytest.raises(InvalidRequestError) as caught:
                await conv.ask_async(client, "second", model=MODEL)
            refused.append(caught.value.message)
            "".join([t async for t in stream.text()])
        await conv.ask_async(client, "second", model=MODEL)

    run(sim, turns)
    assert refused == [
        "cannot start another turn: a streamed turn of this conversation is still open",
        "cannot add a message: a streamed turn of this conversation is still open",
        "cannot reset: a streamed turn of this conversation is still open",
        "cannot ask: a streamed turn of this conversation is still open",
    ]
    assert users(conv.messages) == ["first", "second"]


def test_a_blocking_turn_is_refused_while_an_async_turn_awaits_its_answer(sim):
    conv = Conversation()
    refused = []

    async def turns(client):
        slow = {"X-Rawchat-Fault": "delay=0.2"}
        asking = asyncio.ensure_future(
            conv.ask_async(client, "first", model=MODEL, extra_headers=slow)
        )
        await asyncio.sleep(0.05)
        with pytest.raises(InvalidRequestError) as caught:
            conv.add({"role": "user", "content": "aside"})
        refused.append(caught.value.message)
        await asking

    run(sim, turns)
    assert refused == [
        "cannot add a message: an unanswered turn of this conversation is still open"
    ]
    assert users(conv.messages) == ["first"]


def test_a_cancelled_ask_async_commits_nothing_and_frees_the_conversation(sim):
    conv = Conversation()

    async def turns(client):
        slow = {"X-Rawchat-Fault": "delay=5"}
        asking = asyncio.ensure_future(
            conv.ask_async(client, "first", model=MODEL, extra_headers=slow)
        )
        await asyncio.sleep(0.1)
        asking.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asking
        return await conv.ask_async(client, "second", model=MODEL)

    run(sim, turns)
    assert users(conv.messages) == ["second"]


def test_summarize_asks_the_async_client_for_the_summary(sim):
    conv = Conversation(
        system="Be terse.", context_window=300, reserve=50, strategy=Summarize(summary_tokens=40)
    )

    async def turns(client):
        for i in range(1, 9):
            await conv.ask_async(client, f"turn {i}: tell me about topic number {i} please")

    run(sim, turns, model=MODEL)
    assert users(conv.last_sent) == [
        "Be ters",
        "Summary",
        "turn 4:",
        "turn 5:",
        "turn 6:",
        "turn 7:",
        "turn 8:",
    ]
    assert conv.last_trim.dropped_messages == 6


def test_a_responses_conversation_takes_async_turns(sim):
    conv = Conversation(system="Be terse.", api="responses")

    async def turns(client):
        first = await conv.ask_async(client, "hi", model=MODEL)
        async with conv.stream_async(client, "again", model=MODEL) as stream:
            text = "".join([t async for t in stream.text()])
        return first, text, stream.response

    first, text, second = run(sim, turns)
    assert [m["role"] for m in conv.messages] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
    ]
    assert conv.messages[2]["content"] == first.output_text
    assert conv.messages[4]["content"] == text == second.output_text
