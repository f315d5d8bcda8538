"""``--redis URL`` and ``RAWCHAT_REDIS_URL``: the command's pacing and key health, shared.

Run as a user runs the command, in a subprocess, against a redis-server
of the test's own.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Iterator

import pytest

from rawchat.simulator import Simulator

from ..policies.test_shared_pacing import RedisServer, free_port, redis
from .test_main import ANSWER, run

A, B = "sk-key-a-000000000aaaa", "sk-key-b-000000000bbbb"
#: The built-in simulator's key, as the pacer names its buckets.
SIMULATOR_LABEL = "...ator"


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[RedisServer]:
    started = RedisServer(str(tmp_path_factory.mktemp("redis")), free_port()).start()
    yield started
    started.stop()


@pytest.fixture
def store(server):
    client = redis.Redis.from_url(server.url)
    client.flushall()
    return client


def names(store) -> list:
    return sorted(name.decode() for name in store.keys("*"))


def lines(tmp_path, count: int) -> str:
    source = tmp_path / "in.jsonl"
    source.write_text("".join(f'{{"prompt": "question {i}"}}\n' for i in range(count)))
    return str(source)


def test_batch_rpm_with_redis_paces_in_redis(server, store, tmp_path):
    source, out = lines(tmp_path, 3), str(tmp_path / "out.jsonl")
    result = run("--redis", server.url, "batch", source, out, "--rpm", "600", "--workers", "2")
    assert result.returncode == 0, result.stderr
    assert names(store) == [f"rawchat:pacer:{SIMULATOR_LABEL}:requests"]
    level = float(store.hget(names(store)[0], "level"))
    assert level <= 2 - 3 + 1  # a burst of two, three requests, at most a second's refill


def test_the_option_may_come_after_the_command(server, store, tmp_path):
    source, out = lines(tmp_path, 1), str(tmp_path / "out.jsonl")
    result = run("batch", source, out, "--tpm", "100000", "--redis", server.url)
    assert result.returncode == 0, result.stderr
    assert names(store) == [f"rawchat:pacer:{SIMULATOR_LABEL}:tokens"]


def test_rawchat_redis_url_in_the_environment_does_the_same_for_ask(server, store):
    result = run("ask", "--rpm", "60", "What is SSE?", env={"RAWCHAT_REDIS_URL": server.url})
    assert (result.returncode, result.stdout) == (0, ANSWER)
    assert names(store) == [f"rawchat:pacer:{SIMULATOR_LABEL}:requests"]


def test_chat_takes_rpm_too(server, store):
    result = run("--redis", server.url, "chat", "--rpm", "60", input="hi\n")
    assert result.returncode == 0, result.stderr
    assert names(store) == [f"rawchat:pacer:{SIMULATOR_LABEL}:requests"]


def test_without_redis_the_pacer_stays_in_the_process(store, tmp_path):
    source, out = lines(tmp_path, 2), str(tmp_path / "out.jsonl")
    assert run("batch", source, out, "--rpm", "600").returncode == 0
    assert names(store) == []


def test_a_key_one_command_found_revoked_is_not_tried_by_the_next(server, store):
    with Simulator(api_keys=[B]) as sim:
        env = {"OPENAI_API_KEYS": f"{A},{B}", "OPENAI_BASE_URL": sim.base_url}
        for _ in range(2):
            result = run("--redis", server.url, "ask", "--no-stream", "hi", env=env)
            assert result.returncode == 0, result.stderr
        assert sim.requests_by_key == {"...aaaa": 1, "...bbbb": 2}
    assert [name.rsplit(":", 1)[1] for name in names(store)] == ["retired"]


def test_with_redis_unreachable_the_command_goes_on_and_says_so_once():
    url = f"redis://127.0.0.1:{free_port()}/0"
    result = run("--redis", url, "ask", "--rpm", "60", "--no-stream", "What is SSE?")
    assert (result.returncode, result.stdout) == (0, ANSWER)
    warnings = [line for line in result.stderr.splitlines() if "Redis" in line]
    assert len(warnings) == 1
    assert warnings[0].startswith("rawchat: Redis is unreachable (")
    assert warnings[0].endswith("; pacing in this process at 0.5 of the limit until it answers")


def without_the_redis_package(*args: str) -> subprocess.CompletedProcess:
    """``rawchat ARGS`` in a Python where ``import redis`` fails."""
    code = (
        "import sys; sys.modules['redis'] = None; from rawchat.cli.main import main; "
        "sys.exit(main(sys.argv[1:]))"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60
    )


def test_without_the_redis_package_the_command_works_as_before():
    result = without_the_redis_package("--profile", "simulator", "ask", "--rpm", "60", "hi")
    assert result.returncode == 0, result.stderr


def test_without_the_redis_package_redis_is_a_usage_error_that_says_what_to_install():
    result = without_the_redis_package(
        "--profile", "simulator", "--redis", "redis://127.0.0.1:6379/0", "ask", "--rpm", "60", "hi"
    )
    assert result.returncode == 2
    assert "pip install 'rawchat[redis]'" in result.stderr
