"""Tier A of the memory evaluation: what each trimming strategy keeps, per budget.

Replays seeded synthetic conversations (English and Chinese) through the
real trimming plan for every strategy at 25 %, 50 % and 75 % of the
history's tokens, plus the full-history and no-history bounds, and prints
the table; ``--out DIR`` also writes results.json and the two SVG plots.
Figures are reported, not asserted.

    python benchmarks/memory_eval.py [--seeds 0,1,2] [--turns 60] [--out DIR]
"""

from __future__ import annotations

import argparse
import time

from rawchat.conversation.evaluation import LANGUAGES, generate, rows, survival, table, write


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    parser.add_argument("--turns", type=int, default=60)
    parser.add_argument("--out", default="", help="write results.json and the plots here")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    dialogues = [generate(s, args.turns, lang) for s in seeds for lang in LANGUAGES]
    started = time.perf_counter()
    cells = survival(dialogues)
    took = time.perf_counter() - started
    print(f"{len(dialogues)} conversations of {args.turns} turns (seeds {args.seeds}, en+zh)")
    print(table(rows(cells)))
    print(f"\n{len(cells)} replays in {took:.1f} s")
    if args.out:
        for path in write(args.out, cells, {"seeds": seeds, "turns": args.turns}):
            print("wrote", path)


if __name__ == "__main__":
    main()
