"""Fitting a long conversation into its budget: time per request as history grows.

Builds histories of 1,000 to 100,000 turns and times how long the
conversation takes to decide what to send (no network: the request itself
is not sent). Linear trimming shows as a constant time per turn.

    python benchmarks/trimming.py
"""

from __future__ import annotations

import time

from rawchat import Conversation
from rawchat.conversation.conversation import _Thread
from rawchat.protocol.tokens import message_tokens


def main() -> None:
    print(f"{'turns':>8}{'ms to fit':>12}{'us per turn':>13}")
    for turns in (1_000, 10_000, 100_000):
        conv = Conversation(system="Be terse.", context_window=8_000, reserve=1_000)
        messages = []
        for i in range(turns):
            messages.append({"role": "user", "content": f"question {i} about the protocol"})
            messages.append(
                {"role": "assistant", "content": f"answer {i}: it depends on the server"}
            )
        conv._threads["main"] = _Thread(
            messages=messages,
            tokens=[message_tokens(m) for m in messages],
            pinned=[False] * len(messages),
        )
        new = [{"role": "user", "content": "and now?"}]
        started = time.perf_counter()
        sent, _ = conv._prepare(None, "gpt-4o-mini", new, {})  # type: ignore[arg-type]
        took = time.perf_counter() - started
        per_turn = took / turns * 1e6
        print(f"{turns:>8}{took * 1000:>12.1f}{per_turn:>13.2f}   ({len(sent)} messages sent)")


if __name__ == "__main__":
    main()
