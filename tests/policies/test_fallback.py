"""Fallbacks and the degraded cache, around whole and streamed answers alike."""

from __future__ import annotations

import time

import pytest

import rawchat
from rawchat.policies import Hooks, Policies
from rawchat.policies.fallback import Fallback, ResponseCache, Route, Target
from rawchat.simulator import Simulator

from ..conftest import KEY
from ..raw_server import RawServer

HI = [{"role": "user", "content": "hi"}]
NO_WAIT = rawchat.Clock(sleep=lambda s: None)


def answer(client, how, **kwargs):
    """A completion from ``chat()``, or from ``stream()`` read to its end."""
    if how == "chat":
        return client.chat(HI, model="gpt-4o-mini", **kwargs)
    with client.stream(HI, model="gpt-4o-mini", **kwargs) as stream:
        text = "".join(stream.text())
    assert text == stream.completion.content
    return stream.completion


def observed(sims):
    """Each event as (kind, model, which simulator or detail)."""
    hooks, seen = Hooks(), []

    def note(event):
        where = next((name for name, sim in sims.items() if event.url.startswith(sim.base_url)), "")
        seen.append((event.kind, event.model, where or event.detail))

    for kind in ("request", "degraded"):
        hooks.on(kind, note)
    return hooks, seen


BOTH = pytest.mark.parametrize("how", ["chat", "stream"])


@BOTH
def test_a_failing_model_falls_back_to_the_next_model(sim, how):
    hooks, seen = observed({"sim": sim})
    policies = Policies(fallbacks=[Fallback(model="gpt-4o")], hooks=hooks)
    client = rawchat.Client(KEY, sim.base_url, max_retries=0, policies=policies)
    done = answer(client, how, extra_headers={"X-Rawchat-Fault": "503"})
    assert (done.model, done.degraded) == ("gpt-4o", True)
    assert seen == [
        ("request", "gpt-4o-mini", "sim"),
        ("degraded", "gpt-4o-mini", "trying the next fallback"),
        ("request", "gpt-4o", "sim"),
    ]


@BOTH
def test_an_endpoint_that_is_down_falls_over_to_the_next_endpoint(how):
    with Simulator(faults="503*") as down, Simulator() as up:
        policies = Policies(fallbacks=[Fallback(base_url=up.base_url, api_key=KEY)])
        client = rawchat.Client(KEY, down.base_url, max_retries=1, clock=NO_WAIT, policies=policies)
        done = answer(client, how)
        assert done.degraded
        assert done.content.startswith("Hello from the rawchat simulator.")
        assert (down.request_count, up.request_count) == (2, 1)


@BOTH
def test_a_client_error_does_not_fall_back(sim, how):
    policies = Policies(fallbacks=[Fallback(model="gpt-4o")])
    client = rawchat.Client(KEY, sim.base_url, policies=policies)
    with pytest.raises(rawchat.BadRequestError):
        answer(client, how, extra_headers={"X-Rawchat-Fault": "400"})
    assert sim.request_count == 1


@BOTH
def test_when_everything_is_down_the_cache_answers_marked_degraded(sim, tmp_path, how):
    client = rawchat.Client(
        KEY, sim.base_url, max_retries=0, policies=Policies(cache=ResponseCache(str(tmp_path)))
    )
    fresh = answer(client, how)
    assert fresh.degraded is False
    down = {"X-Rawchat-Fault": "500*"}
    cached = answer(client, how, extra_headers=down)
    assert (cached.content, cached.degraded) == (fresh.content, True)
    # on disk: a new cache over the same directory still knows it
    again = rawchat.Client(
        KEY, sim.base_url, max_retries=0, policies=Policies(cache=ResponseCache(str(tmp_path)))
    )
    assert answer(again, how, extra_headers=down).degraded


def test_a_streamed_answer_fills_the_cache_a_whole_one_uses():
    with Simulator() as sim:
        client = rawchat.Client(
            KEY, sim.base_url, max_retries=0, policies=Policies(cache=ResponseCache())
        )
        streamed = answer(client, "stream")
        cached = answer(client, "chat", extra_headers={"X-Rawchat-Fault": "500*"})
    assert (cached.content, cached.degraded) == (streamed.content, True)


@BOTH
def test_without_a_cache_hit_the_first_failure_is_raised(sim, how):
    client = rawchat.Client(
        KEY, sim.base_url, max_retries=0, policies=Policies(cache=ResponseCache())
    )
    with pytest.raises(rawchat.InternalServerError):
        answer(client, how, extra_headers={"X-Rawchat-Fault": "500"})


@BOTH
def test_the_deadline_bounds_the_whole_call_fallbacks_included(how):
    with RawServer(lambda conn, request: time.sleep(1)) as silent, Simulator() as up:
        policies = Policies(fallbacks=[Fallback(base_url=up.base_url, api_key=KEY)])
        client = rawchat.Client(
            KEY, silent.base_url, timeout=(1, 5), deadline=0.3, policies=policies
        )
        with pytest.raises(rawchat.APITimeoutError):
            answer(client, how)
        assert up.request_count == 0


# -- chat() and stream() take one route ---------------------------------------


def journey(how, primed):
    """Everything one call meets with both endpoints down, a model fallback and an
    endpoint fallback, and a cache primed (or not) while the primary was up."""
    with Simulator() as primary, Simulator(faults="503*") as backup:
        hooks, seen = observed({"primary": primary, "backup": backup})
        policies = Policies(
            fallbacks=[Fallback(model="gpt-4o"), Fallback(base_url=backup.base_url, api_key=KEY)],
            cache=ResponseCache(),
            hooks=hooks,
        )
        client = rawchat.Client(KEY, primary.base_url, max_retries=0, policies=policies)
        if primed:
            answer(client, how)
            seen.clear()
        try:
            done = answer(client, how, extra_headers={"X-Rawchat-Fault": "503*"})
        except rawchat.APIError as exc:
            return seen, type(exc).__name__
        return seen, (done.model, done.degraded)


def test_chat_and_stream_try_the_same_targets_and_end_the_same_way():
    for primed in (True, False):
        assert journey("chat", primed) == journey("stream", primed)


def test_the_route_tries_each_target_then_the_cache():
    seen, outcome = journey("chat", primed=True)
    assert seen == [
        ("request", "gpt-4o-mini", "primary"),
        ("degraded", "gpt-4o-mini", "trying the next fallback"),
        ("request", "gpt-4o", "primary"),
        ("degraded", "gpt-4o", "trying the next fallback"),
        ("request", "gpt-4o-mini", "backup"),
        ("degraded", "gpt-4o-mini", "trying the next fallback"),
        ("degraded", "gpt-4o-mini", "answered from the cache"),
    ]
    assert outcome == ("gpt-4o-mini", True)
    assert journey("chat", primed=False)[1] == "InternalServerError"


def test_a_route_resumes_after_the_target_that_failed():
    route = Route([Target("a", "m"), Target("b", "m", degraded=True)], hooks=Hooks())
    assert route.run(lambda target: target.endpoint, dict) == "a"
    assert route.degraded is False
    route.failed(rawchat.APIConnectionError("cut"))
    assert route.run(lambda target: target.endpoint, dict) == "b"
    assert route.degraded is True


def test_the_memory_cache_keeps_the_newest_entries():
    cache = ResponseCache(max_entries=2)
    done = rawchat.Completion(id="c")
    for key in ("a", "b", "c"):
        cache.put(key, done)
    assert (cache.get("a"), cache.get("c")["id"]) == (None, "c")
