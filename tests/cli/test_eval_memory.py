"""``rawchat eval-memory``, run as a user runs it: tables, files, determinism, errors."""

from __future__ import annotations

import io
import json

import pytest

from rawchat.cli.eval_memory import Progress

from ..conftest import KEY
from .test_main import run

SENT_HEADER = (
    "strategy               budget      kept  early middle recent stale  tok/req prefix   cost $"
)
READER_HEADER = (
    "strategy               budget   correct stale wrong abstain unknown tok/probe  judge"
)
SMALL = ("--turns", "40", "--strategies", "drop-oldest,relevant", "--budgets", "25")
FILES = [
    "facts-by-depth.svg",
    "facts-vs-tokens.svg",
    "oracle.jsonl",
    "oracle.txt",
    "results.json",
    "table.txt",
]


def evaluate(out, *args, env=None):
    return run("eval-memory", *SMALL, "--out", str(out), *args, env=env)


def test_offline_it_prints_both_tables_and_writes_the_results_and_two_plots(tmp_path):
    result = evaluate(tmp_path / "out")
    assert (result.returncode, result.stderr) == (0, "")
    lines = result.stdout.splitlines()
    assert lines[0] == (
        "rawchat eval-memory: seed 0, 2 conversations of 40 turns (en+zh), "
        "budgets 25% of the whole history"
    )
    assert SENT_HEADER in lines and READER_HEADER in lines
    sent = [line.split()[:3] for line in lines[lines.index(SENT_HEADER) + 2 :][:4]]
    assert sent[0] == ["full-history", "-", "30/30"] and sent[1] == ["no-history", "-", "0/30"]
    assert [row[:2] for row in sent[2:]] == [["drop-oldest", "25%"], ["relevant", "25%"]]
    relevant = next(
        line for line in lines[lines.index(READER_HEADER) :] if line.startswith("relevant")
    )
    assert relevant.split()[2:4] == ["30/30", "0"]  # every fact answered, none stale
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == FILES
    assert lines[-len(FILES) :] == [
        f"wrote {tmp_path / 'out' / name}" for name in FILES[4:6] + FILES[1::-1] + FILES[2:4]
    ]
    results = json.loads((tmp_path / "out" / "results.json").read_text(encoding="utf-8"))
    assert results["settings"] == {
        "seed": 0,
        "turns": 40,
        "languages": ["en", "zh"],
        "strategies": ["drop-oldest", "relevant"],
        "budgets": [0.25],
    }
    assert (tmp_path / "out" / "facts-by-depth.svg").read_text().startswith("<svg ")


def test_the_same_seed_gives_the_same_figures_and_another_seed_others(tmp_path):
    first, again = evaluate(tmp_path / "a", "--seed", "3"), evaluate(tmp_path / "b", "--seed", "3")
    assert first.stdout.replace("/a/", "/b/") == again.stdout
    for name in ("results.json", "oracle.jsonl", "facts-vs-tokens.svg"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    other = evaluate(tmp_path / "c", "--seed", "4", "--no-reader")
    assert other.returncode == 0
    assert (tmp_path / "c" / "results.json").read_bytes() != (
        tmp_path / "a" / "results.json"
    ).read_bytes()
    assert not (tmp_path / "c" / "oracle.jsonl").exists()


@pytest.mark.parametrize(
    "option, value, says",
    [
        ("--strategies", "drop-oldest,lru", "unknown strategy 'lru'"),
        (
            "--budgets",
            "0",
            "--budgets '0': a budget is a percentage of the whole history, 1 to 100",
        ),
        ("--budgets", "25,101", "--budgets '101'"),
        ("--budgets", "half", "--budgets 'half'"),
        ("--turns", "20", "--turns 20: a conversation needs at least 40 turns"),
    ],
)
def test_a_bad_argument_says_what_is_wrong_and_exits_2(tmp_path, option, value, says):
    result = run("eval-memory", option, value, "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith(f"rawchat: error: {says}")
    if option == "--strategies":
        assert "the strategies are drop-oldest, keep-first-and-recent, summarize, relevant" in (
            result.stderr
        )
    assert not (tmp_path / "out").exists()


def test_live_with_nothing_configured_is_a_configuration_error(tmp_path):
    result = evaluate(tmp_path / "out", "--live")
    assert result.returncode == 2 and "rawchat: error:" in result.stderr


@pytest.fixture
def endpoint(sim):
    return {"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": sim.base_url}


def test_live_asks_the_configured_endpoint_and_resumes_where_it_stopped(sim, endpoint, tmp_path):
    out = tmp_path / "out"
    before = sim.request_count
    first = evaluate(out, "--live", "-m", "gpt-4o-mini", env=endpoint)
    assert first.returncode == 0, first.stderr
    assert "What gpt-4o-mini answers (exact match)" in first.stdout
    assert READER_HEADER in first.stdout
    asked = sim.request_count - before
    assert asked > 0
    rows = [json.loads(line) for line in (out / "live.jsonl").read_text("utf-8").splitlines()]
    assert rows[0]["type"] == "run" and rows[0]["model"] == "gpt-4o-mini"
    assert {r["cell"] for r in rows[1:]} == {
        "en-0-40/drop-oldest/0.25", "en-0-40/relevant/0.25",
        "zh-0-40/drop-oldest/0.25", "zh-0-40/relevant/0.25",
    }  # fmt: skip
    again = evaluate(out, "--live", "-m", "gpt-4o-mini", env=endpoint)
    assert again.returncode == 0 and sim.request_count - before == asked  # nothing asked again
    assert again.stdout == first.stdout


def test_live_stops_starting_cells_once_its_token_budget_is_spent(endpoint, tmp_path):
    result = evaluate(
        tmp_path / "out", "--live", "-m", "gpt-4o-mini", "--token-budget", "1", env=endpoint
    )
    assert result.returncode == 0
    assert "the token budget (1) is spent; 1 of 4 cells are done" in result.stderr


def test_live_with_a_judge_reports_its_agreement(endpoint, tmp_path):
    result = evaluate(
        tmp_path / "out", "--live", "-m", "gpt-4o-mini", "--judge", "rawchat-sim", env=endpoint
    )
    assert result.returncode == 0, result.stderr
    assert "judged by rawchat-sim, rawchat-judge/1" in result.stdout
    assert "judge and exact match agree on " in result.stdout


def test_the_judge_must_be_another_model_and_a_file_resumes_only_its_own_run(endpoint, tmp_path):
    same = evaluate(tmp_path / "out", "--live", "-m", "gpt-4o-mini", "--judge", "gpt-4o-mini",
                    env=endpoint)  # fmt: skip
    assert same.returncode == 2 and "--judge gpt-4o-mini is the model answering" in same.stderr
    first = evaluate(tmp_path / "out", "--live", "-m", "gpt-4o-mini", "--token-budget", "1",
                     env=endpoint)  # fmt: skip
    assert first.returncode == 0
    other = evaluate(tmp_path / "out", "--live", "-m", "gpt-4o", env=endpoint)
    assert other.returncode == 2
    assert "holds a run of gpt-4o-mini (judge None), not gpt-4o (judge None)" in other.stderr


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_the_progress_bar_is_drawn_on_a_terminal_only():
    screen, pipe = Terminal(), io.StringIO()
    for out in (screen, pipe):
        bar = Progress(4, out)
        bar.step("tier A")
        bar.close()
    assert screen.getvalue() == (
        "\r[#######.......................] 1/4 tier A" + " " * 34 + "\r" + " " * 80 + "\r"
    )
    assert pipe.getvalue() == ""
