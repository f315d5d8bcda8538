"""The retry policy as tables: which outcomes retry, and after how long."""

from __future__ import annotations

import pytest

from rawchat.errors import ConfigError
from rawchat.protocol.http import Headers
from rawchat.protocol.retry import Decision, RetryPolicy, parse_http_date, server_wait

NOW = 1_700_000_000.0  # 2023-11-14 22:13:20 GMT


def test_the_default_backoff_caps_double_from_half_a_second_to_eight():
    policy = RetryPolicy(jitter="none")
    assert [policy.backoff(n) for n in range(1, 8)] == [
        0.5,
        1.0,
        2.0,
        4.0,
        8.0,
        8.0,
        8.0,
    ]


@pytest.mark.parametrize(
    "jitter, rand, expected",
    [
        ("full", 0.0, 0.0),
        ("full", 0.5, 1.0),
        ("full", 0.999, 1.998),
        ("equal", 0.0, 1.0),
        ("equal", 0.5, 1.5),
        ("none", 0.3, 2.0),
    ],
)
def test_jitter_spreads_the_third_retry(jitter, rand, expected):
    assert RetryPolicy(jitter=jitter).backoff(3, rand) == pytest.approx(expected)


def test_huge_retry_numbers_do_not_overflow():
    assert RetryPolicy(jitter="none").backoff(10_000) == 8.0


@pytest.mark.parametrize(
    "status, code, retry",
    [
        (None, None, True),
        (408, None, True),
        (409, None, True),
        (429, None, True),
        (429, "insufficient_quota", False),
        (500, None, True),
        (502, None, True),
        (503, None, True),
        (529, None, True),
        (400, None, False),
        (401, None, False),
        (403, None, False),
        (404, None, False),
        (422, None, False),
    ],
)
def test_which_outcomes_are_retryable(status, code, retry):
    assert RetryPolicy().retryable(status, {}, code).retry is retry


@pytest.mark.parametrize(
    "resend, request_sent, expected",
    [
        (True, False, Decision(True, reason="the connection was never made")),
        (False, False, Decision(True, reason="the connection was never made")),
        (True, True, Decision(True, reason="connection failed")),
        (
            False,
            True,
            Decision(False, reason="the server may have received the request; resend=False"),
        ),
    ],
)
def test_a_connection_failure_is_resent_only_if_allowed_or_never_sent(
    resend, request_sent, expected
):
    policy = RetryPolicy(resend=resend)
    assert policy.retryable(None, {}, request_sent=request_sent) == expected


def test_resend_is_on_by_default_and_a_request_counts_as_sent_unless_told():
    assert RetryPolicy().resend is True
    assert RetryPolicy().retryable(None, {}) == Decision(True, reason="connection failed")


@pytest.mark.parametrize(
    "request_sent, expected",
    [
        (False, Decision(True, delay=0.25, reason="the connection was never made")),
        (True, Decision(False, reason="the server may have received the request; resend=False")),
    ],
)
def test_decide_passes_on_whether_the_request_was_sent(request_sent, expected):
    policy = RetryPolicy(resend=False)
    assert policy.decide(0, rand=0.5, request_sent=request_sent) == expected


def test_resend_false_still_retries_statuses():
    assert RetryPolicy(resend=False).decide(0, status=503, rand=0.5) == Decision(
        True, delay=0.25, reason="status 503"
    )


def test_x_should_retry_overrules_the_status():
    policy = RetryPolicy()
    assert policy.retryable(400, Headers({"x-should-retry": "true"})).retry is True
    assert policy.retryable(503, Headers({"X-Should-Retry": "false"})).retry is False


def test_a_full_schedule_with_fixed_randomness():
    policy = RetryPolicy(max_retries=3, jitter="full")
    delays = [policy.decide(n, status=503, rand=0.5).delay for n in range(3)]
    assert delays == [0.25, 0.5, 1.0]
    assert policy.decide(3, status=503, rand=0.5) == Decision(
        False, reason="gave up after 3 retries"
    )


def test_max_retries_zero_never_retries():
    assert RetryPolicy(max_retries=0).decide(0, status=500).retry is False


@pytest.mark.parametrize(
    "headers, wait",
    [
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": "0.5"}, 0.5),
        ({"retry-after": "Tue, 14 Nov 2023 22:13:30 GMT"}, 10.0),
        ({"retry-after": "Tue, 14 Nov 2023 22:13:10 GMT"}, 0.0),
        ({"retry-after": "Tue, 14 Nov 2023 22:13:25 -0000"}, 5.0),
        ({"retry-after": "+5"}, None),
        ({"retry-after": "1_000"}, None),
        ({"retry-after": "inf"}, None),
        ({"retry-after": "\u0663"}, None),
        ({"retry-after": "soon"}, None),
        ({"retry-after-ms": "x", "retry-after": "2"}, 2.0),
        ({}, None),
    ],
)
def test_server_wait_reads_retry_after_ms_then_retry_after(headers, wait):
    assert server_wait(Headers(headers), now=NOW) == wait


def test_an_http_date_needs_the_current_time():
    assert server_wait(Headers({"retry-after": "Tue, 14 Nov 2023 22:13:30 GMT"})) is None


def test_the_server_wait_replaces_the_backoff():
    decision = RetryPolicy().decide(0, status=429, headers=Headers({"retry-after": "3"}), rand=0.1)
    assert decision == Decision(True, delay=3.0, reason="status 429", server_wait=3.0)


def test_a_server_wait_over_the_cap_is_raised_not_slept():
    decision = RetryPolicy().decide(0, status=429, headers=Headers({"retry-after": "120"}))
    assert decision.retry is False
    assert decision.server_wait == 120.0
    assert (
        decision.reason
        == "the server asked to wait 120 s, over the 60 s this policy sleeps through"
    )


def test_a_wait_that_would_pass_the_deadline_stops():
    decision = RetryPolicy(jitter="none").decide(1, status=500, time_left=0.75)
    assert decision.retry is False
    assert decision.reason == "a 1.00 s wait would pass the deadline (0.75 s left)"


def test_a_wait_within_the_deadline_retries():
    assert RetryPolicy(jitter="none").decide(1, status=500, time_left=1.5).delay == 1.0


@pytest.mark.parametrize("bad", [dict(max_retries=-1), dict(jitter="some"), dict(multiplier=0.5)])
def test_nonsense_policies_are_refused(bad):
    with pytest.raises(ValueError):
        RetryPolicy(**bad)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"max_retries": -1}, "max_retries must be a whole number from 0 to 100, got -1"),
        ({"max_retries": 1.5}, "got 1.5"),
        ({"max_retries": "2"}, "got '2'"),
        ({"max_retries": None}, "got None"),
        ({"max_retries": True}, "got True"),
        ({"max_retries": 10**6}, "got 1000000"),
        ({"max_delay": float("inf")}, "max_delay must be a finite number >= 0"),
        ({"initial_delay": float("nan")}, "initial_delay must be a finite number >= 0"),
        ({"resend": "no"}, "resend must be True or False, got 'no'"),
        ({"resend": 0}, "resend must be True or False, got 0"),
    ],
)
def test_a_policy_that_makes_no_sense_is_a_config_error_saying_what(kwargs, message):
    with pytest.raises(ConfigError, match=message.replace(".", "[.]")):
        RetryPolicy(**kwargs)


@pytest.mark.parametrize(
    "text",
    [
        "Sun, 06 Nov 1994 08:49:37 GMT",  # IMF-fixdate
        "Sunday, 06-Nov-94 08:49:37 GMT",  # obsolete RFC 850
        "Sun Nov  6 08:49:37 1994",  # obsolete asctime
    ],
)
def test_all_three_http_date_forms_are_read(text):
    assert parse_http_date(text) == 784111777.0


@pytest.mark.parametrize(
    "text", ["", "tomorrow", "Sun, 06 Nov 1994 25:49:37 GMT", "Sun, 06 Nov 1994 08:49:37 CET"]
)
def test_what_is_not_an_http_date_is_none(text):
    assert parse_http_date(text) is None


def test_a_capitalised_retry_after_is_the_same_header():
    assert server_wait(Headers([("Retry-After", "5")])) == 5.0
    assert server_wait(Headers([("Retry-After", "Tue, 14 Nov 2023 22:13:30 GMT")]), now=NOW) == 10.0
