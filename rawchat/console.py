"""Terminal output shared by the commands: colours, the typewriter, errors."""

from __future__ import annotations

import os
import sys
from typing import IO, Any, Dict, List, Optional

from .client import Client

__all__ = ["Style", "print_error", "typewrite"]


class Style:
    """Terminal colours: only on a TTY, never with ``NO_COLOR`` or ``TERM=dumb``."""

    def __init__(self, stream: IO[str], mode: str = "auto") -> None:
        if mode == "auto":
            self.enabled = (
                hasattr(stream, "isatty")
                and stream.isatty()
                and "NO_COLOR" not in os.environ
                and os.environ.get("TERM") != "dumb"
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
    if partial is not None and partial.content:
        print(f"rawchat: {len(partial.content)} characters arrived before the error", file=out)
