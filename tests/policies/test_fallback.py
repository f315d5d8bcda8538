"""Fallbacks and the degraded cache."""

from __future__ import annotations

import pytest

import rawchat
import rawchat.policies
from rawchat.policies.fallback import Fallback, ResponseCache
from rawchat.simulator import Simulator

from ..conftest import KEY

HI = [{"role": "user", "content": "hi"}]


def test_a_failing_model_falls_back_to_the_next_model(sim):
    events = []
    hooks = rawchat.policies.Hooks()
    hooks.on("degraded", events.append)
    client = rawchat.Client(
        KEY, sim.base_url, max_retries=0, fallbacks=[Fallback(model="gpt-4o")], hooks=hooks
    )
    done = client.chat(HI, model="gpt-4o-mini", extra_headers={"X-Rawchat-Fault": "503"})
    assert (done.model, done.degraded) == ("gpt-4o", True)
    assert [e.model for e in events] == ["gpt-4o-mini"]


def test_an_endpoint_that_is_down_falls_over_to_the_next_endpoint():
    with Simulator(faults="503*") as down, Simulator() as up:
        client = rawchat.Client(
            KEY,
            down.base_url,
            max_retries=1,
            sleep=lambda s: None,
            fallbacks=[Fallback(base_url=up.base_url, api_key=KEY)],
        )
        done = client.chat(HI, model="gpt-4o-mini")
        with client.stream(HI, model="gpt-4o-mini") as stream:
            text = "".join(stream.text())
        assert done.degraded and stream.completion.degraded
        assert text == done.content
        assert (down.request_count, up.request_count) == (4, 2)


def test_a_client_error_does_not_fall_back(sim):
    client = rawchat.Client(KEY, sim.base_url, fallbacks=[Fallback(model="gpt-4o")])
    with pytest.raises(rawchat.BadRequestError):
        client.chat(HI, model="gpt-4o-mini", extra_headers={"X-Rawchat-Fault": "400"})
    assert sim.request_count == 1


def test_when_everything_is_down_the_cache_answers_marked_degraded(sim, tmp_path):
    cache = ResponseCache(str(tmp_path))
    client = rawchat.Client(KEY, sim.base_url, max_retries=0, cache=cache)
    fresh = client.chat(HI, model="gpt-4o-mini")
    assert fresh.degraded is False
    down = {"X-Rawchat-Fault": "500*"}
    cached = client.chat(HI, model="gpt-4o-mini", extra_headers=down)
    assert (cached.content, cached.degraded) == (fresh.content, True)
    with client.stream(HI, model="gpt-4o-mini", extra_headers=down) as stream:
        assert "".join(stream.text()) == fresh.content
    assert stream.completion.degraded
    # on disk: a new cache over the same directory still knows it
    again = rawchat.Client(KEY, sim.base_url, max_retries=0, cache=ResponseCache(str(tmp_path)))
    assert again.chat(HI, model="gpt-4o-mini", extra_headers=down).degraded


def test_without_a_cache_hit_the_first_failure_is_raised(sim):
    client = rawchat.Client(KEY, sim.base_url, max_retries=0, cache=ResponseCache())
    with pytest.raises(rawchat.InternalServerError):
        client.chat(HI, model="gpt-4o-mini", extra_headers={"X-Rawchat-Fault": "500"})


def test_the_memory_cache_keeps_the_newest_entries():
    cache = ResponseCache(max_entries=2)
    done = rawchat.Completion(id="c")
    for key in ("a", "b", "c"):
        cache.put(key, done)
    assert (cache.get("a"), cache.get("c")["id"]) == (None, "c")
