"""The simulator: its pure app, and its server on a real socket."""

from __future__ import annotations

import http.client
import json

import pytest

from rawchat.protocol.http import Headers
from rawchat.protocol.sse import SSEParser
from rawchat.simulator import SimRequest, Simulator, SimulatorApp
from rawchat.simulator.model import estimate_tokens, pieces

AUTH = Headers({"Authorization": "Bearer sk-test-0123456789abcdef"})


def post(app, body, headers=AUTH, path="/v1/chat/completions"):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return app.handle(SimRequest("POST", path, headers, raw))


def body_of(response):
    return json.loads(response.body)


def test_a_plain_answer_describes_the_request():
    response = post(
        SimulatorApp(),
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
    )
    data = body_of(response)
    assert response.status == 200
    assert data["object"] == "chat.completion"
    assert data["choices"][0]["message"]["content"] == (
        'Hello from the rawchat simulator. I received 1 message (about 8 prompt tokens); your last message was: "hi".'
    )
    assert data["usage"] == {
        "prompt_tokens": 8,
        "completion_tokens": 18,
        "total_tokens": 26,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }
    assert dict(response.headers)["x-request-id"] == "req_sim000001"


def test_a_streamed_answer_is_sse_with_a_usage_chunk_and_done():
    response = post(
        SimulatorApp(),
        {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "hi"}],
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    assert response.streaming
    events = SSEParser().feed(b"".join(response.steps))
    chunks = [json.loads(e.data) for e in events[:-1]]
    assert events[-1].data == "[DONE]"
    assert chunks[0]["choices"][0]["delta"] == {
        "role": "assistant",
        "content": "",
        "refusal": None,
    }
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 26
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text.endswith('your last message was: "hi".')


def test_without_include_usage_there_is_no_usage_chunk():
    response = post(
        SimulatorApp(),
        {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "x"}],
            "stream": True,
        },
    )
    events = SSEParser().feed(b"".join(response.steps))
    assert json.loads(events[-2].data)["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize(
    "body, status, message",
    [
        (b"{not json", 400, "could not parse the JSON body"),
        (b"[]", 400, "must be a JSON object"),
        (
            {"messages": [{"role": "user", "content": "x"}]},
            400,
            "you must provide a model parameter",
        ),
        (
            {"model": "gpt-9", "messages": [{"role": "user", "content": "x"}]},
            404,
            "The model `gpt-9` does not exist",
        ),
        (
            {"model": "gpt-4o", "messages": []},
            400,
            "'messages' must be a non-empty array",
        ),
        (
            {"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}], "n": 0},
            400,
            "'n' must be",
        ),
    ],
)
def test_bad_requests_get_openai_shaped_errors(body, status, message):
    response = post(SimulatorApp(), body)
    error = body_of(response)["error"]
    assert response.status == status
    assert message in error["message"]
    assert set(error) == {"message", "type", "param", "code"}


def test_a_missing_key_is_a_401_explaining_bearer_auth():
    response = post(SimulatorApp(), {}, headers=Headers())
    assert response.status == 401
    assert "Authorization: Bearer YOUR_KEY" in body_of(response)["error"]["message"]


def test_a_wrong_key_is_a_401_invalid_api_key_showing_only_its_ends():
    response = post(SimulatorApp(api_keys=["sk-good"]), {}, headers=AUTH)
    error = body_of(response)["error"]
    assert (response.status, error["code"]) == (401, "invalid_api_key")
    assert "sk-****cdef" in error["message"] and "0123456789" not in error["message"]


def test_an_unknown_path_is_a_404_invalid_url():
    response = post(SimulatorApp(), {}, path="/chat/completions")
    assert (response.status, body_of(response)["error"]["message"]) == (
        404,
        "Invalid URL (POST /chat/completions)",
    )


def test_azure_deployment_paths_and_the_api_key_header_work():
    response = post(
        SimulatorApp(),
        {"messages": [{"role": "user", "content": "x"}]},
        headers=Headers({"api-key": "az"}),
        path="/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21",
    )
    assert body_of(response)["model"] == "gpt-4o"


def test_requests_are_counted_per_key_fingerprint():
    app = SimulatorApp()
    post(app, {})
    post(app, {}, headers=Headers({"Authorization": "Bearer sk-other-key-99999999"}))
    post(app, {}, headers=Headers())
    assert app.requests_by_key == {"...cdef": 1, "...9999": 1, "none": 1}


def test_the_model_estimates_tokens_for_words_punctuation_and_cjk():
    assert estimate_tokens("Hello, world!") == 4
    assert estimate_tokens("你好世界") == 4
    assert pieces("a bb  c") == ["a", " bb", "  c"]


def test_the_server_streams_with_chunked_encoding_over_a_real_socket():
    with Simulator() as sim:
        connection = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=5)
        body = json.dumps(
            {
                "model": "gpt-4o-mini",
                "stream": True,
                "messages": [{"role": "user", "content": "hi"}],
            }
        )
        connection.request("POST", "/v1/chat/completions", body, {"Authorization": "Bearer sk-x"})
        response = connection.getresponse()
        assert response.getheader("Transfer-Encoding") == "chunked"
        assert response.getheader("Content-Type") == "text/event-stream; charset=utf-8"
        assert response.read().endswith(b"data: [DONE]\n\n")
        # keep-alive: the same connection serves a second request
        connection.request("GET", "/v1/models", headers={"Authorization": "Bearer sk-x"})
        assert json.loads(connection.getresponse().read())["object"] == "list"
        connection.close()


def test_base_url_needs_a_running_simulator():
    with pytest.raises(RuntimeError, match="not running"):
        Simulator().base_url


def test_stats_count_requests_per_key_over_http(sim):
    import rawchat

    rawchat.Client("sk-test-0123456789abcdef", sim.base_url).models()
    connection = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=5)
    connection.request("GET", "/_rawchat/stats")
    assert json.loads(connection.getresponse().read()) == {
        "requests": 1,
        "requests_by_key": {"...cdef": 1},
    }


def test_a_stopped_simulator_answers_nobody_even_on_kept_alive_connections():
    import rawchat

    sim = Simulator().start()
    client = rawchat.Client("sk-test-0123456789abcdef", sim.base_url, max_retries=0)
    client.models()  # leaves a connection in the pool
    sim.stop()
    with pytest.raises(rawchat.APIConnectionError):
        client.models()
