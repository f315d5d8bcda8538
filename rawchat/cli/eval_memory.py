"""``rawchat eval-memory``: what each memory strategy forgets, measured.

Runs the memory evaluation (``rawchat.conversation.evaluation``) on the
seeded synthetic conversations of one seed, in English and Chinese:

* tier A, always: each strategy at each budget replays the conversations
  through the real trimming plan; the table says which planted facts were
  still in what would be sent, stale values, prompt tokens, prefix
  stability and cost (no model, about a second);
* a reader over HTTP, by default: the same conversations through
  ``Conversation`` against the embedded simulator, whose oracle reader
  answers each probe only from what it was sent (offline, seconds);
* with ``--live``, a real model is the reader instead (the endpoint the
  global options configure), answers scored by exact match and, with
  ``--judge MODEL``, by a judge model; resumable (the rows are appended to
  ``live.jsonl`` in ``--out``) and bounded by ``--token-budget``.

Files written to ``--out``: ``results.json`` and ``table.txt`` (tier A),
``facts-vs-tokens.svg`` and ``facts-by-depth.svg``, and the reader's rows
and table (``oracle.jsonl``/``oracle.txt``, or ``live.jsonl``/``live.txt``).

A progress bar is drawn on stderr only when stderr is a terminal, so
piped or captured output stays as it is.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from typing import IO, Any, Callable, Dict, List, Optional, Sequence, Tuple

from ..client.client import Client
from ..errors import ConfigError
from ..protocol.trimming import STRATEGIES
from ..storage import atomic_write

__all__ = ["Plan", "plan_from", "reader_table", "run"]

#: What the embedded simulator is asked with offline (it accepts any key).
OFFLINE_KEY = "sk-rawchat-eval-0000"
OFFLINE_MODEL = "gpt-4o-mini"


@dataclass(frozen=True)
class Plan:
    """The command's options, checked: strategy names, budget shares, the conversations' shape."""

    strategies: Tuple[str, ...]
    shares: Tuple[float, ...]
    turns: int
    seed: int
    out: str


def plan_from(args: argparse.Namespace) -> Plan:
    """The options as a ``Plan``, or a ``ConfigError`` that says what is wrong."""
    strategies = tuple(dict.fromkeys(_items(args.strategies))) or tuple(STRATEGIES)
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown:
        raise ConfigError(
            f"unknown strategy {unknown[0]!r}",
            hint=f"the strategies are {', '.join(STRATEGIES)}",
        )
    shares = []
    for item in _items(args.budgets):
        try:
            percent = int(item)
        except ValueError:
            percent = 0
        if not 1 <= percent <= 100:
            raise ConfigError(
                f"--budgets {item!r}: a budget is a percentage of the whole history, 1 to 100",
                hint="for example --budgets 25,50,75",
            )
        shares.append(percent / 100)
    if not shares:
        raise ConfigError("--budgets is empty", hint="for example --budgets 25,50,75")
    from ..conversation.evaluation import generate

    try:
        generate(args.seed, args.turns)
    except ValueError as exc:  # the generator's own rule for the shortest conversation
        raise ConfigError(f"--turns {args.turns}: {exc}") from exc
    if args.no_reader and (args.live or args.judge):
        raise ConfigError("--no-reader measures what is sent only: no --live or --judge with it")
    return Plan(strategies, tuple(dict.fromkeys(shares)), args.turns, args.seed, args.out)


def _items(text: str) -> List[str]:
    return [item.strip() for item in (text or "").split(",") if item.strip()]


class Progress:
    """A one-line bar on a terminal (redrawn with CR); nothing anywhere else."""

    def __init__(self, total: int, out: IO[str]) -> None:
        self.total, self.done, self.out = total, 0, out
        self.shown = hasattr(out, "isatty") and out.isatty()

    def step(self, label: str) -> None:
        self.done += 1
        if self.shown:
            filled = 30 * self.done // max(self.total, 1)
            bar = "#" * filled + "." * (30 - filled)
            self.out.write(f"\r[{bar}] {self.done}/{self.total} {label[:40]:<40}")
            self.out.flush()

    def close(self) -> None:
        if self.shown:
            self.out.write("\r" + " " * 80 + "\r")
            self.out.flush()


def run(
    args: argparse.Namespace,
    live_client: Callable[[], Client],
    out: IO[str] = sys.stdout,
    err: IO[str] = sys.stderr,
) -> int:
    """The command: tier A, then the reader (the simulator's oracle, or ``--live``)."""
    from ..conversation.evaluation import LANGUAGES, generate, rows, survival, table, write

    plan = plan_from(args)
    dialogues = [generate(plan.seed, plan.turns, language) for language in LANGUAGES]
    strategies = [STRATEGIES[name]() for name in plan.strategies]
    tier_a = len(dialogues) * (len(strategies) * len(plan.shares) + 2)
    reader = 0 if args.no_reader else len(dialogues) * len(strategies) * len(plan.shares)
    progress = Progress(tier_a + reader, err)
    print(
        f"rawchat eval-memory: seed {plan.seed}, {len(dialogues)} conversations of "
        f"{plan.turns} turns ({'+'.join(LANGUAGES)}), budgets "
        f"{', '.join(f'{s:.0%}' for s in plan.shares)} of the whole history",
        file=out,
    )
    try:
        cells = survival(
            dialogues, strategies, plan.shares,
            progress=lambda done, total: progress.step("tier A: what is sent"),
        )  # fmt: skip
        settings: Dict[str, Any] = {
            "seed": plan.seed,
            "turns": plan.turns,
            "languages": list(LANGUAGES),
            "strategies": list(plan.strategies),
            "budgets": list(plan.shares),
        }
        paths = write(plan.out, cells, settings, share=min(plan.shares))
        lines = [
            "",
            "What is sent: the planted facts found in each request (no model reads it)",
            table(rows(cells)),
        ]
        if not args.no_reader:
            lines += ["", *_reader(args, plan, dialogues, strategies, live_client, progress, err)]
            name = "live" if args.live else "oracle"
            paths += [
                os.path.join(plan.out, f"{name}.jsonl"),
                os.path.join(plan.out, f"{name}.txt"),
            ]
    finally:
        progress.close()
    print("\n".join(lines), file=out)
    print("", file=out)
    for path in paths:
        print("wrote", path, file=out)
    return 0


def _reader(
    args: argparse.Namespace,
    plan: Plan,
    dialogues: Sequence[Any],
    strategies: Sequence[Any],
    live_client: Callable[[], Client],
    progress: Progress,
    err: IO[str],
) -> List[str]:
    """Tier B over HTTP: the conversations through ``Conversation``, the probes
    answered by a reader; its table's lines (also written to ``<name>.txt``)."""
    from ..conversation.evaluation import JUDGE_VERSION, agreement, run_live

    name = "live" if args.live else "oracle"
    path = os.path.join(plan.out, f"{name}.jsonl")
    if args.live:
        client = live_client()
        model = args.model or client.settings.model
        if not model:
            raise ConfigError("no model to ask", hint="pass --model NAME or set RAWCHAT_MODEL")
        _check_resumable(path, model, args.judge)
        title = f"What {model} answers (exact match"
        title += f"; judged by {args.judge}, {JUDGE_VERSION})" if args.judge else ")"
    else:
        from ..simulator import Simulator

        simulator = Simulator().start()
        client = Client(OFFLINE_KEY, simulator.base_url, trace=args.trace)
        model = OFFLINE_MODEL
        if os.path.exists(path):
            os.remove(path)  # offline runs are cheap and redone whole
        title = "What a reader answers: the simulator's oracle reader, from what it was sent"
    if args.judge is not None and args.judge == model:
        raise ConfigError(
            f"--judge {args.judge} is the model answering",
            hint="a judge grades another model's answers: pick a different one",
        )
    wanted: List[str] = []
    spent, stopped = 0, False
    try:
        for dialogue in dialogues:
            for strategy in strategies:
                for share in plan.shares:
                    cell = f"{dialogue.name}/{strategy.name}/{share:g}"
                    wanted.append(cell)
                    if spent >= args.token_budget:
                        stopped = True
                    else:
                        done = run_live(
                            client, [dialogue], [strategy], [share], model=model, path=path,
                            max_tokens=args.token_budget - spent, oracle=not args.live,
                            judge_model=args.judge,
                        )  # fmt: skip
                        spent += done.tokens
                    progress.step(f"reader: {cell}")
    finally:
        client.close()
        if not args.live:
            simulator.stop()
    with open(path, encoding="utf-8") as saved:
        found = [json.loads(line) for line in saved if line.strip()]
    probes = [r for r in found if r.get("type") == "probe" and r.get("cell") in wanted]
    lines = [title, reader_table(probes, plan.strategies, plan.shares)]
    judged = agreement(probes)
    if judged is not None:
        lines.append(f"judge and exact match agree on {judged:.0%} of the answers")
    if stopped:
        print(
            f"rawchat: the token budget ({args.token_budget:,}) is spent; "
            f"{len({r['cell'] for r in probes})} of {len(wanted)} cells are done: "
            "rerun the same command to resume",
            file=err,
        )
    atomic_write(os.path.join(plan.out, f"{name}.txt"), "\n".join(lines) + "\n")
    return lines


def _check_resumable(path: str, model: str, judge: Optional[str]) -> None:
    """A live run resumes only the run its file holds: the same model and judge."""
    if not os.path.exists(path):
        return
    with open(path, encoding="utf-8") as saved:
        first = saved.readline()
    try:
        header = json.loads(first)
    except ValueError:
        return
    if header.get("model") != model or header.get("judge_model") != judge:
        raise ConfigError(
            f"{path} holds a run of {header.get('model')} (judge {header.get('judge_model')}), "
            f"not {model} (judge {judge})",
            hint="use another --out, or delete the file to start over",
        )


_VERDICTS = ("CORRECT", "STALE", "WRONG", "ABSTAIN")


def reader_table(
    probes: Sequence[Dict[str, Any]], strategies: Sequence[str], shares: Sequence[float]
) -> str:
    """The reader's verdicts per strategy and budget: over the planted facts,
    correct (of those asked), stale, wrong, abstained; ``unknown``: the
    probes for details never given answered "I don't know"; prompt tokens
    per probe; the judge's verdicts that agree with exact match."""
    head = (
        f"{'strategy':<22} {'budget':>6} {'correct':>9} {'stale':>5} {'wrong':>5} "
        f"{'abstain':>7} {'unknown':>7} {'tok/probe':>9} {'judge':>6}"
    )
    lines = [head, "-" * len(head)]
    for strategy in strategies:
        for share in shares:
            group = [r for r in probes if r["strategy"] == strategy and r["share"] == share]
            if not group:
                continue
            planted = [r for r in group if r["answer"]]
            absent = [r for r in group if not r["answer"]]
            count = {v: sum(r["verdict"] == v for r in planted) for v in _VERDICTS}
            unknown = sum(r["verdict"] == "CORRECT" for r in absent)
            tokens = sum(r["prompt_tokens"] for r in group) / len(group)
            judged = [r for r in group if r.get("judge")]
            agree = (
                f"{sum(r['judge'] == r['verdict'] for r in judged) / len(judged):.0%}"
                if judged
                else "-"
            )
            correct = f"{count['CORRECT']}/{len(planted)}"
            lines.append(
                f"{strategy:<22} {share:>6.0%} {correct:>9} {count['STALE']:>5} "
                f"{count['WRONG']:>5} {count['ABSTAIN']:>7} {f'{unknown}/{len(absent)}':>7} "
                f"{tokens:>9.0f} {agree:>6}"
            )
    return "\n".join(lines)
