"""The talk loop: speech overlapped with the streaming answer, against the same turn done serially.

Both pipelines take ``--turns`` turns each, alternately (so a busy moment
of the machine hits both), every turn in a conversation of its own kind,
against the simulator paced like a real service: ``--chunk-interval``
seconds between streamed pieces (chat words, and 200 ms pieces of speech
audio), and a wait before the first byte of each answer (``--stt-delay``
for the transcription, ``--chat-delay`` for the chat's first token,
``--tts-delay`` for each speech request), sent as ``delay=S*`` faults. The
figures: the reply latency (from the end of the user's audio to the
reply's first audio byte) and the whole turn (to its last audio byte),
median and worst, per pipeline.

    python benchmarks/talk_latency.py [--turns 10] [--chunk-interval 0.03]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from typing import Dict, List

import rawchat
from rawchat.conversation.talk import TalkTurn, talk
from rawchat.simulator import Simulator

QUESTION = "Tell me about server-sent events. Keep it short. Why do they matter for chat?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=10, help="turns per pipeline (10)")
    parser.add_argument("--chunk-interval", type=float, default=0.03, help="seconds (0.03)")
    parser.add_argument("--stt-delay", type=float, default=0.3, help="seconds (0.3)")
    parser.add_argument("--chat-delay", type=float, default=0.3, help="seconds (0.3)")
    parser.add_argument("--tts-delay", type=float, default=0.25, help="seconds (0.25)")
    args = parser.parse_args()

    def waits(seconds: float) -> Dict[str, Dict[str, str]]:
        return {"extra_headers": {"X-Rawchat-Fault": f"delay={seconds}*"}}

    options = {
        "transcribe_params": waits(args.stt_delay),
        "speech_params": waits(args.tts_delay),
        **waits(args.chat_delay),
    }
    turns: Dict[str, List[TalkTurn]] = {"overlapped": [], "naive": []}
    with Simulator(chunk_interval=args.chunk_interval) as sim, rawchat.Client(
        "sk-bench", sim.base_url, model="gpt-4o-mini"
    ) as client:
        with client.speak(QUESTION, model="tts-1", voice="alloy", response_format="wav") as s:
            question = b"".join(s.iter_bytes())
        conversations = {name: rawchat.Conversation() for name in turns}
        started = time.perf_counter()
        for _ in range(args.turns):
            for name, kept in turns.items():
                turn = talk(
                    client, conversations[name], question, overlap=name == "overlapped", **options
                )
                kept.append(turn)
        elapsed = time.perf_counter() - started

    print(f"python {platform.python_version()} on {platform.platform()}, {os.cpu_count()} CPUs")
    print(
        f"{args.turns} turns each; chunk interval {args.chunk_interval * 1000:g} ms; waits "
        f"before the first byte: transcription {args.stt_delay * 1000:g} ms, chat "
        f"{args.chat_delay * 1000:g} ms, speech {args.tts_delay * 1000:g} ms"
    )
    sentences = statistics.median(len(t.sentences) for t in turns["overlapped"])
    print(f"each answer: {len(turns['naive'][0].answer)} characters, {sentences:g} sentences\n")
    head = ("pipeline", "reply p50", "reply max", "turn p50", "turn max", "turns total")
    print("  ".join(f"{h:>11}" for h in head))
    for name, kept in turns.items():
        reply = [t.reply_latency_ms or 0.0 for t in kept]
        whole = [t.total_ms for t in kept]
        cells = (
            statistics.median(reply),
            max(reply),
            statistics.median(whole),
            max(whole),
            sum(whole),
        )
        print(f"{name:>11}  " + "  ".join(f"{c:>8,.0f} ms" for c in cells))
    print(f"\nwall time of the whole run: {elapsed:.1f} s")


if __name__ == "__main__":
    main()
