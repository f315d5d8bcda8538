"""Measuring what a memory strategy forgets.

Trimming a long conversation costs something: a fact said 50 turns ago,
or its update, may no longer reach the model. This package measures that
cost on seeded synthetic conversations (``synthetic.py``) in two tiers:

* tier A, no model (``survival.py``): each strategy at each budget replays
  the conversation through the real trimming plan, and the probes' answers
  are searched for in what would be sent; seconds, deterministic for a seed;
* tier B, a model answers (``readers.py``): the same conversations through
  ``Conversation`` and a ``Client``, answers scored by normalised exact
  match (stale apart from wrong and abstained) and optionally by a judge
  model; resumable and bounded by a token budget. Against the embedded
  simulator its oracle reader answers from what it was sent.

``report.py`` sums the cells into rows, a text table and JSON;
``svg.py`` draws the two plots. A whole tier A run::

    dialogues = [generate(seed, 60, language) for language in LANGUAGES]
    cells = survival(dialogues)
    print(table(rows(cells)))
    write("eval-memory", cells, {"seed": seed, "turns": 60})
"""

from __future__ import annotations

from .readers import (
    JUDGE_PROMPT,
    JUDGE_VERSION,
    Judgement,
    LiveRun,
    agreement,
    judge,
    run_live,
    score,
)
from .report import table, to_json, write
from .survival import (
    BOUNDS,
    SHARES,
    Cell,
    ProbeOutcome,
    Row,
    history_tokens,
    replay,
    rows,
    survival,
)
from .synthetic import DEPTHS, KINDS, LANGUAGES, Dialogue, Fact, generate

__all__ = [
    "BOUNDS",
    "DEPTHS",
    "JUDGE_PROMPT",
    "JUDGE_VERSION",
    "KINDS",
    "LANGUAGES",
    "SHARES",
    "Cell",
    "Dialogue",
    "Fact",
    "Judgement",
    "LiveRun",
    "ProbeOutcome",
    "Row",
    "agreement",
    "generate",
    "history_tokens",
    "judge",
    "replay",
    "rows",
    "run_live",
    "score",
    "survival",
    "table",
    "to_json",
    "write",
]
