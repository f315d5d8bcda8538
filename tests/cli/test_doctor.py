"""rawchat doctor: a verdict per step, against good and broken set-ups."""

from __future__ import annotations

import rawchat
from rawchat.cli import doctor
from rawchat.protocol.settings import Settings
from rawchat.simulator import Simulator

from ..conftest import KEY


def verdicts(base_url, key=KEY, model="gpt-4o-mini", profile=None):
    settings = Settings.resolve(key, base_url, profile=profile, model=model, environ={})
    checks = list(
        doctor.run(
            lambda: rawchat.Client(key, base_url, max_retries=0),
            settings,
            model=model,
            timeout=2,
        )
    )
    return [(c.step, c.status) for c in checks], checks


def test_a_good_setup_passes_every_step(sim):
    steps, checks = verdicts(sim.base_url)
    assert steps == [
        ("configuration", "ok"),
        ("DNS", "ok"),
        ("TCP", "ok"),
        ("TLS", "skip"),
        ("authentication", "ok"),
        ("model", "ok"),
        ("streaming", "ok"),
        ("responses", "ok"),
    ]
    assert (
        checks[0].detail
        == f"profile custom, base URL {sim.base_url}, key from the api_key argument, ending ...cdef, model gpt-4o-mini"
    )
    assert checks[4].detail == "the key works: 7 models listed"
    assert checks[6].detail.endswith("complete with usage")


def test_nothing_listening_fails_at_tcp():
    steps, checks = verdicts("http://127.0.0.1:9/v1")
    assert steps[-1] == ("TCP", "FAIL")
    assert "Connection refused" in checks[-1].detail


def test_an_unresolvable_host_fails_at_dns():
    steps, checks = verdicts("https://nowhere.invalid/v1")
    assert steps == [("configuration", "ok"), ("DNS", "FAIL")]
    assert "HTTPS_PROXY" in checks[-1].fix


def test_a_wrong_key_fails_authentication_with_the_key_hint():
    with Simulator(api_keys=["sk-the-right-one-0000"]) as strict:
        steps, checks = verdicts(strict.base_url)
    assert steps[-1] == ("authentication", "FAIL")
    assert "(ending ...cdef) was refused" in checks[-1].fix


def test_a_base_url_without_v1_warns_then_fails_on_the_model_with_the_fix(sim):
    steps, checks = verdicts(sim.base_url[: -len("/v1")])
    assert steps[-2:] == [("authentication", "warn"), ("model", "FAIL")]
    assert "add it to the base URL" in checks[-1].fix


def test_an_unknown_model_fails_and_says_it_is_not_listed(sim):
    steps, checks = verdicts(sim.base_url, model="gpt-9")
    assert steps[-1] == ("model", "FAIL")
    assert checks[-1].detail.startswith("chat with gpt-9 (and it is not in GET /models)")


def test_a_missing_key_fails_configuration_but_still_checks_the_network():
    settings = Settings.resolve(environ={}, base_url="http://127.0.0.1:9/v1", profile="openai")
    checks = list(doctor.run(lambda: None, settings, model="m", timeout=1))
    assert [(c.step, c.status) for c in checks] == [
        ("configuration", "FAIL"),
        ("DNS", "ok"),
        ("TCP", "FAIL"),
    ]
    assert checks[0].fix == "set OPENAI_API_KEY to your API key"


def test_an_endpoint_without_the_responses_api_is_a_warning_that_names_chat():
    from rawchat.cli.doctor import WARN, _responses_check
    from rawchat.errors import NotFoundError

    class NoResponses:
        def respond(self, *args, **kwargs):
            raise NotFoundError("Invalid URL (POST /v1/responses)", status_code=404)

    check = _responses_check(NoResponses(), "gpt-4o-mini", lambda: 0.0)
    assert (check.step, check.status) == ("responses", WARN)
    assert check.detail == "POST /responses: 404: this endpoint has no Responses API"
    assert check.fix == "use Chat Completions (the default; --api chat)"
