"""What the commands share: exit codes, request options, colours, the typewriter, errors."""

from __future__ import annotations

import argparse
import os
import sys
from typing import IO, Any, Dict, List, Optional

from ..client.client import Client

__all__ = [
    "EXIT_API",
    "EXIT_INTERRUPTED",
    "EXIT_NETWORK",
    "EXIT_OK",
    "EXIT_USAGE",
    "Style",
    "print_error",
    "request_params",
    "typewrite",
]

#: Exit codes: 0 done, 1 the API refused, 2 usage or configuration, 3 network.
EXIT_OK, EXIT_API, EXIT_USAGE, EXIT_NETWORK, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def request_params(args: argparse.Namespace) -> Dict[str, Any]:
    params: Dict[str, Any] = {}
    if args.model:
        params["model"] = args.model
    if args.temperature is not None:
        params["temperature"] = args.temperature
    if args.max_tokens is not None:
        # The Responses API calls the same cap max_output_tokens.
        api = getattr(args, "api", "chat")
        params["max_output_tokens" if api == "responses" else "max_tokens"] = args.max_tokens
    return params


class Style:
    """Terminal colours: only on a TTY, never with ``NO_COLOR`` or ``TERM=dumb``.

    ``NO_COLOR`` (https://no-color.org) is the user's standing choice, so it
    wins over ``--color always`` too; ``always`` still overrides ``TERM``
    and a pipe.
    """

    def __init__(self, stream: IO[str], mode: str = "auto") -> None:
        if "NO_COLOR" in os.environ:
            self.enabled = False
        elif mode == "auto":
            self.enabled = (
                hasattr(stream, "isatty") and stream.isatty() and os.environ.get("TERM") != "dumb"
            )
        else:
            self.enabled = mode == "always"

    def __call__(self, text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.enabled else text

    def bold(self, text: str) -> str:
        return self(text, "1")

    def dim(self, text: str) -> str:
        return self(text, "2")

    def good(self, text: str) -> str:
        return self(text, "32")

    def bad(self, text: str) -> str:
        return self(text, "31")

    def warn(self, text: str) -> str:
        return self(text, "33")


def typewrite(
    client: Client, messages: List[Dict[str, Any]], params: Dict[str, Any], out: IO[str]
) -> Any:
    """Stream one answer to ``out`` as it arrives; return its ``Completion``."""
    with client.stream(messages, **params) as stream:
        try:
            for text in stream.text():
                out.write(text)
                out.flush()
        finally:
            out.write("\n")
            out.flush()
        return stream.completion


def print_error(
    exc: BaseException, style: Optional[Style] = None, out: Optional[IO[str]] = None
) -> None:
    """``rawchat: error: ...`` with the hint, and how much of an answer arrived."""
    out = out or sys.stderr
    style = style or Style(out, "never")
    print(style.bad(f"rawchat: error: {exc}"), file=out)
    partial = getattr(exc, "partial", None)
    # A chat Completion has .content; a Responses Response has .output_text.
    text = getattr(partial, "content", None) or getattr(partial, "output_text", None)
    if text:
        print(f"rawchat: {len(text)} characters arrived before the error", file=out)
