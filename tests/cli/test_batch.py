"""rawchat batch: input order, typed failures, resuming after a crash."""

from __future__ import annotations

import io
import json

import rawchat
from rawchat.cli.batch import run_batch
from rawchat.policies import Policies

from ..conftest import KEY


def write_input(path, count, extra=()):
    lines = [
        json.dumps({"id": f"q{i}", "prompt": f"question {i}", "max_tokens": 2})
        for i in range(count)
    ]
    path.write_text("\n".join([*lines, *extra]) + "\n")


def results(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_results_come_out_in_input_order_with_typed_errors(sim, tmp_path):
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(
        source,
        20,
        extra=["not json", '{"prompt": 5}', json.dumps({"prompt": "x", "model": "gpt-9"})],
    )
    client = rawchat.Client(KEY, sim.base_url, model="gpt-4o-mini")
    summary = run_batch(client, str(source), str(out), workers=6)
    rows = results(out)
    assert [r["line"] for r in rows] == list(range(1, 24))
    assert [r["id"] for r in rows[:3]] == ["q0", "q1", "q2"]
    assert rows[0]["content"] == "Hello from" and rows[0]["ok"] is True
    assert rows[20]["error"] == {
        "type": "InvalidInput",
        "message": "the line is not JSON (Expecting value: line 1 column 1 (char 0))",
    }
    assert rows[21]["error"]["message"] == 'a line needs "messages" or "prompt"'
    assert rows[22]["error"]["type"] == "NotFoundError" and rows[22]["error"]["status"] == 404
    assert (summary.total, summary.done, summary.errors) == (23, 23, 3)


def test_a_crashed_run_resumes_without_repeating_finished_lines(sim, tmp_path):
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(source, 10)
    client = rawchat.Client(KEY, sim.base_url, model="gpt-4o-mini")
    run_batch(client, str(source), str(out), workers=3)
    finished = out.read_text().splitlines()
    # The crash: six results were written, the seventh was cut mid-line.
    out.write_text("\n".join(finished[:6]) + "\n" + finished[6][:25])
    before = sim.request_count
    summary = run_batch(client, str(source), str(out), workers=3)
    assert (summary.skipped, summary.done) == (6, 4)
    assert sim.request_count - before == 4
    assert [r["line"] for r in results(out)] == list(range(1, 11))


def test_a_progress_line_goes_to_stderr(sim, tmp_path):
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(source, 3)
    progress = io.StringIO()
    run_batch(
        rawchat.Client(KEY, sim.base_url, model="gpt-4o-mini"),
        str(source),
        str(out),
        progress=progress,
    )
    assert progress.getvalue().startswith("rawchat batch: 3/3 done (0 errors), ")


def test_many_threads_share_one_client_without_losing_or_duplicating_answers(sim):
    from concurrent.futures import ThreadPoolExecutor

    client = rawchat.Client(KEY, sim.base_url, policies=Policies(usage=rawchat.UsageMeter()))
    with ThreadPoolExecutor(16) as pool:
        answers = list(
            pool.map(
                lambda i: (
                    client.chat([{"role": "user", "content": f"n{i}"}], model="gpt-4o-mini").content
                ),
                range(200),
            )
        )
    assert [a.rsplit('"', 2)[-2] for a in answers] == [f"n{i}" for i in range(200)]
    assert client.policies.usage.total.requests == 200
    assert sim.request_count == 200
