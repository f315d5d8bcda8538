"""``rawchat demo``: the protocol in four scenes, against the simulator.

1. the raw request, as HTTP text;
2. a streamed answer, delta by delta;
3. a 429 and the backoff that rides it out;
4. a stream cut short, caught instead of passed off as the answer.
"""

from __future__ import annotations

import argparse
import time
from typing import IO

from ..client.client import Client
from ..client.clock import Clock
from ..errors import IncompleteStreamError
from ..protocol.request import build_chat_request
from ..simulator import Simulator
from .console import Style, typewrite

__all__ = ["run"]

KEY = "sk-rawchat-demo-0000"
MODEL = "gpt-4o-mini"


def run(args: argparse.Namespace, out: IO[str]) -> int:
    style = Style(out, args.color)

    def scene(title: str, text: str) -> None:
        out.write(f"\n{style.bold(title)}\n{style.dim(text)}\n\n")
        out.flush()

    with Simulator(chunk_interval=0.03) as sim:

        def noisy_sleep(seconds: float) -> None:
            out.write(style.warn(f"  ... the server said wait: sleeping {seconds:.2f} s\n"))
            out.flush()
            time.sleep(seconds)

        client = Client(KEY, sim.base_url, clock=Clock(sleep=noisy_sleep), trace=args.trace)
        messages = [{"role": "user", "content": "What is a server-sent event?"}]
        out.write(f"rawchat demo: a simulator is listening on {sim.base_url}\n")

        scene("1. The raw request", "A chat request is one POST with a JSON body and a Bearer key:")
        request = build_chat_request(client.settings, messages, model=MODEL)
        out.write(request.to_http())

        scene("2. A streamed answer", 'With "stream": true the answer arrives as SSE events, '
              "each carrying a delta:")  # fmt: skip
        done = typewrite(client, messages, {"model": MODEL}, out)
        usage = done.usage
        if usage is not None:
            out.write(style.dim(f"(usage chunk: {usage.prompt_tokens} prompt + "
                                f"{usage.completion_tokens} completion tokens)\n"))  # fmt: skip

        scene("3. A 429 and its backoff", "The simulator answers 429 twice (X-Rawchat-Fault: "
              "429=0.5*2); the client waits as told and tries again:")  # fmt: skip
        done = client.chat(messages, model=MODEL, extra_headers={"X-Rawchat-Fault": "429=0.5*2"})
        out.write(f"answer after {done.retries_taken} retries: {done.content[:60]}...\n")

        scene("4. A truncated stream, caught", "The simulator closes the stream after 6 events, "
              "with no finish_reason and no [DONE] (X-Rawchat-Fault: truncate=6):")  # fmt: skip
        try:
            headers = {"X-Rawchat-Fault": "truncate=6"}
            with client.stream(messages, model=MODEL, extra_headers=headers) as stream:
                for text in stream.text():
                    out.write(text)
                    out.flush()
        except IncompleteStreamError as exc:
            out.write("\n" + style.bad(f"IncompleteStreamError: {exc.message}") + "\n")
            out.write(f"the partial text is kept on the error: {exc.partial.content!r}\n")
        client.close()

    out.write(
        "\nNext: `rawchat --trace ask hi` shows these bytes for real; "
        "`rawchat serve --fault ...` misbehaves for any client.\n"
    )
    return 0
