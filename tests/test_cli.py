"""The rawchat command, run as a user runs it: in a subprocess."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from .conftest import KEY

ANSWER = 'Hello from the rawchat simulator. I received 1 message (about 11 prompt tokens); your last message was: "What is SSE?".\n'


def run(*args, input=None, env=None):
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AZURE_", "RAWCHAT_"))
    }
    clean.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "rawchat", *args],
        input=input,
        env=clean,
        capture_output=True,
        text=True,
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
