"""Fitting a long conversation into its budget: time per request as history grows.

Builds histories of 1,000 to 100,000 turns and times how long it takes to
decide what to send, two ways (no network: the request itself is not sent):

* plan: the pure ``plan_trim()`` of ``rawchat.protocol.trimming`` alone;
* ask: ``Conversation.ask()`` up to the moment it hands the messages to the
  client (checking the history, counting the new message, planning), with a
  stand-in client that stops there.

Linear trimming shows as a constant time per turn.

    python benchmarks/trimming.py
"""

from __future__ import annotations

import time
from typing import Any, Dict, List

from rawchat import Conversation
from rawchat.protocol.tokens import message_tokens
from rawchat.protocol.trimming import budget_for, plan_trim


class _Sent(Exception):
    """Raised by the stand-in client with what it was asked to send."""

    def __init__(self, messages: List[Dict[str, Any]]) -> None:
        super().__init__()
        self.messages = messages


class _StopAtSend:
    """A client that takes the messages and sends nothing."""

    def chat(self, messages: List[Dict[str, Any]], **params: Any) -> None:
        raise _Sent(messages)


def history(turns: int) -> List[Dict[str, Any]]:
    messages = []
    for i in range(turns):
        messages.append({"role": "user", "content": f"question {i} about the protocol"})
        messages.append({"role": "assistant", "content": f"answer {i}: it depends on the server"})
    return messages


def main() -> None:
    print(f"{'turns':>8}{'ms to plan':>12}{'ms to ask':>11}{'us per turn':>13}")
    for turns in (1_000, 10_000, 100_000):
        messages = [*history(turns), {"role": "user", "content": "and now?"}]
        tokens = [message_tokens(m) for m in messages]

        started = time.perf_counter()
        plan = plan_trim(
            messages,
            tokens,
            [False] * len(messages),
            budget=budget_for(8_000, 1_000),
            system="Be terse.",
        )
        planned = time.perf_counter() - started

        conv = Conversation(system="Be terse.", context_window=8_000, reserve=1_000)
        for message in messages[:-1]:
            conv.add(message)
        started = time.perf_counter()
        try:
            conv.ask(_StopAtSend(), "and now?", model="gpt-4o-mini")  # type: ignore[arg-type]
            raise AssertionError("the stand-in client always stops the request")
        except _Sent as caught:
            sent = caught.messages
        asked = time.perf_counter() - started
        assert sent == plan.messages
        per_turn = asked / turns * 1e6
        print(
            f"{turns:>8}{planned * 1000:>12.1f}{asked * 1000:>11.1f}{per_turn:>13.2f}"
            f"   ({len(plan.messages)} messages sent)"
        )


if __name__ == "__main__":
    main()
