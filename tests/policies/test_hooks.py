"""Hooks see requests, responses, retries, errors."""

from __future__ import annotations

import pytest

import rawchat
import rawchat.policies
from rawchat.policies import Policies

from ..conftest import KEY


def test_every_kind_of_event_reaches_its_handlers(sim):
    seen = []
    hooks = rawchat.policies.Hooks()
    for kind in ("request", "response", "retry", "error"):
        hooks.on(kind, lambda e: seen.append((e.kind, e.attempt, e.status)))
    client = rawchat.Client(
        KEY,
        sim.base_url,
        policies=Policies(hooks=hooks),
        max_retries=1,
        clock=rawchat.Clock(sleep=lambda s: None),
    )
    with pytest.raises(rawchat.InternalServerError):
        client.chat(
            [{"role": "user", "content": "hi"}],
            model="gpt-4o-mini",
            extra_headers={"X-Rawchat-Fault": "500*"},
        )
    assert seen == [
        ("request", 1, None),
        ("response", 1, 500),
        ("retry", 1, 500),
        ("request", 2, None),
        ("response", 2, 500),
        ("error", 2, 500),
    ]


def test_a_hook_that_raises_does_not_break_the_call(sim, caplog):
    hooks = rawchat.policies.Hooks()
    hooks.on("response", lambda e: 1 / 0)
    client = rawchat.Client(KEY, sim.base_url, policies=Policies(hooks=hooks))
    assert (
        client.chat([{"role": "user", "content": "hi"}], model="gpt-4o-mini").finish_reason
        == "stop"
    )
    assert "a response hook raised" in caplog.text


def test_unknown_events_are_refused():
    with pytest.raises(ValueError, match="unknown event 'retries'"):
        rawchat.policies.Hooks().on("retries", print)
