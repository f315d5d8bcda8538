"""The rawchat command, run as a user runs it: in a subprocess."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

import rawchat

from ..conftest import KEY

ANSWER = 'Hello from the rawchat simulator. I received 1 message (about 11 prompt tokens); your last message was: "What is SSE?".\n'


def run(*args, input=None, env=None, text=True):
    """``python -m rawchat ARGS`` with no provider settings from this environment."""
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AZURE_", "RAWCHAT_"))
    }
    clean.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "rawchat", *args],
        input=input,
        env=clean,
        capture_output=True,
        text=text,
        timeout=60,
    )


def masked(text: str) -> str:
    return re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", text)


def test_ask_with_nothing_configured_uses_the_simulator_and_says_so():
    result = run("ask", "What is SSE?")
    assert result.returncode == 0
    assert result.stdout == ANSWER
    assert masked(result.stderr) == (
        "rawchat: no API key or base URL set, so answers come from the built-in simulator "
        "at http://127.0.0.1:PORT/v1 (set OPENAI_API_KEY to use OpenAI)\n"
    )


def test_ask_reads_the_prompt_from_stdin():
    result = run("ask", "-", "--no-stream", input="What is SSE?")
    assert (result.returncode, result.stdout) == (0, ANSWER)


def test_ask_json_prints_the_raw_completion():
    result = run("ask", "--json", "--max-tokens", "2", "hi")
    assert '"finish_reason": "length"' in result.stdout
    assert '"content": "Hello from"' in result.stdout


def test_ask_against_a_configured_endpoint(sim):
    result = run(
        "ask",
        "--system",
        "Be brief.",
        "What is SSE?",
        env={"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": sim.base_url},
    )
    assert result.returncode == 0
    assert "I received 2 messages" in result.stdout
    assert result.stderr == ""


def test_an_api_error_exits_1_with_the_hint(sim):
    result = run(
        "ask",
        "-m",
        "gpt-9",
        "hi",
        env={"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": sim.base_url},
    )
    assert result.returncode == 1
    assert "rawchat: error: 404 The model `gpt-9` does not exist" in result.stderr
    assert "hint: the model 'gpt-9' does not exist here" in result.stderr


def test_a_network_error_exits_3():
    result = run(
        "--max-retries",
        "0",
        "models",
        env={"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"},
    )
    assert result.returncode == 3
    assert "could not connect to 127.0.0.1:9" in result.stderr


def test_a_bad_key_exits_2_and_never_prints_it():
    result = run("models", env={"OPENAI_API_KEY": "sk-secret\u200bvalue"})
    assert result.returncode == 2
    assert "contains a non-ASCII character (U+200B) at position 9" in result.stderr
    assert "secret" not in result.stderr


def test_a_key_with_a_stray_newline_is_cleaned_with_a_warning(sim):
    result = run("models", env={"OPENAI_API_KEY": KEY + "\n", "OPENAI_BASE_URL": sim.base_url})
    assert result.returncode == 0
    assert (
        result.stderr
        == "rawchat: warning: the API key from OPENAI_API_KEY had surrounding whitespace or quotes; they were removed\n"
    )


def test_models_lists_ids(sim):
    result = run("models", env={"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": sim.base_url})
    assert result.stdout.split() == sorted(
        [
            "gpt-4o-mini",
            "gpt-4o",
            "gpt-4.1-mini",
            "o4-mini",
            "deepseek-chat",
            "deepseek-reasoner",
            "rawchat-sim",
        ]
    )


def test_chat_keeps_history_and_reset_clears_it():
    result = run("chat", input="first\nsecond\n/reset\nthird\n")
    answers = [line for line in result.stdout.splitlines() if "I received" in line]
    counts = [re.search(r"received (\d+) message", a).group(1) for a in answers]
    assert counts == ["1", "3", "1"]
    assert result.returncode == 0


def test_no_command_prints_help_and_exits_2():
    result = run()
    assert result.returncode == 2
    assert "commands:" in result.stdout


def test_usage_errors_exit_2():
    assert run("ask", "--temperature", "hot", "x").returncode == 2


# -- the debugging commands -------------------------------------------------------


def configured(sim, **extra):
    return dict({"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": sim.base_url}, **extra)


def test_trace_shows_the_exchange_on_stderr_and_the_answer_on_stdout(sim):
    result = run("--trace", "ask", "--max-tokens", "2", "hi", env=configured(sim))
    assert result.stdout == "Hello from\n"
    err = masked(result.stderr)
    assert "#1 > POST http://127.0.0.1:PORT/v1/chat/completions HTTP/1.1" in err
    assert "#1 > Authorization: Bearer ...cdef" in err
    assert "data: [DONE]\\n\\n" in err
    assert KEY not in result.stderr


def test_trace_file_and_har_are_written(sim, tmp_path):
    trace, har = tmp_path / "t.jsonl", tmp_path / "t.har"
    result = run("--trace-file", str(trace), "--har", str(har), "ask", "hi", env=configured(sim))
    assert result.returncode == 0
    events = [json.loads(line)["event"] for line in trace.read_text().splitlines()]
    assert events[:2] == ["request", "response"] and events[-1] == "end"
    assert json.loads(har.read_text())["log"]["entries"][0]["response"]["status"] == 200
    assert KEY not in trace.read_text() + har.read_text()


def test_curl_prints_a_command_with_the_key_variable():
    result = run("--profile", "deepseek", "curl", "--no-stream", "-s", "Be brief.", "it's")
    assert result.returncode == 0
    assert result.stdout.splitlines()[:2] == [
        "curl 'https://api.deepseek.com/v1/chat/completions' \\",
        '  -H "Authorization: Bearer $DEEPSEEK_API_KEY" \\',
    ]
    assert result.stdout.rstrip().endswith(
        """-d '{"model":"deepseek-chat","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"it'\\''s"}]}'"""
    )


def test_replay_reports_events_and_exits_1_on_faults(tmp_path):
    capture = tmp_path / "cap.sse"
    capture.write_bytes(b'data: {"choices":[{"index":0,"delta":{"content":"Hi"}}]}\r\n\r\n')
    result = run("replay", str(capture))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "capture: 60 bytes, 1 events, 0 comments, line endings: 2 CRLF",
        "  #1    content='Hi'",
        "assembled: finish_reason=None",
        "  content: Hi",
        "faults: 2",
        "  - no data: [DONE] at the end",
        "  - no finish_reason: the answer may be truncated",
    ]


def test_replay_reads_stdin_and_exits_0_on_a_clean_capture():
    data = b'data: {"choices":[{"index":0,"delta":{"content":"ok"},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'
    result = subprocess.run(
        [sys.executable, "-m", "rawchat", "replay", "-"],
        input=data,
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 0
    assert result.stdout.decode().splitlines()[-1] == "faults: none"


def test_replay_of_a_missing_file_is_a_usage_error():
    result = run("replay", "/nonexistent/cap.sse")
    assert result.returncode == 2
    assert "cannot read /nonexistent/cap.sse: No such file or directory" in result.stderr


def test_doctor_passes_against_the_simulator(sim):
    result = run("doctor", env=configured(sim))
    assert result.returncode == 0
    steps = [line.split()[:2] for line in result.stdout.splitlines()[:-1]]
    assert steps == [
        ["ok", "configuration"],
        ["ok", "DNS"],
        ["ok", "TCP"],
        ["skip", "TLS"],
        ["ok", "authentication"],
        ["ok", "model"],
        ["ok", "streaming"],
        ["ok", "responses"],
    ]
    assert result.stdout.splitlines()[-1] == "all checks passed"


def test_doctor_exit_codes_tell_network_from_api_from_configuration(sim):
    assert (
        run(
            "doctor", env={"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}
        ).returncode
        == 3
    )
    assert run("doctor", "-m", "gpt-9", env=configured(sim)).returncode == 1
    assert run("--profile", "deepseek", "doctor").returncode == 2


def test_serve_refuses_an_unknown_fault():
    result = run("serve", "--port", "0", "--fault", "teapot")
    assert result.returncode == 2
    assert "unknown fault 'teapot'" in result.stderr


def test_serve_answers_with_its_faults():
    process = subprocess.Popen(
        [sys.executable, "-m", "rawchat", "serve", "--port", "0", "--fault", "503"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = re.search(r"http://127\.0\.0\.1:\d+/v1", process.stderr.readline()).group(0)
        client = rawchat.Client(KEY, url, clock=rawchat.Clock(sleep=lambda s: None))
        assert (
            client.chat([{"role": "user", "content": "x"}], model="gpt-4o-mini").retries_taken == 1
        )
    finally:
        process.terminate()
        process.wait(10)


def test_demo_walks_through_four_scenes():
    result = run("demo")
    assert result.returncode == 0
    headings = [line for line in result.stdout.splitlines() if line[:2] in ("1.", "2.", "3.", "4.")]
    assert headings == [
        "1. The raw request",
        "2. A streamed answer",
        "3. A 429 and its backoff",
        "4. A truncated stream, caught",
    ]
    assert "answer after 2 retries" in result.stdout
    assert "IncompleteStreamError: the stream ended after 6 events" in result.stdout


def test_every_command_has_help_with_examples():
    for command in ("ask", "chat", "curl", "replay", "doctor", "models", "serve", "demo"):
        result = run(command, "--help")
        assert result.returncode == 0 and "examples:" in result.stdout, command


def test_color_is_off_when_piped_and_on_when_forced(tmp_path):
    capture = tmp_path / "c.sse"
    capture.write_bytes(b"data: [DONE]\n\n")
    assert "\033[" not in run("replay", str(capture)).stdout
    assert "\033[" in run("--color", "always", "replay", str(capture)).stdout


def test_a_key_pool_in_the_environment_is_used_not_the_simulator(sim):
    keys = f"{KEY},sk-second-key-0000000000"
    result = run("ask", "hi", env={"OPENAI_API_KEYS": keys, "OPENAI_BASE_URL": sim.base_url})
    assert result.returncode == 0
    assert "simulator at" not in result.stderr
    assert sim.requests_by_key == {"...cdef": 1}


# -- bad input, closed pipes, busy ports -------------------------------------------


def run_bytes(*args, input=b"", env=None):
    return run(*args, input=input, env=env, text=False)


def closed_stdout(*args, env=None):
    """Run with the reading end of stdout already closed, as after ``| head``."""
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AZURE_", "RAWCHAT_"))
    }
    clean.update(env or {})
    process = subprocess.Popen(
        [sys.executable, "-m", "rawchat", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=clean,
        text=True,
    )
    process.stdout.close()
    err = process.stderr.read()
    process.stderr.close()
    return process.wait(60), err


def test_a_closed_stdout_ends_ask_and_doctor_quietly(sim):
    for args in (("ask", "hi"), ("doctor",)):
        code, err = closed_stdout(*args, env=configured(sim))
        assert code == 141, args
        assert "Traceback" not in err and "BrokenPipe" not in err, args


def test_serve_on_a_busy_port_or_a_bad_port_is_a_one_line_error():
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        busy = run("serve", "--port", str(port))
    assert busy.returncode == 2
    assert busy.stderr == (
        f"rawchat: error: cannot listen on 127.0.0.1:{port}: Address already in use "
        "(--port 0 picks a free port)\n"
    )
    huge = run("serve", "--port", "70000")
    assert (huge.returncode, huge.stderr) == (
        2,
        "rawchat: error: --port 70000 is not a port number (0 to 65535)\n",
    )


def test_global_options_work_after_the_command_too(sim):
    traced = run("ask", "--trace", "--max-tokens", "2", "hi", env=configured(sim))
    assert traced.stdout == "Hello from\n"
    assert "#1 > POST " in traced.stderr
    before = run("--trace", "ask", "--max-tokens", "2", "hi", env=configured(sim))
    assert "#1 > POST " in before.stderr


def test_profile_simulator_starts_the_built_in_simulator():
    result = run("ask", "--profile", "simulator", "What is SSE?")
    assert (result.returncode, result.stdout) == (0, ANSWER)
    assert masked(result.stderr) == (
        "rawchat: answers come from the built-in simulator at http://127.0.0.1:PORT/v1\n"
    )


def test_no_color_wins_over_color_always(tmp_path):
    capture = tmp_path / "c.sse"
    capture.write_bytes(b"data: [DONE]\n\n")
    result = run("--color", "always", "replay", str(capture), env={"NO_COLOR": "1"})
    assert "\033[" not in result.stdout
    assert "NO_COLOR" in run("--help").stdout


def test_a_prompt_that_is_not_utf8_is_a_usage_error():
    result = run_bytes("ask", "-", input=b"caf\xe9\n")
    assert (result.returncode, result.stderr) == (2, b"rawchat: error: the input is not UTF-8\n")


def test_a_piped_prompt_loses_its_bom_and_trailing_newline():
    result = run_bytes("ask", "-", "--no-stream", input=b"\xef\xbb\xbfWhat is SSE?\r\n")
    assert (result.returncode, result.stdout.decode()) == (0, ANSWER)


def test_models_and_batch_fall_back_to_the_simulator(tmp_path):
    models = run("models")
    assert models.returncode == 0 and "gpt-4o-mini" in models.stdout.split()
    assert "so answers come from the built-in simulator" in models.stderr
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text('{"prompt": "hi", "model": "gpt-4o-mini"}\n')
    batch = run("batch", str(source), str(out))
    assert batch.returncode == 0
    assert "so answers come from the built-in simulator" in batch.stderr
    assert json.loads(out.read_text())["ok"] is True


def test_a_missing_key_hint_names_the_command_options_not_the_python_api():
    result = run("--profile", "deepseek", "models")
    assert result.returncode == 2
    assert "api_key=" not in result.stderr
    assert "set DEEPSEEK_API_KEY" in result.stderr and "--profile" in result.stderr


def test_batch_input_and_output_problems_are_one_line_errors(tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_bytes(b'{"prompt": "caf\xe9"}\n')
    missing = run("batch", str(tmp_path / "nope.jsonl"), str(tmp_path / "out.jsonl"))
    latin1 = run("batch", str(source), str(tmp_path / "out.jsonl"))
    nowhere = run("batch", str(source), str(tmp_path / "no" / "out.jsonl"))
    for result in (missing, latin1, nowhere):
        assert result.returncode == 2
        errors = [line for line in result.stderr.splitlines() if "error" in line]
        assert len(errors) == 1 and "Traceback" not in result.stderr
    assert f"cannot read {tmp_path / 'nope.jsonl'}: No such file or directory" in missing.stderr
    assert "is not UTF-8" in latin1.stderr


def test_a_resumed_batch_with_earlier_errors_exits_1(tmp_path):
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text('not json\n{"prompt": "hi", "model": "gpt-4o-mini"}\n')
    assert run("batch", str(source), str(out)).returncode == 1
    again = run("batch", str(source), str(out))
    assert again.returncode == 1
    assert "2/2 done (1 errors)" in again.stderr


def test_batch_help_describes_the_input_format():
    result = run("batch", "--help")
    assert "prompt    a shortcut for one user message" in result.stdout
    assert "examples:" in result.stdout


def test_an_interrupted_batch_says_how_to_resume_and_exits_130(monkeypatch, tmp_path, capsys):
    from rawchat.cli import batch
    from rawchat.cli.main import main

    def interrupted(*args, **kwargs):
        return batch.BatchSummary(10, 2, 3, 0, 1.0, interrupted=True)

    monkeypatch.setattr(batch, "run_batch", interrupted)
    assert main(["batch", str(tmp_path / "in.jsonl"), str(tmp_path / "out.jsonl")]) == 130
    assert capsys.readouterr().err.splitlines()[-1] == (
        "rawchat: interrupted: 5 of 10 lines written; rerun the same command to resume"
    )


def test_doctor_with_the_simulator_profile_checks_the_built_in_simulator():
    result = run("--profile", "simulator", "doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all checks passed" in result.stdout


def test_curl_with_the_simulator_profile_points_where_serve_listens():
    result = run("--profile", "simulator", "curl", "hi")
    assert result.returncode == 0
    assert result.stdout.startswith("curl 'http://127.0.0.1:8765/v1/chat/completions'")


RESPONSES_ANSWER = (
    "Hello from the rawchat simulator. I received 1 message (about 11 prompt tokens); "
    'your last message was: "What is SSE?".\n'
)


def test_ask_api_responses_streams_the_answer_from_post_responses():
    result = run("--trace", "ask", "--api", "responses", "What is SSE?")
    assert (result.returncode, result.stdout) == (0, RESPONSES_ANSWER)
    assert "POST http://127.0.0.1:" in result.stderr and "/v1/responses" in result.stderr
    assert "event: response.completed" in result.stderr


def test_ask_api_responses_json_prints_the_raw_response_object():
    result = run("ask", "--api", "responses", "--json", "--max-tokens", "2", "hi")
    data = json.loads(result.stdout)
    assert (data["object"], data["status"], data["max_output_tokens"]) == (
        "response",
        "incomplete",
        2,
    )


def test_curl_api_responses_renders_the_responses_request():
    result = run("--profile", "deepseek", "curl", "--api", "responses", "-s", "Be brief.", "hi")
    assert result.returncode == 0
    assert result.stdout.splitlines()[0] == "curl 'https://api.deepseek.com/v1/responses' \\"
    assert result.stdout.rstrip().endswith(
        """-d '{"model":"deepseek-chat","input":"hi","instructions":"Be brief.","stream":true}'"""
    )


def test_chat_api_responses_takes_its_turns_on_post_responses(sim):
    result = run(
        "chat",
        "--api",
        "responses",
        input="hi\nagain\n/exit\n",
        env={"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": sim.base_url},
    )
    assert result.returncode == 0
    assert "I received 3 messages" in result.stdout
    assert sim.app.responses.store.get("resp_sim000002") is None  # stateless: store false


@pytest.mark.parametrize("value", ["0", "-1", "nan", "x"])
def test_a_timeout_that_is_not_positive_seconds_names_the_option(value):
    result = run("--timeout", value, "ask", "hi")
    assert result.returncode == 2
    assert f"argument --timeout: '{value}' is not a number of seconds above 0" in result.stderr
