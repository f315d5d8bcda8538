"""rawchat batch --remote: the Batch API job, its output, and resuming after a kill."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest

import rawchat
from rawchat.cli.batch import run_batch
from rawchat.cli.main import main
from rawchat.cli.remote_batch import run_remote_batch, state_path
from rawchat.policies import UsageMeter
from rawchat.policies.usage import PRICES
from rawchat.protocol.completion import Usage
from rawchat.simulator.batches import BatchTiming

from ..conftest import KEY

FAST = BatchTiming(validate=0.05, run=0.1, finalize=0.05)
LINES = [
    {"id": "q1", "prompt": "one"},
    {"id": "q2", "messages": [{"role": "user", "content": "two"}], "max_tokens": 5},
    "not json",
    {"id": "q4", "input": "four"},
    {"prompt": "five", "model": "no-such-model"},
    {"id": 6, "prompt": "six", "api": "chat"},
]


@pytest.fixture
def provider(sim, monkeypatch):
    sim.app.batches.timing = FAST
    monkeypatch.setenv("OPENAI_BASE_URL", sim.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    return sim.app.batches


@pytest.fixture
def paths(tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in LINES))
    return str(source), str(tmp_path / "out.jsonl")


def rawchat_batch(paths, *options):
    return main(["batch", *paths, "--remote", "--poll", "0.02", *options])


def rows(path):
    with open(path, encoding="utf-8") as out:
        return [json.loads(line) for line in out]


def read_state(paths):
    with open(state_path(paths[1]), encoding="utf-8") as state:
        return json.load(state)


def counts(batches):
    """What the provider was asked to do: files uploaded, batches created."""
    return batches.uploads, batches.created


class Hold:
    """Stops the simulator inside ``name`` once it has done its work, before it
    answers: the moment a client killed then has sent it, and never heard back."""

    def __init__(self, batches, name, when=lambda *args, **kwargs: True):
        self.reached, self.release = threading.Event(), threading.Event()
        original = getattr(batches, name)

        def held(*args, **kwargs):
            answer = original(*args, **kwargs)
            if when(*args, **kwargs) and not self.release.is_set():
                self.reached.set()
                self.release.wait(10)
            return answer

        setattr(batches, name, held)


def killed_while_held(sim, paths, hold):
    """``rawchat batch --remote`` in its own process, killed while ``hold`` holds it."""
    env = dict(os.environ, OPENAI_BASE_URL=sim.base_url, OPENAI_API_KEY=KEY)
    command = [sys.executable, "-m", "rawchat", "batch", *paths, "--remote", "--poll", "0.02"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert hold.reached.wait(20), process.communicate(timeout=5)
    finally:
        process.kill()
        process.communicate()
        hold.release.set()


def test_results_come_back_in_input_order_as_the_local_batch_writes_them(
    provider, paths, capsys, sim
):
    assert rawchat_batch(paths) == 1  # two lines failed
    remote = rows(paths[1])
    assert [r["line"] for r in remote] == [1, 2, 3, 4, 5, 6]
    assert [r.get("id", "-") for r in remote] == ["q1", "q2", "-", "q4", None, 6]
    assert [r["ok"] for r in remote] == [True, True, False, True, False, True]
    local_out = paths[1] + ".local"
    client = rawchat.Client(KEY, sim.base_url, model="gpt-4o-mini")
    run_batch(client, paths[0], local_out)
    local = rows(local_out)
    for line in (0, 1, 2, 5):  # chat lines, and the line that is not JSON
        assert remote[line] == local[line]
    assert remote[3]["content"].endswith('your last message was: "four".')
    assert remote[4]["error"] == {
        "type": "invalid_request_error",
        "message": "The model `no-such-model` does not exist or you do not have access to it.",
        "status": 404,
    }
    assert counts(provider) == (2, 2)  # one batch for chat, one for the Responses API
    err = capsys.readouterr().err
    assert "rawchat batch --remote: 5/5 requests done (1 failed); 2 completed\n" in err
    assert err.endswith(
        f"rawchat: {paths[1]}: 6 lines, 4 ok, 2 errors; 32 prompt + 59 completion tokens, "
        "$0.000020 at Batch API prices (50% of the listed)\n"
    )
    assert not os.path.exists(paths[1] + ".files")


def test_a_finished_job_run_again_asks_the_provider_nothing(provider, paths, sim):
    rawchat_batch(paths)
    before = sim.request_count
    assert rawchat_batch(paths) == 1
    assert sim.request_count == before


def test_usage_is_priced_at_half_the_listed_price(provider, paths, sim):
    meter = UsageMeter()
    client = rawchat.Client(KEY, sim.base_url)
    summary = run_remote_batch(client, *paths, model="gpt-4o-mini", poll=0.02, meter=meter)
    listed = PRICES["gpt-4o-mini"].cost(Usage(32, 59, 91))
    assert (summary.prompt_tokens, summary.completion_tokens) == (32, 59)
    assert summary.cost == pytest.approx(listed / 2)
    assert meter.total.cost == pytest.approx(listed / 2)


def test_an_input_over_the_request_limit_becomes_several_batches(provider, paths, sim):
    client = rawchat.Client(KEY, sim.base_url)
    summary = run_remote_batch(client, *paths, model="gpt-4o-mini", poll=0.02, max_requests=2)
    assert (summary.batches, summary.ok, summary.errors) == (3, 4, 2)
    state = read_state(paths)
    assert [b["lines"] for b in state["batches"]] == [[[1, 2]], [[5, 6]], [[4, 4]]]
    assert [r["line"] for r in rows(paths[1])] == [1, 2, 3, 4, 5, 6]


def test_a_dry_run_shows_the_files_and_requests_and_sends_nothing(provider, paths, capsys, sim):
    assert rawchat_batch(paths, "--dry-run", "-m", "gpt-4o-mini") == 0
    assert capsys.readouterr().out == (
        f"{paths[0]}: 6 lines -> 2 files to upload, 2 batches to create (nothing is sent)\n"
        "  file 1: POST /v1/chat/completions, 4 requests, 576 bytes\n"
        '    {"custom_id":"q1","method":"POST","url":"/v1/chat/completions","body":{"model":'
        '"gpt-4o-mini","messages":[{"role":"user","content":"one"}]}}\n'
        '    {"custom_id":"q2","method":"POST","url":"/v1/chat/completions","body":{"model":'
        '"gpt-4o-mini","messages":[{"role":"user","content":"two"}],"max_tokens":5}}\n'
        "    ... 1 more\n"
        '    {"custom_id":"6","method":"POST","url":"/v1/chat/completions","body":{"model":'
        '"gpt-4o-mini","messages":[{"role":"user","content":"six"}]}}\n'
        "  file 2: POST /v1/responses, 1 request, 103 bytes\n"
        '    {"custom_id":"q4","method":"POST","url":"/v1/responses","body":{"model":'
        '"gpt-4o-mini","input":"four"}}\n'
        "  line 3 is not sent (it gets an error result): the line is not JSON (Expecting "
        "value: line 1 column 1 (char 0))\n"
    )
    assert sim.request_count == 0
    assert sorted(os.listdir(os.path.dirname(paths[0]))) == ["in.jsonl"]


def test_duplicate_ids_are_refused_before_anything_is_uploaded(provider, tmp_path, capsys, sim):
    source = tmp_path / "in.jsonl"
    source.write_text('{"id": "a", "prompt": "x"}\n{"prompt": "y"}\n{"id": "a", "prompt": "z"}\n')
    assert rawchat_batch((str(source), str(tmp_path / "out.jsonl"))) == 2
    assert "lines 1 and 3 have the same custom_id 'a'" in capsys.readouterr().err
    assert sim.request_count == 0
    assert sorted(os.listdir(tmp_path)) == ["in.jsonl"]


def test_no_wait_submits_then_status_shows_it_and_a_rerun_collects_it(provider, paths, capsys, sim):
    sim.app.batches.timing = BatchTiming(validate=0.05, run=0.5, finalize=0.05)
    assert rawchat_batch(paths, "--no-wait") == 0
    assert "2 batches submitted; rerun the same command" in capsys.readouterr().err
    assert not os.path.exists(paths[1])
    assert rawchat_batch(paths, "--status") == 0
    shown = capsys.readouterr().out.splitlines()
    assert shown[0].endswith(f": 6 lines, 2 batches, {paths[1]} not written yet")
    assert shown[1].startswith("  part 1: batch_sim000001 /v1/chat/completions ")
    assert shown[1].endswith("file file-sim000001")
    assert shown[2].startswith("  part 2: batch_sim000002 /v1/responses ")
    assert rawchat_batch(paths) == 1
    assert [r["ok"] for r in rows(paths[1])] == [True, True, False, True, False, True]
    assert counts(provider) == (2, 2)


def test_cancel_stops_the_batches_and_the_lines_that_never_ran_say_so(provider, paths, sim):
    sim.app.batches.timing = BatchTiming(validate=30, run=1, finalize=0.05)
    assert rawchat_batch(paths, "--no-wait") == 0
    assert rawchat_batch(paths, "--cancel") == 1
    errors = [r.get("error", {}).get("type") for r in rows(paths[1])]
    assert errors == ["batch_cancelled"] * 2 + ["InvalidInput"] + ["batch_cancelled"] * 3
    assert counts(provider) == (2, 2)
    assert sim.app.batches.batches["batch_sim000001"]["status"] == "cancelled"


def test_an_expired_batch_keeps_its_finished_lines_and_the_rest_go_again(provider, tmp_path, sim):
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text("".join(json.dumps({"prompt": f"q{n}"}) + "\n" for n in range(10)))
    # The first batch gets 2 of its 10 lines done before its window runs out.
    provider.timing = BatchTiming(validate=0.05, run=1.0, finalize=0.05, window=0.3)
    create = provider.create

    def then_fast(*args):
        answer = create(*args)
        provider.timing = FAST
        return answer

    provider.create = then_fast
    assert rawchat_batch((str(source), str(out)), "-m", "gpt-4o-mini") == 0
    assert [r["line"] for r in rows(out)] == list(range(1, 11))
    assert all(r["ok"] for r in rows(out))
    assert counts(provider) == (2, 2)
    batches = json.loads((tmp_path / "out.jsonl.state.json").read_text())["batches"]
    assert [(b["status"], b["lines"], b["retry_of"]) for b in batches] == [
        ("expired", [[1, 10]], None),
        ("completed", [[3, 10]], 1),
    ]


def test_a_changed_input_is_refused_by_the_recorded_job(provider, paths, capsys):
    rawchat_batch(paths, "--no-wait")
    with open(paths[0], "a") as source:
        source.write('{"prompt": "seven"}\n')
    assert rawchat_batch(paths) == 2
    assert "has changed since the job" in capsys.readouterr().err


def test_the_remote_options_need_remote(provider, paths, capsys):
    assert main(["batch", *paths, "--status"]) == 2
    assert "go with --remote" in capsys.readouterr().err


# -- killed, then run again: nothing is submitted twice ---------------------------------


def test_killed_during_an_upload_the_rerun_finds_the_file_instead_of_sending_it_again(
    provider, paths, sim
):
    killed_while_held(sim, paths, Hold(provider, "upload"))
    state = read_state(paths)
    assert (state["batches"][0]["uploading"], state["batches"][0]["file_id"]) == (True, None)
    assert counts(provider) == (1, 0)
    assert rawchat_batch(paths) == 1
    assert counts(provider) == (2, 2)
    assert len(rows(paths[1])) == 6


def test_killed_while_creating_a_batch_the_rerun_finds_it_by_its_metadata(provider, paths, sim):
    killed_while_held(sim, paths, Hold(provider, "create"))
    assert counts(provider) == (1, 1)
    assert rawchat_batch(paths) == 1
    assert counts(provider) == (2, 2)
    assert len(rows(paths[1])) == 6


def test_killed_while_polling_the_rerun_polls_the_same_batches(provider, paths, sim):
    polls = []

    def second_look(batch_id, now):  # the first is create's own answer
        polls.append(batch_id)
        return polls.count(batch_id) > 1 and provider.created == 2

    killed_while_held(sim, paths, Hold(provider, "retrieve", when=second_look))
    assert counts(provider) == (2, 2)
    assert rawchat_batch(paths) == 1
    assert counts(provider) == (2, 2)
    assert len(rows(paths[1])) == 6


def test_killed_during_a_download_the_rerun_fetches_only_what_is_missing(provider, paths, sim):
    hold = Hold(provider, "file", when=lambda file_id, content=False: content)
    killed_while_held(sim, paths, hold)
    assert counts(provider) == (2, 2) and provider.downloads == 1
    assert not os.path.exists(paths[1])
    assert rawchat_batch(paths) == 1
    assert counts(provider) == (2, 2)
    assert provider.downloads == 4  # the cut one again, then the other three
    before = sim.request_count
    assert rawchat_batch(paths) == 1
    assert (sim.request_count, provider.downloads) == (before, 4)


@pytest.mark.skipif(sys.platform == "win32", reason="the lock needs fcntl")
def test_a_second_process_on_the_same_job_is_refused(provider, paths, capsys, sim):
    import fcntl

    with open(paths[1] + ".lock", "a") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        assert rawchat_batch(paths) == 2
    assert f"another rawchat batch --remote is working on {paths[1]}" in capsys.readouterr().err
    assert sim.request_count == 0
