"""AsyncClient: the same answers, awaited."""

from __future__ import annotations

import asyncio

import pytest

import rawchat
from rawchat.client.aio import AsyncClient
from rawchat.policies import Policies, UsageMeter

from ..conftest import KEY

HI = [{"role": "user", "content": "hi"}]


def test_chat_stream_and_models_await(sim):
    async def main():
        async with AsyncClient(KEY, sim.base_url) as client:
            done = await client.chat(HI, model="gpt-4o-mini")
            async with client.stream(HI, model="gpt-4o-mini") as stream:
                texts = [text async for text in stream.text()]
            models = await client.models()
            return done, texts, stream.completion, models

    done, texts, streamed, models = asyncio.run(main())
    assert "".join(texts) == streamed.content == done.content
    assert len(texts) > 5
    assert models[0]["id"] == "gpt-4o-mini"


def test_calls_run_concurrently_on_the_event_loop(sim):
    async def main():
        async with AsyncClient(KEY, sim.base_url, max_workers=8) as client:
            return await asyncio.gather(
                *(
                    client.chat([{"role": "user", "content": f"n{i}"}], model="gpt-4o-mini")
                    for i in range(20)
                )
            )

    answers = asyncio.run(main())
    assert [a.content.rsplit('"', 2)[-2] for a in answers] == [f"n{i}" for i in range(20)]


def test_errors_arrive_typed(sim):
    async def main():
        async with AsyncClient(KEY, sim.base_url) as client:
            await client.chat(HI, model="gpt-9")

    with pytest.raises(rawchat.NotFoundError):
        asyncio.run(main())


def test_the_async_client_takes_the_clients_policies_and_clock(sim):
    meter = UsageMeter()

    async def main():
        async with AsyncClient(
            KEY, sim.base_url, policies=Policies(usage=meter), clock=rawchat.Clock()
        ) as client:
            return await client.chat(HI, model="gpt-4o-mini")

    assert asyncio.run(main()).finish_reason == "stop"
    assert meter.total.requests == 1


def test_the_async_client_refuses_a_removed_keyword_as_the_client_does():
    with pytest.raises(rawchat.ConfigError, match="pass policies=Policies\\(usage=...\\)"):
        AsyncClient(KEY, "https://api.test/v1", usage=UsageMeter())
