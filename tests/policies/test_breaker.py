"""The circuit breaker's states, as a literal timeline."""

from __future__ import annotations

import pytest

import rawchat
from rawchat.policies import Policies
from rawchat.policies.breaker import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    CircuitBreaker,
    CircuitOpenError,
    is_failure,
)


@pytest.mark.parametrize(
    "status, failed",
    [(None, True), (500, True), (503, True), (429, True), (400, False), (401, False), (200, False)],
)
def test_what_counts_as_the_endpoints_failure(status, failed):
    assert is_failure(status) is failed


def test_closed_open_half_open_closed():
    breaker = CircuitBreaker("api", window=4, min_calls=4, failure_rate=0.5, cooldown=10)
    timeline = []
    for now, failed in ((0, False), (1, True), (2, False), (3, True)):
        breaker.before(now)
        breaker.record(failed, now)
        timeline.append(breaker.state)
    assert timeline == [CLOSED, CLOSED, CLOSED, OPEN]
    with pytest.raises(CircuitOpenError, match="next probe in 5.0 s") as caught:
        breaker.before(8)
    assert caught.value.retry_in == 5.0
    breaker.before(13)  # the cool-down is over: one probe goes through
    assert breaker.state == HALF_OPEN
    with pytest.raises(CircuitOpenError, match="probe is in flight"):
        breaker.before(13.5)
    breaker.record(False, 14)
    assert breaker.state == CLOSED


def test_a_failed_probe_opens_the_circuit_again():
    breaker = CircuitBreaker(min_calls=1, failure_rate=1.0, cooldown=10)
    breaker.record(True, 0)
    breaker.before(10)
    breaker.record(True, 11)
    assert (breaker.state, breaker.opened_at) == (OPEN, 11)


def test_too_few_calls_never_open_it():
    breaker = CircuitBreaker(min_calls=5)
    for now in range(4):
        breaker.record(True, now)
    assert breaker.state == CLOSED


def test_an_open_circuit_fails_fast_without_a_request(sim):
    client = rawchat.Client(
        "sk-test-0123456789abcdef",
        sim.base_url,
        max_retries=0,
        policies=Policies(breaker=CircuitBreaker(min_calls=2, failure_rate=1.0, cooldown=60)),
    )
    fault = {"X-Rawchat-Fault": "500*"}
    for _ in range(2):
        with pytest.raises(rawchat.InternalServerError):
            client.chat(
                [{"role": "user", "content": "hi"}], model="gpt-4o-mini", extra_headers=fault
            )
    with pytest.raises(CircuitOpenError):
        client.chat([{"role": "user", "content": "hi"}], model="gpt-4o-mini")
    assert sim.request_count == 2
