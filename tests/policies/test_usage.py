"""Usage and cost: totals, prices, budgets, exports."""

from __future__ import annotations

import logging

import pytest

import rawchat
from rawchat.errors import BudgetExceededError
from rawchat.policies import Policies
from rawchat.policies.usage import PRICES, Price, UsageMeter, price_for
from rawchat.protocol.completion import Usage

from ..conftest import KEY

HI = [{"role": "user", "content": "hi"}]


def test_cost_prices_cached_input_apart_and_reasoning_as_output():
    price = Price(input=2.0, cached_input=0.5, output=8.0)
    usage = Usage(
        prompt_tokens=1_000_000,
        completion_tokens=500_000,
        cached_tokens=400_000,
        reasoning_tokens=100_000,
    )
    assert price.cost(usage) == pytest.approx(0.6 * 2.0 + 0.4 * 0.5 + 0.5 * 8.0)


def test_dated_model_names_take_the_base_models_price():
    assert price_for("gpt-4o-mini-2024-07-18", PRICES) == PRICES["gpt-4o-mini"]
    assert price_for("openai/gpt-4o", PRICES) == PRICES["gpt-4o"]
    assert price_for("gpt-4o-2024-08-06", PRICES) == PRICES["gpt-4o"]
    assert price_for("llama3.2", PRICES) is None


def test_totals_per_model_and_per_key():
    meter = UsageMeter()
    meter.record("gpt-4o-mini", Usage(100, 20, cached_tokens=50), key="...aaaa")
    meter.record("gpt-4o", Usage(10, 5), key="...bbbb")
    meter.record("local-model", Usage(1, 1), key="...aaaa")
    assert meter.total.requests == 3 and meter.total.prompt_tokens == 111
    assert meter.by_key["...aaaa"].requests == 2
    assert meter.by_model["local-model"].unpriced_requests == 1
    assert meter.by_model["gpt-4o-mini"].cost == pytest.approx(
        (50 * 0.15 + 50 * 0.075 + 20 * 0.60) / 1e6
    )


def test_a_missing_usage_block_is_not_counted():
    meter = UsageMeter()
    assert meter.record("m", None) is None
    assert meter.total.requests == 0


def test_the_report_shows_the_price_table_date():
    meter = UsageMeter()
    meter.record("gpt-4o-mini", Usage(1000, 100))
    assert meter.report().splitlines() == [
        "total: 1 requests, 1000 prompt tokens (0 cached), 100 completion (0 reasoning), $0.000210",
        "gpt-4o-mini: 1 requests, 1000 prompt tokens (0 cached), 100 completion (0 reasoning), $0.000210",
        "(prices as of 2025-08-01, USD per 1M tokens; edit UsageMeter.prices)",
    ]


def test_prometheus_exposition():
    meter = UsageMeter()
    meter.record("gpt-4o-mini", Usage(1000, 100), key="...abcd")
    text = meter.prometheus()
    assert "# TYPE rawchat_prompt_tokens_total counter" in text
    assert 'rawchat_prompt_tokens_total{model="gpt-4o-mini"} 1000' in text
    assert 'rawchat_cost_usd_total{model="gpt-4o-mini"} 0.00021' in text
    assert 'rawchat_key_requests_total{key="...abcd"} 1' in text


def test_each_record_is_logged_and_passed_to_the_hook(caplog):
    seen = []
    meter = UsageMeter(on_record=seen.append)
    with caplog.at_level(logging.INFO, logger="rawchat.policies.usage"):
        meter.record("gpt-4o-mini", Usage(10, 2))
    assert seen[0].cost == pytest.approx((10 * 0.15 + 2 * 0.6) / 1e6)
    assert caplog.messages == [
        "gpt-4o-mini: 10 prompt (0 cached) + 2 completion tokens, $0.000003; total $0.000003"
    ]


def test_a_token_budget_stops_a_request_before_it_is_sent(sim):
    meter = UsageMeter(budget_tokens=40)
    client = rawchat.Client(KEY, sim.base_url, policies=Policies(usage=meter))
    client.chat(HI, model="gpt-4o-mini", max_tokens=5)
    with pytest.raises(BudgetExceededError, match="would pass the budget of 40"):
        client.chat(HI, model="gpt-4o-mini", max_tokens=20)
    assert sim.request_count == 1


def test_a_dollar_budget_can_warn_instead():
    meter = UsageMeter(budget_usd=0.000001, on_budget="warn")
    with pytest.warns(UserWarning, match="would pass the budget of \\$0.0000"):
        meter.check("gpt-4o", 1000, 100)


def test_streams_are_metered_from_their_usage_chunk(sim):
    client = rawchat.Client(KEY, sim.base_url, policies=Policies(usage=UsageMeter()))
    with client.stream(HI, model="gpt-4o-mini") as stream:
        "".join(stream.text())
    client.chat(HI, model="gpt-4o-mini")
    assert client.policies.usage.total.requests == 2
    assert client.policies.usage.by_key["...cdef"].prompt_tokens == 16
