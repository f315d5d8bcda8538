"""The memory evaluation: synthetic conversations, tier A, tier B over the simulator, reports."""

from __future__ import annotations

import json
import xml.dom.minidom

import pytest

import rawchat
from rawchat.conversation.evaluation import (
    DEPTHS,
    KINDS,
    agreement,
    generate,
    judge,
    rows,
    run_live,
    score,
    survival,
    table,
    write,
)
from rawchat.protocol.trimming import DropOldest, KeepFirstAndRecent, Relevant, Summarize

from ..conftest import KEY

# -- synthetic conversations ----------------------------------------------------------


def test_a_conversation_is_a_pure_function_of_seed_length_and_language():
    assert generate(3, 60, "en") == generate(3, 60, "en")
    assert generate(3, 60, "en") != generate(4, 60, "en")
    assert len(generate(3, 80, "zh").turns) == 80


@pytest.mark.parametrize("language", ["en", "zh"])
def test_every_kind_is_planted_at_every_depth_and_said_where_the_fact_says(language):
    dialogue = generate(7, 60, language)
    planted = {(f.kind, f.depth) for f in dialogue.facts if f.kind != "absent"}
    assert planted == {(k, d) for k in KINDS for d in DEPTHS}
    for fact in dialogue.facts:
        if fact.answer:
            assert fact.answer in json.dumps(dialogue.turns[fact.turn], ensure_ascii=False)
        if fact.stale:
            assert fact.stale in json.dumps(dialogue.turns[fact.stale_turn], ensure_ascii=False)
            assert fact.stale_turn < fact.turn
    assert [f.answer for f in dialogue.facts if f.kind == "absent"] == ["", "", ""]


def test_a_tool_fact_arrives_only_in_a_tool_result():
    dialogue = generate(1, 60, "en")
    fact = next(f for f in dialogue.facts if f.kind == "tool")
    roles = [m["role"] for m in dialogue.turns[fact.turn]]
    assert roles == ["user", "assistant", "tool", "assistant"]
    assert fact.answer in dialogue.turns[fact.turn][2]["content"]
    assert fact.answer not in dialogue.turns[fact.turn][3]["content"]


def test_too_short_a_conversation_or_an_unknown_language_is_refused():
    with pytest.raises(ValueError):
        generate(0, 20)
    with pytest.raises(ValueError):
        generate(0, 60, "fr")


# -- tier A ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cells():
    return survival([generate(0, 60, "en"), generate(0, 60, "zh")])


def by(cells, strategy, share=0.25):
    (row,) = [r for r in rows(cells) if r.strategy == strategy and r.share == share]
    return row


def test_tier_a_is_deterministic_for_a_seed(cells):
    again = survival([generate(0, 60, "en"), generate(0, 60, "zh")])
    assert again == cells


def test_the_bounds_keep_everything_and_nothing(cells):
    assert (by(cells, "full-history", None).kept, by(cells, "full-history", None).planted) == (
        30,
        30,
    )
    assert by(cells, "no-history", None).kept == 0


def test_relevant_keeps_more_facts_than_the_windows_at_a_quarter_budget_for_no_more_tokens(cells):
    relevant = by(cells, "relevant")
    for other in ("drop-oldest", "keep-first-and-recent"):
        assert relevant.kept > by(cells, other).kept
        assert relevant.prompt_tokens <= by(cells, other).prompt_tokens
    assert relevant.stale == 0


def test_windows_keep_only_recent_facts_at_a_quarter_budget(cells):
    depths = dict((d, k) for d, k, _ in by(cells, "drop-oldest").by_depth)
    assert depths["early"] == depths["middle"] == 0 and depths["recent"] > 0


def test_summarize_pays_for_its_summary_calls(cells):
    summarize = by(cells, "summarize")
    assert summarize.summary_calls > 0
    assert summarize.prompt_tokens > by(cells, "drop-oldest").prompt_tokens


def test_the_table_has_a_line_per_strategy_and_budget(cells):
    lines = table(rows(cells)).splitlines()
    assert len(lines) == 2 + 2 + 4 * 3
    assert lines[0].split() == [
        "strategy", "budget", "kept", "early", "middle", "recent", "stale", "tok/req", "prefix",
        "cost", "$",
    ]  # fmt: skip


def test_the_report_writes_json_a_table_and_two_svg_plots(cells, tmp_path):
    paths = write(str(tmp_path), cells, {"seed": 0})
    assert sorted(p.rsplit("/", 1)[-1] for p in paths) == [
        "facts-by-depth.svg",
        "facts-vs-tokens.svg",
        "results.json",
        "table.txt",
    ]
    for svg in ("facts-by-depth.svg", "facts-vs-tokens.svg"):
        document = xml.dom.minidom.parse(str(tmp_path / svg))
        assert document.documentElement.tagName == "svg"
    results = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert results["format"] == "rawchat.eval-memory/1" and len(results["cells"]) == len(cells)


# -- scoring ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "candidate, gold, stale, verdict",
    [
        ("Your locker code is ab-123.", "AB123", "", "CORRECT"),
        ("It is Porto.", "Lyon", "Porto", "STALE"),
        ("It was Porto, now Lyon.", "Lyon", "Porto", "CORRECT"),
        ("I don't know.", "Lyon", "Porto", "ABSTAIN"),
        ("", "Lyon", "", "ABSTAIN"),
        ("Paris.", "Lyon", "Porto", "WRONG"),
        ("I don’t know that.", "", "", "CORRECT"),
        ("It is 1234.", "", "", "WRONG"),
        ("我不知道。", "", "", "CORRECT"),
        ("在南湖仓库。", "南湖", "", "CORRECT"),
    ],
)
def test_exact_match_keeps_stale_apart_from_wrong_and_abstained(candidate, gold, stale, verdict):
    assert score(candidate, gold, stale) == verdict


# -- tier B against the simulator ---------------------------------------------------------------


@pytest.fixture
def client(sim):
    return rawchat.Client(base_url=sim.base_url, api_key=KEY)


def test_tier_b_with_the_oracle_reader_finds_what_tier_a_found_kept(client, tmp_path):
    dialogue = generate(0, 40, "en")
    path = str(tmp_path / "run.jsonl")
    run = run_live(
        client, [dialogue], [DropOldest(), Relevant()], [0.25], model="gpt-4o-mini",
        path=path, oracle=True,
    )  # fmt: skip
    verdicts = {(r["strategy"], r["id"]): r["verdict"] for r in run.rows}
    assert len(verdicts) == 2 * len(dialogue.facts)
    assert all(verdicts[("relevant", f.id)] == "CORRECT" for f in dialogue.facts)
    assert all(verdicts[("drop-oldest", f.id)] == "CORRECT" for f in dialogue.facts if not f.answer)
    assert any(v == "ABSTAIN" for (s, _), v in verdicts.items() if s == "drop-oldest")
    assert not run.stopped and run.tokens > 0


def test_tier_b_resumes_where_it_stopped(client, sim, tmp_path):
    dialogue = generate(0, 40, "en")
    path = str(tmp_path / "run.jsonl")
    before = sim.request_count
    first = run_live(client, [dialogue], [DropOldest()], [0.25], model="gpt-4o-mini", path=path)
    asked = sim.request_count - before
    again = run_live(
        client, [dialogue], [DropOldest(), KeepFirstAndRecent()], [0.25], model="gpt-4o-mini",
        path=path,
    )  # fmt: skip
    assert again.rows[: len(first.rows)] == first.rows
    assert {r["strategy"] for r in again.rows} == {"drop-oldest", "keep-first-and-recent"}
    with open(path, encoding="utf-8") as saved:
        header = json.loads(saved.readline())
    assert header["type"] == "run" and header["judge_version"] == "rawchat-judge/1"
    # One cell's requests again (the new one, the same size), not two.
    assert sim.request_count - before == 2 * asked


def test_tier_b_starts_no_cell_once_its_token_budget_is_spent(client, tmp_path):
    run = run_live(
        client, [generate(0, 40, "en")], [DropOldest(), Summarize()], [0.25, 0.5],
        model="gpt-4o-mini", path=str(tmp_path / "run.jsonl"), max_tokens=1,
    )  # fmt: skip
    assert run.stopped and {r["cell"] for r in run.rows} == {"en-0-40/drop-oldest/0.25"}


def test_the_judge_votes_three_times_and_agrees_with_exact_match_on_the_simulator(client, tmp_path):
    run = run_live(
        client, [generate(0, 40, "en")], [DropOldest()], [0.25], model="gpt-4o-mini",
        path=str(tmp_path / "run.jsonl"), oracle=True, judge_model="rawchat-sim",
    )  # fmt: skip
    assert all(len(r["judge_votes"]) == 3 for r in run.rows)
    assert agreement(run.rows) == 1.0


def test_a_judge_answer_that_is_not_a_verdict_counts_as_wrong(client):
    judgement = judge(client, "rawchat-sim", "Where?", "Lyon", "Lyon")  # no judge metadata
    assert judgement.verdict == "WRONG" and judgement.votes == ("WRONG",) * 3
    assert judgement.reasons[0].startswith("not a verdict: Hello from the rawchat simulator")


def test_the_judge_must_not_be_the_model_answering(client, tmp_path):
    with pytest.raises(ValueError, match="another model"):
        run_live(
            client, [generate(0, 40, "en")], [DropOldest()], [0.25], model="gpt-4o-mini",
            path=str(tmp_path / "x.jsonl"), judge_model="gpt-4o-mini",
        )  # fmt: skip
