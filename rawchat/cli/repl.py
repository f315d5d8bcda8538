"""``rawchat chat``: a multi-turn conversation in the terminal.

The model keeps no state between requests: every turn resends the history
(https://platform.openai.com/docs/guides/conversation-state). The REPL holds
it in a ``Conversation``, which trims it to the model's context window,
commits a turn only when its answer arrived whole, and leaves it untouched
when an answer fails or is cancelled with Ctrl-C. ``--strategy`` chooses
what is sent once the history outgrows the window; ``/save`` records it and
``/load`` brings it back.
"""

from __future__ import annotations

import argparse
import sys
from typing import IO, Callable, Optional

from ..client.client import Client
from ..client.trace import MultiTrace, TextTrace, Trace
from ..conversation.conversation import Conversation
from ..errors import APIError, ConfigError, InvalidRequestError
from ..protocol.trimming import STRATEGIES
from .console import EXIT_OK, Style, print_error, request_params

__all__ = ["Repl"]

HELP = """\
/reset            forget the conversation (the system prompt stays)
/system [TEXT]    show or set the system prompt
/save FILE        save the conversation as JSON
/load FILE        load a saved conversation
/usage            tokens and estimated cost of this session
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
        # The chosen strategy; a loaded conversation brings back the one it was saved with.
        strategy = STRATEGIES[getattr(args, "strategy", None) or "drop-oldest"]()
        self.conversation = Conversation(
            system=args.system, strategy=strategy, api=getattr(args, "api", "chat")
        )
        self.input, self.out, self.err = input, out, err
        self.style = Style(err, args.color)
        self.base_trace: Optional[Trace] = client.transport.trace

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
        """One question and its streamed answer; the conversation commits it on success."""
        try:
            with self.conversation.stream(self.client, text, **self.params) as stream:
                try:
                    for delta in stream.text():
                        self.out.write(delta)
                        self.out.flush()
                finally:
                    self.out.write("\n")
                    self.out.flush()
        except KeyboardInterrupt:
            self.say("(answer cancelled; the conversation is as before)")
        except APIError as exc:
            print_error(exc, self.style, self.err)
        except InvalidRequestError as exc:  # e.g. the message alone overflows the window
            print_error(exc, self.style, self.err)

    def command(self, text: str) -> Optional[bool]:
        name, _, argument = text.partition(" ")
        argument = argument.strip()
        conversation = self.conversation
        if name in ("/exit", "/quit"):
            return False
        if name == "/help":
            print(HELP, file=self.err)
        elif name == "/reset":
            conversation.reset()
            self.say("(conversation cleared)")
        elif name == "/system":
            if argument:
                conversation.system = argument
                self.say("(system prompt set)")
            else:
                self.say(f"system prompt: {conversation.system!r}")
        elif name == "/save" and argument:
            try:
                conversation.save(argument)
            except OSError as exc:  # a missing folder, no permission: the chat goes on
                detail = exc.strerror or str(exc)
                print_error(
                    ConfigError(f"cannot save to {argument}: {detail}"), self.style, self.err
                )
            else:
                self.say(f"(saved {len(conversation.messages)} messages to {argument})")
        elif name == "/load" and argument:
            try:
                self.conversation = Conversation.load(argument)
            except InvalidRequestError as exc:
                print_error(exc, self.style, self.err)
            else:
                self.say(f"(loaded {len(self.conversation.messages)} messages from {argument})")
                if self.conversation.strategy.name != conversation.strategy.name:
                    self.say(f"(strategy {self.conversation.strategy.name}, as it was saved)")
        elif name == "/usage":
            usage = self.client.policies.usage
            if usage is None:
                self.say("(usage is not metered: the client has no Policies(usage=UsageMeter()))")
            else:
                self.say(usage.report())
            if conversation.last_trim is not None and conversation.last_trim.dropped_messages:
                trim = conversation.last_trim
                self.say(f"(trimmed: {trim.dropped_messages} older messages not sent)")
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
