"""rawchat batch: input order, typed failures, resuming after a crash."""

from __future__ import annotations

import io
import json

import pytest

import rawchat
from rawchat.cli.batch import run_batch
from rawchat.errors import ConfigError
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


def test_lines_are_split_on_newline_only_so_unicode_separators_stay_in_a_prompt(sim, tmp_path):
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    prompts = ["a\u2028b", "c\x85d", "e\x0cf"]
    lines = [json.dumps({"prompt": p}, ensure_ascii=False) for p in prompts]
    source.write_bytes(("\n".join(lines[:2]) + "\r\n" + lines[2] + "\r\n").encode("utf-8"))
    client = rawchat.Client(KEY, sim.base_url, model="gpt-4o-mini")
    summary = run_batch(client, str(source), str(out))
    assert (summary.total, summary.errors) == (3, 0)
    rows = [json.loads(line) for line in out.read_bytes().split(b"\n")[:-1]]
    assert [row["content"].rsplit('"', 2)[-2] for row in rows] == prompts


def test_unreadable_input_and_unwritable_output_are_config_errors(sim, tmp_path):
    client = rawchat.Client(KEY, sim.base_url, model="gpt-4o-mini")
    source = tmp_path / "in.jsonl"
    write_input(source, 1)
    latin1 = tmp_path / "latin1.jsonl"
    latin1.write_bytes(b'{"prompt": "caf\xe9"}\n')
    cases = [
        (str(tmp_path / "nope.jsonl"), str(tmp_path / "out.jsonl")),
        (str(latin1), str(tmp_path / "out.jsonl")),
        (str(source), str(tmp_path / "missing" / "out.jsonl")),
    ]
    messages = []
    for in_path, out_path in cases:
        with pytest.raises(ConfigError) as caught:
            run_batch(client, in_path, out_path)
        messages.append(caught.value.message)
    assert messages == [
        f"cannot read {tmp_path / 'nope.jsonl'}: No such file or directory",
        f"{latin1} is not UTF-8 (byte 15: b'\\xe9')",
        f"cannot write {tmp_path / 'missing' / 'out.jsonl'}: No such file or directory",
    ]
    assert sim.request_count == 0


class CtrlCOnThirdProgress(io.StringIO):
    """A terminal on which the user presses Ctrl-C after two results were written."""

    def __init__(self):
        super().__init__()
        self.writes = 0

    def isatty(self):
        return True

    def write(self, text):
        self.writes += 1
        if self.writes == 3:
            raise KeyboardInterrupt
        return super().write(text)


def test_ctrl_c_stops_sending_and_writes_every_answer_already_paid_for(sim, tmp_path):
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(source, 40)
    client = rawchat.Client(KEY, sim.base_url, model="gpt-4o-mini")
    summary = run_batch(client, str(source), str(out), workers=2, progress=CtrlCOnThirdProgress())
    assert summary.interrupted is True
    written = results(out)
    assert [r["line"] for r in written] == list(range(1, len(written) + 1))
    assert 3 <= len(written) < 40
    assert summary.done == len(written) == sim.request_count
    resumed = run_batch(client, str(source), str(out), workers=2)
    assert (resumed.skipped + resumed.done, resumed.interrupted) == (40, False)
    assert [r["line"] for r in results(out)] == list(range(1, 41))


def test_a_resumed_run_counts_the_errors_already_in_the_output(sim, tmp_path):
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(source, 3, extra=["not json"])
    client = rawchat.Client(KEY, sim.base_url, model="gpt-4o-mini")
    assert run_batch(client, str(source), str(out)).errors == 1
    write_input(source, 3, extra=["not json", '{"prompt": "one more"}'])
    resumed = run_batch(client, str(source), str(out))
    assert (resumed.skipped, resumed.done, resumed.errors) == (4, 1, 1)


def test_a_batch_leaves_no_temporary_files(sim, tmp_path):
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(source, 3)
    run_batch(rawchat.Client(KEY, sim.base_url, model="gpt-4o-mini"), str(source), str(out))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "out.jsonl"]
