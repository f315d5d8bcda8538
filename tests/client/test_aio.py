"""AsyncClient: the same answers and policies, on one event loop."""

from __future__ import annotations

import asyncio
import threading

import pytest

import rawchat
from rawchat.client.aio import AsyncClient
from rawchat.errors import APIConnectionError
from rawchat.policies import Fallback, Pacer, Policies, ResponseCache, UsageMeter
from rawchat.simulator import Simulator

from ..conftest import KEY
from ..raw_server import RawServer

HI = [{"role": "user", "content": "hi"}]


class FakeTime:
    """A clock that only moves when slept on; the event loop's waits are recorded, not waited."""

    def __init__(self, random: float = 0.5) -> None:
        self.now = 1000.0
        self.slept = []
        self.clock = rawchat.Clock(
            sleep=self._never,
            asleep=self.asleep,
            monotonic=lambda: self.now,
            wall=lambda: 1_700_000_000.0,
            random=lambda: random,
        )

    async def asleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.now += seconds

    def _never(self, seconds: float) -> None:
        raise AssertionError("the async client slept on the thread")


def run(coroutine):
    return asyncio.run(coroutine)


def test_chat_stream_and_models_await(sim):
    async def main():
        async with AsyncClient(KEY, sim.base_url) as client:
            done = await client.chat(HI, model="gpt-4o-mini")
            async with client.stream(HI, model="gpt-4o-mini") as stream:
                texts = [text async for text in stream.text()]
            models = await client.models()
            return done, texts, stream.completion, models

    done, texts, streamed, models = run(main())
    assert "".join(texts) == streamed.content == done.content
    assert len(texts) > 5
    assert streamed.usage.total_tokens == done.usage.total_tokens
    assert models[0]["id"] == "gpt-4o-mini"


def test_calls_run_concurrently_on_the_event_loop_with_no_thread_per_call(sim):
    threads = []

    async def main():
        async with AsyncClient(KEY, sim.base_url) as client:
            calls = [
                client.chat([{"role": "user", "content": f"n{i}"}], model="gpt-4o-mini")
                for i in range(20)
            ]
            threads.append(threading.active_count())
            return await asyncio.gather(*calls)

    before = threading.active_count()
    answers = run(main())
    assert [a.content.rsplit('"', 2)[-2] for a in answers] == [f"n{i}" for i in range(20)]
    assert threads == [before]


def test_errors_arrive_typed(sim):
    async def main():
        async with AsyncClient(KEY, sim.base_url) as client:
            await client.chat(HI, model="gpt-9")

    with pytest.raises(rawchat.NotFoundError):
        run(main())


def test_the_async_client_takes_the_clients_policies_and_clock(sim):
    meter = UsageMeter()

    async def main():
        async with AsyncClient(
            KEY, sim.base_url, policies=Policies(usage=meter), clock=rawchat.Clock()
        ) as client:
            return await client.chat(HI, model="gpt-4o-mini")

    assert run(main()).finish_reason == "stop"
    assert meter.total.requests == 1


def test_the_async_client_refuses_a_removed_keyword_as_the_client_does():
    with pytest.raises(rawchat.ConfigError, match="pass policies=Policies\\(usage=...\\)"):
        AsyncClient(KEY, "https://api.test/v1", usage=UsageMeter())


@pytest.mark.parametrize("name", ["session", "max_workers"])
def test_the_async_client_says_what_it_takes_instead_of_a_session_or_threads(name):
    with pytest.raises(rawchat.ConfigError, match="no requests.Session and no threads") as caught:
        AsyncClient(KEY, "https://api.test/v1", **{name: object()})
    assert (
        caught.value.hint == "pass verify= (a CA bundle path, or False), proxy= and pool_maxsize="
    )


def test_the_async_clients_repr_shows_the_last_four_characters_of_the_key():
    assert repr(AsyncClient(KEY, "https://api.test/v1")) == (
        "AsyncClient(base_url='https://api.test/v1', api_key='...cdef')"
    )


@pytest.mark.parametrize(
    "fault, max_retries, random, slept, outcome",
    [
        # full jitter: random * min(8, 0.5 * 2 ** (retry - 1)), as for Client
        ("503*2", 2, 0.5, [0.25, 0.5], 2),
        ("503*4", 4, 1.0, [0.5, 1.0, 2.0, 4.0], 4),
        ("503*", 2, 0.5, [0.25, 0.5], rawchat.InternalServerError),
        ("400", 2, 0.5, [], rawchat.BadRequestError),
    ],
)
@pytest.mark.parametrize("how", ["chat", "stream"])
def test_retry_schedules_are_the_awaited_waits_on_the_injected_clock(
    sim, how, fault, max_retries, random, slept, outcome
):
    fake = FakeTime(random=random)
    headers = {"X-Rawchat-Fault": fault}

    async def main():
        async with AsyncClient(
            f"{KEY}-{fault}-{how}", sim.base_url, max_retries=max_retries, clock=fake.clock
        ) as client:
            if how == "chat":
                return await client.chat(HI, model="gpt-4o-mini", extra_headers=headers)
            async with client.stream(HI, model="gpt-4o-mini", extra_headers=headers) as stream:
                async for _ in stream:
                    pass
            return stream.completion

    if isinstance(outcome, int):
        assert run(main()).retries_taken == outcome
    else:
        with pytest.raises(outcome):
            run(main())
    assert fake.slept == slept
    assert sim.request_count == len(slept) + 1


def test_a_pacing_wait_is_awaited_on_the_injected_clock(sim):
    fake = FakeTime()
    pacer = Pacer(requests_per_minute=60, burst=1)  # a request a second

    async def main():
        async with AsyncClient(
            KEY, sim.base_url, clock=fake.clock, policies=Policies(pacer=pacer)
        ) as client:
            for _ in range(3):
                await client.chat(HI, model="gpt-4o-mini")

    run(main())
    assert fake.slept == [1.0, 1.0]


@pytest.mark.parametrize("how", ["chat", "stream"])
def test_a_failing_model_falls_back_to_the_next_model(sim, how):
    policies = Policies(fallbacks=[Fallback(model="gpt-4o")])

    async def main():
        async with AsyncClient(KEY, sim.base_url, max_retries=0, policies=policies) as client:
            headers = {"X-Rawchat-Fault": "503"}
            if how == "chat":
                return await client.chat(HI, model="gpt-4o-mini", extra_headers=headers)
            async with client.stream(HI, model="gpt-4o-mini", extra_headers=headers) as stream:
                "".join([text async for text in stream.text()])
            return stream.completion

    done = run(main())
    assert (done.model, done.degraded) == ("gpt-4o", True)


def test_an_endpoint_that_is_down_falls_over_to_the_next_endpoint():
    with Simulator(faults="503*") as down, Simulator() as up:
        policies = Policies(fallbacks=[Fallback(base_url=up.base_url, api_key=KEY)])

        async def main():
            async with AsyncClient(
                KEY, down.base_url, max_retries=1, clock=FakeTime().clock, policies=policies
            ) as client:
                return await client.chat(HI, model="gpt-4o-mini")

        done = run(main())
        assert done.degraded and done.content.startswith("Hello from the rawchat simulator.")
        assert (down.request_count, up.request_count) == (2, 1)


@pytest.mark.parametrize("how", ["chat", "stream"])
def test_when_everything_is_down_the_cache_answers_marked_degraded(sim, tmp_path, how):
    cache = ResponseCache(str(tmp_path))

    async def ask(client, headers):
        if how == "chat":
            return await client.chat(HI, model="gpt-4o-mini", extra_headers=headers)
        async with client.stream(HI, model="gpt-4o-mini", extra_headers=headers) as stream:
            "".join([text async for text in stream.text()])
        return stream.completion

    async def main():
        async with AsyncClient(
            KEY, sim.base_url, max_retries=0, policies=Policies(cache=cache)
        ) as client:
            return await ask(client, {}), await ask(client, {"X-Rawchat-Fault": "500*"})

    fresh, cached = run(main())
    assert fresh.degraded is False
    assert (cached.content, cached.degraded) == (fresh.content, True)


def test_a_stream_cut_before_any_content_is_opened_again():
    async def main(sim):
        headers = {"X-Rawchat-Fault": "truncate=1"}
        async with AsyncClient(KEY, sim.base_url, clock=FakeTime().clock) as client:
            async with client.stream(HI, model="gpt-4o-mini", extra_headers=headers) as stream:
                text = "".join([text async for text in stream.text()])
            return text, stream.completion

    with Simulator() as sim:
        text, done = run(main(sim))
        assert sim.request_count == 2
    assert text == done.content and done.retries_taken == 1


def test_the_responses_methods_await(sim):
    async def main():
        async with AsyncClient(KEY, sim.base_url) as client:
            whole = await client.respond("hi", model="gpt-4o-mini")
            async with client.respond_stream("hi", model="gpt-4o-mini") as stream:
                texts = [text async for text in stream.text()]
            stored = await client.retrieve_response(whole.id)
            deleted = await client.delete_response(whole.id)
            return whole, texts, stream.response, stored, deleted

    whole, texts, streamed, stored, deleted = run(main())
    assert "".join(texts) == streamed.output_text == whole.output_text == stored.output_text
    assert streamed.status == "completed"
    assert deleted == {"id": whole.id, "object": "response", "deleted": True}


def test_a_stream_not_read_to_its_end_has_no_completion_but_its_partial(sim):
    async def main():
        async with AsyncClient(KEY, sim.base_url) as client:
            async with client.stream(HI, model="gpt-4o-mini") as stream:
                async for _ in stream.text():
                    break
            return stream

    stream = run(main())
    with pytest.raises(rawchat.IncompleteStreamError, match="closed before it finished"):
        stream.completion


def test_streams_one_after_another_share_one_connection(sim):
    async def main():
        async with AsyncClient(KEY, sim.base_url) as client:
            for _ in range(3):
                async with client.stream(HI, model="gpt-4o-mini") as stream:
                    "".join([text async for text in stream.text()])
            return client.transport.open_connections, client.transport.idle_connections

    assert run(main()) == (1, 1)


def test_cancelling_a_stream_task_closes_its_connection():
    release = threading.Event()
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    event = b'data: {"choices":[{"index":0,"delta":{"content":"x"}}]}\n\n'

    def script(conn, request):
        conn.sendall(head + b"%x\r\n%s\r\n" % (len(event), event))
        release.wait(10)  # then silence: the reader waits until cancelled

    async def main(server):
        async with AsyncClient(KEY, server.base_url, timeout=(2, 30)) as client:
            seen = asyncio.Event()

            async def read():
                async with client.stream(HI, model="m") as stream:
                    async for _ in stream.text():
                        seen.set()

            task = asyncio.ensure_future(read())
            await asyncio.wait_for(seen.wait(), 10)
            during = client.transport.open_connections
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return during, client.transport.open_connections

    with RawServer(script) as server:
        try:
            assert run(main(server)) == (1, 0)
        finally:
            release.set()


def test_a_drop_after_content_is_not_retried_and_keeps_the_partial_answer():
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    event = b'data: {"choices":[{"index":0,"delta":{"content":"partial answer"}}]}\n\n'

    def script(conn, request):
        conn.sendall(head + b"%x\r\n%s\r\n" % (len(event), event) + b"ff\r\ndata: cut")

    async def main(server):
        seen = []
        async with AsyncClient(KEY, server.base_url) as client:
            with pytest.raises(APIConnectionError, match="broke off") as caught:
                async with client.stream(HI, model="m") as stream:
                    async for text in stream.text():
                        seen.append(text)
            return seen, caught.value, client.transport.open_connections

    with RawServer(script) as server:
        seen, error, still_open = run(main(server))
        assert len(server.requests) == 1
    assert seen == ["partial answer"]
    assert error.partial.content == "partial answer"
    assert still_open == 0


def test_a_thousand_concurrent_streams_all_complete_over_the_default_pool(sim):
    # The simulator's threaded server accepts a handful of connections at a
    # time; the pool's limit (10 per host) queues the rest, as it would a
    # real burst. A liveness bound, not a measurement (see benchmarks/).
    async def main():
        async with AsyncClient(KEY, sim.base_url, timeout=(30, 60)) as client:

            async def one(i):
                messages = [{"role": "user", "content": f"n{i}"}]
                async with client.stream(messages, model="gpt-4o-mini") as stream:
                    return "".join([text async for text in stream.text()])

            texts = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(1000))), 120)
            return texts, client.transport.open_connections

    texts, still_open = run(main())
    assert [t.rsplit('"', 2)[-2] for t in texts] == [f"n{i}" for i in range(1000)]
    assert still_open <= 10
