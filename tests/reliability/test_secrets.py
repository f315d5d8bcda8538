"""A canary key through every command, fault, trace, log and error: it never shows.

At most its last four characters may appear (``...9z8y``).
"""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys

import pytest

import rawchat
from rawchat.client.trace import HARTrace, JSONLinesTrace, MultiTrace, TextTrace
from rawchat.simulator import Simulator
from rawchat.simulator.faults import FAULTS

CANARY = "sk-canary-SECRETVALUE-0123456789-9z8y"
SECRET = CANARY[:-4]  # everything but the last four characters


def clean_env(**extra):
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AZURE_", "RAWCHAT_"))
    }
    env.update(extra)
    return env


def run_cli(*args, env, stdin=""):
    result = subprocess.run(
        [sys.executable, "-m", "rawchat", "-vv", *args],
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def sim():
    with Simulator() as simulator:
        yield simulator


def test_every_cli_command_with_every_trace_keeps_the_canary_hidden(sim, tmp_path):
    env = clean_env(OPENAI_API_KEY=CANARY, OPENAI_BASE_URL=sim.base_url)
    traces = [
        "--trace",
        "--trace-file",
        str(tmp_path / "t.jsonl"),
        "--har",
        str(tmp_path / "t.har"),
    ]
    batch_in = tmp_path / "in.jsonl"
    batch_in.write_text('{"prompt": "hi"}\n')
    capture = tmp_path / "c.sse"
    capture.write_bytes(b"data: [DONE]\n\n")
    outputs = [
        run_cli(*traces, "ask", "hi", env=env),
        run_cli(*traces, "ask", "--json", "--no-stream", "hi", env=env),
        run_cli(
            *traces,
            "chat",
            env=env,
            stdin="hi\n/usage\n/trace on\nagain\n/save " + str(tmp_path / "conv.json") + "\n",
        ),
        run_cli(*traces, "models", env=env),
        run_cli(*traces, "doctor", env=env),
        run_cli(*traces, "curl", "hi", env=env),
        run_cli(*traces, "replay", str(capture), env=env),
        run_cli(*traces, "batch", str(batch_in), str(tmp_path / "out.jsonl"), env=env),
        run_cli("--trace", "ask", "-m", "no-such-model", "hi", env=env),  # an API error
        run_cli(
            "--trace", "--base-url", "http://127.0.0.1:9/v1", "ask", "hi", env=env
        ),  # a network error
        run_cli("models", env=clean_env(OPENAI_API_KEY=CANARY + "\u200b")),  # a malformed key
        run_cli(
            "models",
            env=clean_env(
                OPENAI_API_KEYS=f"{CANARY},sk-other-0000000000aa", OPENAI_BASE_URL=sim.base_url
            ),
        ),
    ]
    files = [
        p.read_text(encoding="utf-8", errors="replace") for p in tmp_path.iterdir() if p.is_file()
    ]
    for text in outputs + files:
        assert SECRET not in text
    assert any("...9z8y" in text for text in outputs)  # the fingerprint does show


@pytest.mark.parametrize(
    "fault", [name for name in FAULTS if name not in ("delay", "stall", "interval")]
)
def test_every_fault_in_errors_traces_and_logs_keeps_the_canary_hidden(sim, fault, caplog):
    out = io.StringIO()
    trace = MultiTrace([TextTrace(out), JSONLinesTrace(out)])
    client = rawchat.Client(
        CANARY,
        sim.base_url,
        trace=trace,
        max_retries=1,
        clock=rawchat.Clock(sleep=lambda s: None),
        timeout=(2, 0.5),
    )
    texts = []
    with caplog.at_level(logging.DEBUG):
        for operation in ("chat", "stream"):
            try:
                if operation == "chat":
                    client.chat(
                        [{"role": "user", "content": "hi"}],
                        model="gpt-4o-mini",
                        extra_headers={"X-Rawchat-Fault": fault + "*"},
                    )
                else:
                    with client.stream(
                        [{"role": "user", "content": "hi"}],
                        model="gpt-4o-mini",
                        extra_headers={"X-Rawchat-Fault": fault + "*"},
                    ) as s:
                        "".join(s.text())
            except rawchat.RawchatError as exc:
                texts += [
                    str(exc),
                    repr(exc),
                    repr(exc.__dict__),
                    repr(getattr(exc, "attempts", "")),
                ]
    texts += [out.getvalue(), caplog.text, repr(client), repr(client.settings)]
    for text in texts:
        assert SECRET not in text


def test_a_har_file_and_a_saved_conversation_keep_the_canary_hidden(sim, tmp_path):
    har = HARTrace(str(tmp_path / "s.har"))
    client = rawchat.Client(CANARY, sim.base_url, trace=har)
    conversation = rawchat.Conversation(system="S")
    conversation.ask(client, "hi", model="gpt-4o-mini")
    conversation.save(str(tmp_path / "conv.json"))
    har.close()
    for path in tmp_path.iterdir():
        assert SECRET not in path.read_text(encoding="utf-8")


def test_requests_and_settings_reprs_and_curl_keep_it_hidden(sim):
    from rawchat.protocol.request import build_chat_request

    client = rawchat.Client(CANARY, sim.base_url)
    request = build_chat_request(client.settings, [{"role": "user", "content": "hi"}], model="m")
    for text in (
        repr(request),
        request.to_http(),
        request.to_curl(),
        request.to_curl(key_variable=None),
        repr(client.policies.keys),
        json.dumps(dict(request.headers.redacted())),
    ):
        assert SECRET not in text


@pytest.mark.parametrize(
    "headers",
    [{"Authorization": f"Bearer {CANARY}\n"}, {f"X-Key-{CANARY}\n": "v"}, {"X-Key": CANARY + "\r\nX: y"}],
    ids=["value", "name", "injected header"],
)  # fmt: skip
def test_an_extra_header_with_a_line_break_is_refused_without_showing_it(sim, headers):
    client = rawchat.Client(CANARY, sim.base_url)
    with pytest.raises(rawchat.RawchatError) as caught:
        client.chat([{"role": "user", "content": "hi"}], model="gpt-4o-mini", extra_headers=headers)
    assert "extra_headers" in caught.value.message
    assert SECRET not in str(caught.value) + repr(caught.value.__context__)


def test_a_server_that_echoes_the_key_in_its_401_shows_only_its_fingerprint():
    from tests.raw_server import RawServer

    body = json.dumps(
        {"error": {"message": f"Incorrect API key provided: {CANARY}.", "code": CANARY}}
    )
    answer = f"HTTP/1.1 401 Unauthorized\r\nContent-Length: {len(body)}\r\n\r\n{body}".encode()
    with RawServer(lambda conn, request: conn.sendall(answer)) as server:
        with pytest.raises(rawchat.errors.AuthenticationError) as caught:
            rawchat.Client(CANARY, server.base_url, max_retries=0).chat(
                [{"role": "user", "content": "hi"}], model="m"
            )
    error = caught.value
    assert error.message == "Incorrect API key provided: ...9z8y."
    for text in (str(error), repr(error.body), repr(error.__dict__)):
        assert SECRET not in text


def test_credentials_in_the_base_url_stay_out_of_errors_traces_and_har(sim, tmp_path):
    password = "hunter2-URLSECRET"
    out = io.StringIO()
    har = HARTrace(str(tmp_path / "u.har"))
    trace = MultiTrace([TextTrace(out), JSONLinesTrace(out), har])
    texts = []
    for base in (sim.base_url, "http://127.0.0.1:9/v1"):  # one answers, one refuses
        url = base.replace("http://", f"http://user:{password}@")
        client = rawchat.Client(CANARY, url, trace=trace, max_retries=0, timeout=(1, 1))
        for call, args in (
            (client.models, ()),
            (client.chat, ([{"role": "user", "content": "hi"}],)),
        ):
            try:
                call(*args)
            except rawchat.RawchatError as exc:
                texts += [str(exc), repr(exc.__dict__)]
    har.close()
    texts += [out.getvalue(), (tmp_path / "u.har").read_text(encoding="utf-8")]
    assert any("could not connect to 127.0.0.1:9" in text for text in texts)
    for text in texts:
        assert password not in text
