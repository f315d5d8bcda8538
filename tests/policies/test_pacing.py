"""Pacing and the retry budget, as literal timelines on a fake clock."""

from __future__ import annotations

import pytest

import rawchat
from rawchat.errors import PacingDeadlineError
from rawchat.policies import Policies
from rawchat.policies.pacing import Pacer, RetryBudget
from rawchat.protocol.http import Headers
from rawchat.protocol.ratelimit import TokenBucket, parse_duration


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("6m0s", 360.0),
        ("1s", 1.0),
        ("250ms", 0.25),
        ("1h2m3.5s", 3723.5),
        ("2m", 120.0),
        ("20", 20.0),
        ("0.5s", 0.5),
        ("", None),
        ("soon", None),
    ],
)
def test_reset_durations_in_every_format_providers_send(text, seconds):
    assert parse_duration(text) == seconds


def test_a_bucket_refills_at_its_rate():
    bucket = TokenBucket(capacity=2, rate=1.0)
    bucket.take(2, 0.0)
    assert bucket.wait_for(1, 0.0) == 1.0
    assert bucket.wait_for(1, 0.5) == 0.5
    assert bucket.wait_for(1, 1.0) == 0.0


def test_requests_queue_for_their_slots_first_come_first_served():
    pacer = Pacer(requests_per_minute=60, burst=2)  # one a second after a burst of two
    waits = [pacer.reserve("k", 0, now=0.0) for _ in range(5)]
    assert waits == [0.0, 0.0, 1.0, 2.0, 3.0]


def test_keys_have_their_own_buckets():
    pacer = Pacer(requests_per_minute=60, burst=1)
    assert [pacer.reserve(k, 0, now=0.0) for k in ("a", "b", "a")] == [0.0, 0.0, 1.0]


def test_tokens_per_minute_paces_big_requests():
    pacer = Pacer(tokens_per_minute=6000)  # 100 tokens a second, 6000 at once
    assert pacer.reserve("k", 5000, now=0.0) == 0.0
    assert pacer.reserve("k", 2000, now=0.0) == pytest.approx(10.0)


def test_reported_usage_corrects_the_estimate():
    pacer = Pacer(tokens_per_minute=6000)
    pacer.reserve("k", 1000, now=0.0)
    pacer.correct("k", estimated=1000, actual=4000, now=0.0)  # it was bigger than thought
    assert pacer.reserve("k", 3000, now=0.0) == pytest.approx(10.0)  # 2000 left, not 5000


def test_a_request_that_would_miss_its_deadline_fails_at_once_and_reserves_nothing():
    pacer = Pacer(requests_per_minute=60, burst=1)
    pacer.reserve("k", 0, now=0.0)
    with pytest.raises(
        PacingDeadlineError, match="needs a 1.00 s wait, more than the 0.50 s"
    ) as caught:
        pacer.reserve("k", 0, now=0.0, time_left=0.5)
    assert caught.value.wait == 1.0
    assert pacer.reserve("k", 0, now=0.0) == 1.0  # the refused one took no slot


def test_rate_limit_headers_tighten_the_bucket():
    pacer = Pacer(requests_per_minute=600)
    headers = Headers({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "2s"})
    pacer.observe("k", headers, now=0.0)
    assert pacer.reserve("k", 0, now=0.0) == pytest.approx(2.0)


def test_the_retry_budget_stops_retries_when_most_calls_fail():
    budget = RetryBudget(max_tokens=4, token_ratio=0.5)
    timeline = []
    for success in (False, False, True, True, False):
        budget.record(success)
        timeline.append(budget.allows_retry())
    assert timeline == [True, False, True, True, False]


def test_the_client_paces_its_requests(client, sim):
    slept = []
    paced = rawchat.Client(
        "sk-test-0123456789abcdef",
        sim.base_url,
        policies=Policies(pacer=Pacer(60, burst=1)),
        clock=rawchat.Clock(sleep=slept.append, monotonic=lambda: 0.0),
    )
    for _ in range(3):
        paced.chat([{"role": "user", "content": "hi"}], model="gpt-4o-mini")
    assert slept == [1.0, 2.0]


def test_the_client_retry_budget_turns_a_storm_into_fast_failures(sim):
    client = rawchat.Client(
        "sk-test-0123456789abcdef",
        sim.base_url,
        policies=Policies(retry_budget=RetryBudget(max_tokens=4)),
        clock=rawchat.Clock(sleep=lambda s: None),
    )
    fault = {"X-Rawchat-Fault": "503*"}
    attempts = []
    for _ in range(3):
        with pytest.raises(rawchat.InternalServerError) as caught:
            client.chat(
                [{"role": "user", "content": "hi"}], model="gpt-4o-mini", extra_headers=fault
            )
        attempts.append(len(caught.value.attempts))
    assert attempts == [2, 1, 1]
