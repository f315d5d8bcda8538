"""The client end to end: retries over HTTP (responses) and the simulator."""

from __future__ import annotations

import json
import logging
import threading

import pytest
import requests
import responses

import rawchat
from rawchat.errors import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    ConfigError,
    InternalServerError,
    InvalidRequestError,
    NotFoundError,
    RateLimitError,
)
from rawchat.policies import CircuitBreaker, Hooks, Policies, RetryPolicy

from ..conftest import KEY
from ..raw_server import RawServer

URL = "https://api.test/v1/chat/completions"
HI = [{"role": "user", "content": "hi"}]
ANSWER = {
    "id": "c",
    "model": "m",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "hello"},
            "finish_reason": "stop",
        }
    ],
}


class FakeTime:
    """A clock that only moves when slept on."""

    def __init__(self, random: float = 0.5) -> None:
        self.now = 1000.0
        self.slept = []
        self.clock = rawchat.Clock(
            sleep=self.sleep,
            monotonic=lambda: self.now,
            wall=lambda: 1_700_000_000.0,
            random=lambda: random,
        )

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.now += seconds


def make_client(fake: FakeTime = None, **kwargs) -> rawchat.Client:
    fake = fake or FakeTime()
    return rawchat.Client(KEY, "https://api.test/v1", clock=fake.clock, **kwargs)


def error(status, message="boom", code=None, headers=None):
    return responses.Response(
        responses.POST,
        URL,
        status=status,
        headers=headers or {},
        json={"error": {"message": message, "type": "t", "param": None, "code": code}},
    )


@responses.activate
def test_503_then_success_retries_on_the_backoff_schedule():
    fake = FakeTime()
    responses.add(error(503))
    responses.add(error(503))
    responses.add(responses.POST, URL, json=ANSWER, headers={"x-request-id": "req_ok"})
    done = make_client(fake).chat(HI, model="m")
    assert (done.content, done.retries_taken, done.request_id) == ("hello", 2, "req_ok")
    assert fake.slept == [0.25, 0.5]  # full jitter at random 0.5: half of 0.5 and 1.0


def reply(spec):
    status, headers = spec if isinstance(spec, tuple) else (spec, {})
    if status == 200:
        return responses.Response(responses.POST, URL, json=ANSWER)
    return error(status, headers=headers)


@pytest.mark.parametrize(
    "replies, max_retries, random, slept, outcome",
    [
        # full jitter: random * min(8, 0.5 * 2 ** (retry - 1))
        ([503, 503, 200], 2, 0.5, [0.25, 0.5], 2),
        ([503, 503, 503, 503, 200], 4, 1.0, [0.5, 1.0, 2.0, 4.0], 4),
        ([408, 409, 200], 2, 0.5, [0.25, 0.5], 2),
        ([503, 503, 503], 2, 0.5, [0.25, 0.5], InternalServerError),
        # the server's word first
        ([(429, {"retry-after-ms": "1500"}), 200], 2, 0.5, [1.5], 1),
        ([(429, {"retry-after": "2"}), 200], 2, 0.5, [2.0], 1),
        ([(429, {"retry-after": "Tue, 14 Nov 2023 22:13:22 GMT"}), 200], 2, 0.5, [2.0], 1),
        ([(500, {"x-should-retry": "false"})], 2, 0.5, [], InternalServerError),
        ([(400, {"x-should-retry": "true"}), 200], 2, 0.5, [0.25], 1),
        # a request any server would refuse is not sent again
        ([400], 2, 0.5, [], rawchat.BadRequestError),
        ([503], 0, 0.5, [], InternalServerError),
    ],
)
@responses.activate
def test_retry_schedules_are_the_sleeps_on_the_injected_clock(
    replies, max_retries, random, slept, outcome
):
    fake = FakeTime(random=random)
    for spec in replies:
        responses.add(reply(spec))
    client = make_client(fake, max_retries=max_retries)
    if isinstance(outcome, int):
        assert client.chat(HI, model="m").retries_taken == outcome
    else:
        with pytest.raises(outcome):
            client.chat(HI, model="m")
    assert fake.slept == slept
    assert len(responses.calls) == len(slept) + 1


@responses.activate
def test_giving_up_raises_the_last_error_with_the_attempt_history():
    for _ in range(3):
        responses.add(error(500, "server exploded"))
    with pytest.raises(InternalServerError, match="server exploded") as caught:
        make_client().chat(HI, model="m")
    assert caught.value.attempts == ((1, "500", 0.25), (2, "500", 0.5), (3, "500", 0.0))
    assert len(responses.calls) == 3


@responses.activate
def test_insufficient_quota_is_not_retried():
    responses.add(error(429, "You exceeded your current quota", code="insufficient_quota"))
    with pytest.raises(RateLimitError) as caught:
        make_client().chat(HI, model="m")
    assert len(responses.calls) == 1
    assert "billing" in caught.value.hint


@responses.activate
def test_a_retry_after_over_the_cap_is_raised_with_the_wait():
    fake = FakeTime()
    responses.add(error(429, headers={"retry-after": "300"}))
    with pytest.raises(RateLimitError) as caught:
        make_client(fake).chat(HI, model="m")
    assert fake.slept == []
    assert caught.value.retry_after == 300.0
    assert "not retried: the server asked to wait 300 s" in caught.value.hint


@responses.activate
def test_connection_errors_are_retried():
    fake = FakeTime()
    responses.add(responses.POST, URL, body=requests.exceptions.ConnectionError("reset"))
    responses.add(responses.POST, URL, json=ANSWER)
    assert make_client(fake).chat(HI, model="m").retries_taken == 1


def never_sent():
    """A connection failure before the request left (as DNS or a refused connect)."""
    failure = APIConnectionError("could not connect to api.test: connection refused")
    failure.request_sent = False
    return failure


def read_timeout():
    return responses.Response(
        responses.POST, URL, body=requests.exceptions.ReadTimeout("read timed out")
    )


SSE = (
    'data: {"id":"c","model":"m","choices":[{"index":0,"delta":{"content":"hello"},'
    '"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'
)


@responses.activate
def test_a_read_timeout_is_retried_by_default_though_the_server_may_have_seen_it():
    for _ in range(3):
        responses.add(read_timeout())
    with pytest.raises(APITimeoutError) as caught:
        make_client().chat(HI, model="m")
    assert len(responses.calls) == 3
    assert caught.value.attempts == (
        (1, "APITimeoutError", 0.25),
        (2, "APITimeoutError", 0.5),
        (3, "APITimeoutError", 0.0),
    )


@responses.activate
def test_resend_false_for_one_call_does_not_send_again_what_the_server_may_have(caplog):
    fake = FakeTime()
    responses.add(read_timeout())
    responses.add(responses.POST, URL, json=ANSWER)
    with caplog.at_level(logging.INFO, logger="rawchat"):
        with pytest.raises(APITimeoutError) as caught:
            make_client(fake).chat(HI, model="m", retry=RetryPolicy(resend=False))
    assert len(responses.calls) == 1
    assert fake.slept == []
    assert caught.value.attempts == ((1, "APITimeoutError", 0.0),)
    assert caplog.messages == [
        f"POST {URL} failed (APITimeoutError); not retrying: "
        "the server may have received the request; resend=False"
    ]


@responses.activate
def test_resend_false_still_retries_a_connection_that_was_never_made():
    fake = FakeTime()
    responses.add(responses.POST, URL, body=never_sent())
    responses.add(responses.POST, URL, json=ANSWER)
    done = make_client(fake).chat(HI, model="m", retry=RetryPolicy(resend=False))
    assert (done.content, done.retries_taken, fake.slept) == ("hello", 1, [0.25])


@responses.activate
def test_resend_false_in_the_client_policies_holds_for_every_call():
    responses.add(read_timeout())
    responses.add(read_timeout())
    client = make_client(policies=Policies(retry=RetryPolicy(resend=False)))
    for _ in range(2):
        with pytest.raises(APITimeoutError):
            client.chat(HI, model="m")
    assert len(responses.calls) == 2


@responses.activate
def test_a_retry_policy_for_one_call_leaves_the_client_policy_as_it_was():
    for status in (503, 503, 200):
        responses.add(reply(status))
    client = make_client()
    with pytest.raises(InternalServerError):
        client.chat(HI, model="m", retry=RetryPolicy(max_retries=0))
    assert len(responses.calls) == 1
    assert client.chat(HI, model="m").retries_taken == 1
    assert client.policies.retry == RetryPolicy()
    assert json.loads(responses.calls[0].request.body) == {"model": "m", "messages": HI}


@responses.activate
def test_a_retry_policy_for_one_stream_decides_its_retries():
    fake = FakeTime()
    responses.add(read_timeout())
    responses.add(responses.POST, URL, body=SSE, content_type="text/event-stream")
    client = make_client(fake)
    with pytest.raises(APITimeoutError):
        with client.stream(HI, model="m", retry=RetryPolicy(resend=False)) as stream:
            "".join(stream.text())
    assert len(responses.calls) == 1
    with client.stream(HI, model="m", retry=RetryPolicy(max_retries=1)) as stream:
        assert "".join(stream.text()) == "hello"
    assert (stream.retries_taken, len(responses.calls), fake.slept) == (0, 2, [])


@responses.activate
def test_a_stream_with_resend_false_retries_a_connection_never_made():
    responses.add(responses.POST, URL, body=never_sent())
    responses.add(responses.POST, URL, body=SSE, content_type="text/event-stream")
    with make_client().stream(HI, model="m", retry=RetryPolicy(resend=False)) as stream:
        assert "".join(stream.text()) == "hello"
    assert stream.retries_taken == 1


def test_a_call_retry_that_is_not_a_retry_policy_is_a_config_error():
    with pytest.raises(ConfigError) as caught:
        make_client().chat(HI, model="m", retry=3)
    assert caught.value.message == "retry must be a RetryPolicy, got int"


@pytest.mark.parametrize(
    "deadline, why",
    [
        ("3", "got '3' (str)"),
        (True, "got True (bool)"),
        ([30], "got [30] (list)"),
        (0, "got 0, which is not above zero"),
        (-1, "got -1, which is not above zero"),
        (float("nan"), "got nan, which is not finite"),
        (float("inf"), "got inf, which is not finite"),
    ],
)
def test_a_bad_deadline_is_a_config_error_that_says_what_is_wrong(deadline, why):
    with pytest.raises(ConfigError) as caught:
        make_client(deadline=deadline)
    assert caught.value.message == (
        "deadline must be a positive number of seconds (e.g. deadline=30), "
        f"or None for no deadline, {why}"
    )


def test_a_whole_or_fractional_deadline_is_kept_as_given():
    assert (make_client(deadline=30).deadline, make_client(deadline=0.5).deadline) == (30, 0.5)


@responses.activate
def test_the_deadline_is_never_overslept():
    fake = FakeTime()
    for _ in range(5):
        responses.add(error(503))
    with pytest.raises(InternalServerError) as caught:
        make_client(fake, deadline=0.6, max_retries=5).chat(HI, model="m")
    assert fake.slept == [0.25]  # the next wait, 0.5 s, would end past 0.6 s
    assert caught.value.attempts[-1] == (2, "503", 0.0)


@responses.activate
def test_the_deadline_shortens_the_read_timeout():
    seen = []
    responses.add_callback(
        responses.POST,
        URL,
        callback=lambda r: (
            seen.append(r.req_kwargs["timeout"]),
            (200, {}, json.dumps(ANSWER)),
        )[1],
    )
    make_client(deadline=5).chat(HI, model="m")
    assert seen == [(5, 5)]


@responses.activate
def test_retries_are_logged_on_the_rawchat_logger(caplog):
    responses.add(error(503))
    responses.add(responses.POST, URL, json=ANSWER)
    with caplog.at_level(logging.INFO, logger="rawchat"):
        make_client().chat(HI, model="m")
    assert caplog.messages == [f"POST {URL} failed (503); retry 1 of 2 in 0.25 s"]


@responses.activate
def test_a_401_names_the_key_source_and_never_the_key():
    responses.add(error(401, "Incorrect API key provided", code="invalid_api_key"))
    with pytest.raises(AuthenticationError) as caught:
        make_client().chat(HI, model="m")
    text = str(caught.value) + repr(caught.value) + repr(caught.value.attempts)
    assert "the key from the api_key argument (ending ...cdef)" in text
    assert KEY not in text


@responses.activate
def test_the_request_carries_bearer_auth():
    responses.add(responses.POST, URL, json=ANSWER)
    make_client().chat(HI, model="m", temperature=0.2)
    sent = responses.calls[0].request
    assert sent.headers["Authorization"] == f"Bearer {KEY}"
    assert json.loads(sent.body) == {"model": "m", "messages": HI, "temperature": 0.2}


def test_chat_refuses_the_stream_parameter():
    with pytest.raises(InvalidRequestError, match="'stream' is not one of its parameters"):
        make_client().chat(HI, model="m", stream=True)


@responses.activate
def test_request_is_the_escape_hatch_for_other_endpoints():
    responses.add(
        responses.POST,
        "https://api.test/v1/embeddings",
        json={"data": [{"embedding": [0.1]}]},
    )
    response = make_client().request("POST", "/embeddings", json={"model": "e", "input": "x"})
    assert response.json() == {"data": [{"embedding": [0.1]}]}


@responses.activate
def test_a_redirect_is_an_error_that_names_the_new_location():
    responses.add(
        responses.POST,
        URL,
        status=308,
        headers={"Location": "https://api.test/v2/chat/completions"},
    )
    with pytest.raises(rawchat.APIStatusError) as caught:
        make_client().chat(HI, model="m")
    assert "https://api.test/v2/chat/completions" in caught.value.hint


def test_no_key_for_a_provider_that_needs_one_is_a_config_error():
    with pytest.raises(ConfigError, match="no API key for https://api.openai.com/v1") as caught:
        rawchat.Client()
    assert "OPENAI_API_KEY" in caught.value.hint


def test_a_keyless_local_server_needs_no_key():
    assert rawchat.Client(profile="ollama").settings.api_key is None


def test_the_key_and_base_url_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env-0000wxyz")
    monkeypatch.setenv("OPENAI_BASE_URL", "https://env.test/v1")
    assert repr(rawchat.Client()) == "Client(base_url='https://env.test/v1', api_key='...wxyz')"


@pytest.mark.parametrize(
    "keyword, place",
    [
        ("keys", "pass policies=Policies(keys=...) (from rawchat.policies import Policies)"),
        ("pacer", "pass policies=Policies(pacer=...)"),
        ("retry", "pass policies=Policies(retry=...)"),
        ("breaker", "pass policies=Policies(breaker=...)"),
        ("retry_budget", "pass policies=Policies(retry_budget=...)"),
        ("fallbacks", "pass policies=Policies(fallbacks=...)"),
        ("cache", "pass policies=Policies(cache=...)"),
        ("hooks", "pass policies=Policies(hooks=...)"),
        ("usage", "pass policies=Policies(usage=...)"),
        ("sleep", "pass clock=Clock(sleep=...) (from rawchat import Clock)"),
        ("clock", "pass clock=Clock(monotonic=...)"),
        ("wall_clock", "pass clock=Clock(wall=...)"),
        ("random", "pass clock=Clock(random=...)"),
        ("environ", "the client reads os.environ"),
    ],
)
def test_a_removed_keyword_is_a_config_error_that_names_its_new_place(keyword, place):
    with pytest.raises(ConfigError) as caught:
        rawchat.Client(KEY, "https://api.test/v1", **{keyword: lambda *a: None})
    assert caught.value.message.startswith(f"Client({keyword}=...) ")
    assert place in caught.value.message


def test_an_unknown_keyword_is_a_type_error_as_for_any_function():
    with pytest.raises(TypeError, match="unexpected keyword argument 'retries'"):
        rawchat.Client(KEY, "https://api.test/v1", retries=3)


def test_the_policies_are_resolved_once_with_their_defaults():
    client = rawchat.Client(
        KEY, "https://api.test/v1", max_retries=5, policies=Policies(breaker=True)
    )
    assert client.policies.retry == RetryPolicy(max_retries=5)
    assert isinstance(client.policies.breaker, CircuitBreaker)
    assert isinstance(client.policies.hooks, Hooks)


def test_a_retry_policy_in_the_policies_wins_over_max_retries():
    retry = RetryPolicy(max_retries=0)
    client = rawchat.Client(
        KEY, "https://api.test/v1", max_retries=5, policies=Policies(retry=retry)
    )
    assert client.policies.retry is retry


def test_the_client_repr_hides_the_key():
    assert repr(make_client()) == "Client(base_url='https://api.test/v1', api_key='...cdef')"


# -- against the simulator -------------------------------------------------------


def test_chat_against_the_simulator(client):
    done = client.chat(
        [
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": "2+2?"},
        ],
        model="gpt-4o-mini",
    )
    assert done.content == (
        "Hello from the rawchat simulator. I received 2 messages (about 18 prompt tokens); "
        'your last message was: "2+2?".'
    )
    assert (done.finish_reason, done.usage.prompt_tokens, done.retries_taken) == (
        "stop",
        18,
        0,
    )
    assert done.elapsed > 0


def test_n_choices_against_the_simulator(client):
    done = client.chat(HI, model="gpt-4o-mini", n=2)
    assert [c.message.content[:10] for c in done.choices] == [
        "Hello from",
        "(choice 1)",
    ]


def test_max_tokens_cuts_the_answer_with_finish_reason_length(client):
    done = client.chat(HI, model="gpt-4o-mini", max_tokens=3)
    assert (done.content, done.finish_reason) == ("Hello from the", "length")


def test_a_tool_round_trip_against_the_simulator(client):
    tools = [
        {
            "type": "function",
            "function": {
                "name": "add",
                "parameters": {
                    "type": "object",
                    "properties": {"expr": {"type": "string"}},
                },
            },
        }
    ]
    messages = [{"role": "user", "content": "2+3"}]
    first = client.chat(messages, model="gpt-4o-mini", tools=tools)
    call = first.tool_calls[0]
    messages += [
        first.message.to_dict(),
        {"role": "tool", "tool_call_id": call.id, "content": "5"},
    ]
    assert client.chat(messages, model="gpt-4o-mini", tools=tools).content == "The tool returned: 5"


def test_models_lists_the_simulator_models(client):
    assert [m["id"] for m in client.models()][:3] == [
        "gpt-4o-mini",
        "gpt-4o",
        "gpt-4.1-mini",
    ]


def test_an_unknown_model_is_a_404_with_a_hint(client):
    with pytest.raises(NotFoundError) as caught:
        client.chat(HI, model="gpt-9")
    assert caught.value.code == "model_not_found"
    assert "the model 'gpt-9' does not exist here" in caught.value.hint


def test_a_wrong_key_is_a_401_from_a_strict_simulator():
    from rawchat.simulator import Simulator

    with Simulator(api_keys=["sk-right-key-000000"]) as strict, pytest.raises(
        AuthenticationError, match="Incorrect API key provided: sk-\\*\\*\\*\\*cdef"
    ):
        rawchat.Client(KEY, strict.base_url).chat(HI, model="gpt-4o-mini")


def test_a_base_url_without_v1_gets_the_v1_hint(sim):
    base = sim.base_url[: -len("/v1")]
    with pytest.raises(NotFoundError) as caught:
        rawchat.Client(KEY, base).chat(HI, model="gpt-4o-mini")
    assert "add it to the base URL" in caught.value.hint


def test_nothing_listening_is_a_connection_error_after_retries():
    fake = FakeTime(random=1.0)
    client = rawchat.Client(KEY, "http://127.0.0.1:9/v1", clock=fake.clock)
    with pytest.raises(APIConnectionError) as caught:
        client.chat(HI, model="m")
    assert fake.slept == [0.5, 1.0]
    assert not isinstance(caught.value, APITimeoutError)


def test_a_capitalised_retry_after_from_a_gateway_is_honoured(sim):
    # The simulator's slow-down fault sends "Retry-After: 3" and "X-Should-Retry"
    # as gateways write them, with no retry-after-ms to fall back on.
    fake = FakeTime()
    with rawchat.Client(KEY, sim.base_url, clock=fake.clock) as client:
        done = client.chat(
            HI, model="gpt-4o-mini", extra_headers={"X-Rawchat-Fault": "slow-down=3"}
        )
    assert fake.slept == [3.0]
    assert done.retries_taken == 1


def test_a_server_wait_longer_than_the_cap_is_raised_at_once_with_the_wait(sim):
    fake = FakeTime()
    with rawchat.Client(KEY, sim.base_url, clock=fake.clock) as client:
        with pytest.raises(rawchat.RateLimitError) as caught:
            client.chat(
                HI, model="gpt-4o-mini", extra_headers={"X-Rawchat-Fault": "slow-down=86400"}
            )
    assert fake.slept == []
    assert caught.value.retry_after == 86400.0


def test_the_call_deadline_bounds_a_response_head_that_trickles_in():
    release = threading.Event()

    def script(conn, request):
        for byte in b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" * 100:
            if release.wait(0.1):
                return
            conn.sendall(bytes([byte]))

    with RawServer(script) as server:
        client = rawchat.Client(KEY, server.base_url, timeout=(2, 2), deadline=1, max_retries=0)
        try:
            with pytest.raises(
                APITimeoutError, match="the call's deadline passed while the response head"
            ):
                client.chat(HI, model="m")
        finally:
            release.set()


def test_hooks_and_logs_never_see_credentials_in_the_base_url(sim, caplog):
    seen = []
    hooks = Hooks()
    hooks.on("request", lambda event: seen.append(event.url))
    base = sim.base_url.replace("http://", "http://user:hunter2@")
    with caplog.at_level("DEBUG", logger="rawchat"):
        with rawchat.Client(KEY, base, policies=Policies(hooks=hooks)) as client:
            client.chat(HI, model="gpt-4o-mini")
    assert seen and all("hunter2" not in url for url in seen)
    assert "hunter2" not in caplog.text


def test_credentials_in_the_base_url_never_show_in_the_client_repr():
    client = rawchat.Client("sk-abcdefghijklmnop", "http://user:hunter2@localhost:9/v1")
    assert repr(client) == "Client(base_url='http://***@localhost:9/v1', api_key='...mnop')"
