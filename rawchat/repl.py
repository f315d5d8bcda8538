"""``rawchat chat``: a multi-turn conversation in the terminal.

The model keeps no state between requests: every turn resends the whole
history (https://platform.openai.com/docs/guides/conversation-state). The
REPL keeps that history, commits a turn only when its answer arrived whole,
and leaves it untouched when an answer fails or is cancelled with Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import IO, Any, Callable, Dict, List, Optional

from .cli import EXIT_OK, request_params
from .client import Client
from .console import Style, print_error, typewrite
from .errors import APIError, InvalidRequestError
from .request import validate_messages
from .storage import atomic_write
from .trace import MultiTrace, TextTrace, Trace

__all__ = ["Repl"]

HELP = """\
/reset            forget the conversation (the system prompt stays)
/system [TEXT]    show or set the system prompt
/save FILE        save the conversation as JSON
/load FILE        load a saved conversation
/usage            tokens used in this session
/trace on|off     show every exchange on the wire
/exit             quit (also Ctrl-D); Ctrl-C cancels the current answer"""


class Repl:
    """The read-eval-print loop; ``input`` and the streams are injectable for tests."""

    def __init__(
        self,
        client: Client,
        args: argparse.Namespace,
        *,
        input: Callable[[str], str] = input,
        out: IO[str] = sys.stdout,
        err: IO[str] = sys.stderr,
    ) -> None:
        self.client = client
        self.params = request_params(args)
        self.system: Optional[str] = args.system
        self.history: List[Dict[str, Any]] = []
        self.input, self.out, self.err = input, out, err
        self.style = Style(err, args.color)
        self.base_trace: Optional[Trace] = client.transport.trace
        self.usage = {"requests": 0, "prompt": 0, "completion": 0, "cached": 0, "reasoning": 0}

    @property
    def messages(self) -> List[Dict[str, Any]]:
        """What the next request sends before the new user message."""
        system = [{"role": "system", "content": self.system}] if self.system else []
        return system + self.history

    def say(self, text: str) -> None:
        print(self.style.dim(text), file=self.err)

    def run(self) -> int:
        self.say("rawchat chat: type a message; /help for commands, /exit or Ctrl-D to quit.")
        while True:
            try:
                line = self.input("you> ")
            except EOFError:
                print(file=self.err)
                return EXIT_OK
            text = line.strip()
            if not text:
                continue
            if text.startswith("/"):
                if self.command(text) is False:
                    return EXIT_OK
                continue
            self.turn(text)

    def turn(self, text: str) -> None:
        messages = [*self.messages, {"role": "user", "content": text}]
        try:
            completion = typewrite(self.client, messages, self.params, self.out)
        except KeyboardInterrupt:
            self.say("(answer cancelled; the conversation is as before)")
            return
        except APIError as exc:
            print_error(exc, self.style, self.err)
            return
        # Committed only now: a failed or cancelled answer leaves no half-turn.
        self.history += [messages[-1], completion.message.to_dict()]
        if completion.usage is not None:
            usage = completion.usage
            self.usage["prompt"] += usage.prompt_tokens
            self.usage["completion"] += usage.completion_tokens
            self.usage["cached"] += usage.cached_tokens
            self.usage["reasoning"] += usage.reasoning_tokens
        self.usage["requests"] += 1

    def command(self, text: str) -> Optional[bool]:
        name, _, argument = text.partition(" ")
        argument = argument.strip()
        if name in ("/exit", "/quit"):
            return False
        if name == "/help":
            print(HELP, file=self.err)
        elif name == "/reset":
            self.history = []
            self.say("(conversation cleared)")
        elif name == "/system":
            if argument:
                self.system = argument
                self.say("(system prompt set)")
            else:
                self.say(f"system prompt: {self.system!r}")
        elif name == "/save" and argument:
            data = {"format": "rawchat.chat/1", "messages": self.messages}
            atomic_write(argument, json.dumps(data, ensure_ascii=False, indent=2) + "\n")
            self.say(f"(saved {len(self.messages)} messages to {argument})")
        elif name == "/load" and argument:
            self.load(argument)
        elif name == "/usage":
            u = self.usage
            self.say(
                f"{u['requests']} answers; tokens: {u['prompt']} prompt ({u['cached']} cached), "
                f"{u['completion']} completion ({u['reasoning']} reasoning), "
                f"{u['prompt'] + u['completion']} total"
            )
        elif name == "/trace" and argument in ("on", "off"):
            trace: Optional[Trace] = self.base_trace
            if argument == "on":
                text_trace = TextTrace(self.err, color=self.style.enabled)
                trace = MultiTrace([self.base_trace, text_trace]) if self.base_trace else text_trace
            self.client.transport.trace = trace
            self.say(f"(trace {argument})")
        else:
            self.say(f"unknown command {text!r}; /help lists them")
        return None

    def load(self, path: str) -> None:
        try:
            with open(path, encoding="utf-8") as saved:
                data = json.load(saved)
            messages = data["messages"] if isinstance(data, dict) else data
            messages = validate_messages(messages)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            print_error(InvalidRequestError(f"cannot load {path}: {exc}"), self.style, self.err)
            return
        system = [m for m in messages if m.get("role") == "system"]
        self.system = system[0].get("content") if system else self.system
        self.history = [m for m in messages if m.get("role") != "system"]
        self.say(f"(loaded {len(messages)} messages from {path})")
