"""Tier B: a model reads what a strategy sent and answers the probes.

``run_live()`` replays each ``Dialogue`` through a real ``Conversation``
(the same trimming, the summary written by the model itself), asks every
probe from a copy of the final thread (probes do not feed each other),
and scores each answer by normalised exact match (``score()``): ``CORRECT``,
``STALE`` (the old value of an updated fact, kept apart from) ``WRONG``,
and ``ABSTAIN`` ("I don't know" where an answer was given; for a probe whose
answer was never given, abstaining is ``CORRECT``).

``judge()`` grades free-form answers with a model: a fixed, versioned
prompt (``JUDGE_VERSION``, ``JUDGE_PROMPT``) at temperature 0, three votes,
the majority wins. Runs append one JSON line per probe to a file and skip
the cells (dialogue, strategy, budget) already there, so an interrupted run
resumes; ``max_tokens`` bounds what a run may spend.

Against the embedded simulator, ``oracle=True`` passes each probe's answer
in the request's ``metadata`` so the simulator's oracle reader answers
only from what it was sent (``rawchat.simulator.model``); never set it for
a real endpoint.
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

from ...protocol.completion import Completion
from ...protocol.trimming import Strategy
from ..conversation import Conversation
from .survival import history_tokens, request_points
from .synthetic import Dialogue, Fact

__all__ = [
    "JUDGE_PROMPT",
    "JUDGE_VERSION",
    "VERDICTS",
    "Judgement",
    "LiveRun",
    "agreement",
    "judge",
    "normalise",
    "run_live",
    "score",
]

VERDICTS = ("CORRECT", "WRONG", "STALE", "ABSTAIN")
JUDGE_VERSION = "rawchat-judge/1"
JUDGE_PROMPT = (
    "You grade one answer to a question about an earlier conversation. You get JSON "
    'with "question", "gold" (the right answer; empty if the detail was never given), '
    '"stale" (an outdated value, or empty) and "candidate" (the answer to grade). '
    "Reply with JSON only: "
    '{"verdict": "CORRECT" | "WRONG" | "STALE" | "ABSTAIN", "reason": "<one sentence>"}. '
    "CORRECT: the candidate gives the gold answer (other wording is fine), or gold is "
    "empty and the candidate says it does not know. STALE: it gives the outdated value "
    "instead. ABSTAIN: it declines or says it does not know while gold is not empty. "
    "WRONG: anything else."
)

_ABSTAIN = (
    "idontknow",
    "dontknow",
    "donotknow",
    "notsure",
    "noinformation",
    "notmentioned",
    "nevermentioned",
    "youdidnttellme",
    "youhaventtoldme",
    "unknown",
    "不知道",
    "没有提到",
    "没有告诉",
    "无法确定",
    "不清楚",
)


def normalise(text: str) -> str:
    """``text`` compared as a person would: NFKC, case folded, letters and digits only."""
    folded = unicodedata.normalize("NFKC", text).casefold().replace("’", "'")
    return "".join(c for c in folded if c.isalnum())


def score(candidate: str, gold: str, stale: str = "") -> str:
    """The verdict by normalised exact match: the gold answer's text found in the
    candidate (``CORRECT``), else the stale value's (``STALE``), else a refusal
    (``ABSTAIN``, or ``CORRECT`` when there was nothing to know), else ``WRONG``."""
    said = normalise(candidate)
    abstained = any(marker in said for marker in _ABSTAIN)
    if not gold:
        return "CORRECT" if abstained else "WRONG"
    if normalise(gold) in said:
        return "CORRECT"
    if stale and normalise(stale) in said:
        return "STALE"
    return "ABSTAIN" if abstained or not said else "WRONG"


@dataclass(frozen=True)
class Judgement:
    """The judge's majority verdict, and each vote with its reason."""

    verdict: str
    votes: Tuple[str, ...]
    reasons: Tuple[str, ...]


def judge(
    client: Any,
    model: str,
    question: str,
    gold: str,
    candidate: str,
    stale: str = "",
    *,
    votes: int = 3,
    metadata: Optional[Mapping[str, str]] = None,
) -> Judgement:
    """Ask ``model`` ``votes`` times (temperature 0) and take the majority;
    with no majority, the first vote. An answer that is not the JSON asked
    for counts as a ``WRONG`` vote, its text as the reason."""
    item = {"question": question, "gold": gold, "stale": stale, "candidate": candidate}
    messages = [
        {"role": "system", "content": JUDGE_PROMPT},
        {"role": "user", "content": json.dumps(item, ensure_ascii=False)},
    ]
    params: Dict[str, Any] = {"temperature": 0, "max_tokens": 200}
    if metadata:
        params["metadata"] = dict(metadata)
    cast: List[Tuple[str, str]] = []
    for _ in range(votes):
        done = client.chat(messages, model=model, **params)
        cast.append(_verdict(done.content or ""))
    tally = Counter(v for v, _ in cast)
    top, n = tally.most_common(1)[0]
    verdict = top if n * 2 > len(cast) else cast[0][0]
    return Judgement(verdict, tuple(v for v, _ in cast), tuple(r for _, r in cast))


def _verdict(text: str) -> Tuple[str, str]:
    match = re.search(r"\{.*\}", text, re.S)
    try:
        data = json.loads(match.group(0)) if match else None
        verdict = str(data["verdict"]).strip().upper()
        if verdict in VERDICTS:
            return verdict, str(data.get("reason", ""))
    except (ValueError, KeyError, TypeError):
        pass
    return "WRONG", f"not a verdict: {text[:200]}"


def agreement(rows: Sequence[Mapping[str, Any]]) -> Optional[float]:
    """The share of rows where the judge agrees with exact match (``None``: no judged rows)."""
    judged = [r for r in rows if r.get("judge")]
    if not judged:
        return None
    return sum(1 for r in judged if r["judge"] == r["verdict"]) / len(judged)


class _Metered:
    """A client whose ``chat()`` calls add up the usage they report."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.settings = client.settings
        self.prompt_tokens = 0
        self.completion_tokens = 0

    def chat(self, messages: Any, **params: Any) -> Completion:
        done = self.client.chat(messages, **params)
        if done.usage is not None:
            self.prompt_tokens += done.usage.prompt_tokens
            self.completion_tokens += done.usage.completion_tokens
        return done


@dataclass(frozen=True)
class LiveRun:
    """A run's rows (one per probe, earlier runs' included) and whether its
    token budget stopped it before every cell was done."""

    rows: Tuple[Dict[str, Any], ...]
    tokens: int
    stopped: bool


def run_live(
    client: Any,
    dialogues: Sequence[Dialogue],
    strategies: Sequence[Strategy],
    shares: Sequence[float],
    *,
    model: str,
    path: str,
    max_tokens: int = 2_000_000,
    reply_tokens: int = 100,
    oracle: bool = False,
    judge_model: Optional[str] = None,
) -> LiveRun:
    """Replay every dialogue under every strategy at every budget share with
    ``client``, ask the probes, score them, and append the rows to ``path``
    (JSON lines). Cells already in ``path`` are skipped; no new cell starts
    once ``max_tokens`` (prompt and completion, as the server reported them)
    are spent. ``judge_model`` (not ``model``) also grades each answer."""
    if judge_model is not None and judge_model == model:
        raise ValueError("the judge must be another model than the one answering")
    rows = list(_read(path))
    done = {r["cell"] for r in rows if r.get("type") == "probe"}
    if not rows:
        header = {
            "type": "run",
            "model": model,
            "judge_model": judge_model,
            "judge_version": JUDGE_VERSION,
            "judge_prompt": JUDGE_PROMPT,
        }
        _append(path, [header])
    metered = _Metered(client)
    stopped = False
    for dialogue in dialogues:
        for strategy in strategies:
            for share in shares:
                cell = f"{dialogue.name}/{strategy.name}/{share:g}"
                if cell in done:
                    continue
                if metered.prompt_tokens + metered.completion_tokens >= max_tokens:
                    stopped = True
                    continue
                budget = int(history_tokens(dialogue) * share)
                new = _cell_rows(
                    metered, dialogue, strategy, budget, model, reply_tokens, oracle, judge_model
                )
                for row in new:
                    row.update(cell=cell, strategy=strategy.name, share=share, budget=budget)
                _append(path, new)
                rows.extend(new)
    spent = metered.prompt_tokens + metered.completion_tokens
    return LiveRun(tuple(r for r in rows if r.get("type") == "probe"), spent, stopped)


def _cell_rows(
    client: _Metered,
    dialogue: Dialogue,
    strategy: Strategy,
    budget: int,
    model: str,
    reply_tokens: int,
    oracle: bool,
    judge_model: Optional[str],
) -> List[Dict[str, Any]]:
    conv = Conversation(dialogue.system, budget + reply_tokens, reply_tokens, strategy, model=model)
    before = client.prompt_tokens + client.completion_tokens
    for turn in dialogue.turns:
        asked = 0
        for point in request_points(turn):
            for message in turn[asked:point]:
                conv.add(message)  # a scripted tool call: the model is not asked for it
            said = turn[point]
            if said.get("role") == "tool":
                results = {said["tool_call_id"]: said["content"]}
                conv.ask(client, tool_results=results, model=model, max_tokens=reply_tokens)
            else:
                conv.ask(client, said["content"], model=model, max_tokens=reply_tokens)
            asked = point + 2  # the model's own answer stands in for the scripted one
    saved = conv.to_dict()
    rows = []
    for fact in dialogue.facts:
        reader = Conversation.from_dict(saved, strategy=strategy)
        params: Dict[str, Any] = {"max_tokens": reply_tokens}
        if oracle:
            params["metadata"] = {
                "rawchat_probe_answer": fact.answer,
                "rawchat_probe_stale": fact.stale,
            }
        answer = reader.ask(client, fact.question, model=model, **params).content or ""
        rows.append(
            _row(dialogue, fact, answer, reader.last_trim.tokens_sent if reader.last_trim else 0)
        )
        if judge_model is not None:
            verdict = judge(
                client, judge_model, fact.question, fact.answer, answer, fact.stale,
                metadata={"rawchat_judge": JUDGE_VERSION} if oracle else None,
            )  # fmt: skip
            rows[-1].update(
                judge=verdict.verdict,
                judge_votes=list(verdict.votes),
                judge_reasons=list(verdict.reasons),
            )
    spent = client.prompt_tokens + client.completion_tokens - before
    for row in rows:
        row["cell_tokens"] = spent
    return rows


def _row(dialogue: Dialogue, fact: Fact, answer: str, prompt_tokens: int) -> Dict[str, Any]:
    return {
        "type": "probe",
        "dialogue": dialogue.name,
        **{
            k: v
            for k, v in asdict(fact).items()
            if k in ("id", "kind", "depth", "question", "answer", "stale")
        },
        "reply": answer,
        "verdict": score(answer, fact.answer, fact.stale),
        "prompt_tokens": prompt_tokens,
    }


def _read(path: str) -> Iterator[Dict[str, Any]]:
    if not os.path.exists(path):
        return
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            line = line.strip()
            if line:
                try:
                    yield json.loads(line)
                except ValueError:
                    continue  # a line cut short by an interrupted run: its cell is redone


def _append(path: str, rows: Sequence[Mapping[str, Any]]) -> None:
    with open(path, "a", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
