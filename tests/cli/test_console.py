"""Terminal conventions: colour only where it belongs."""

from __future__ import annotations

import io

from rawchat.cli.console import Style


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_on_a_terminal(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert Style(Terminal()).bad("x") == "\033[31mx\033[0m"


def test_no_colour_when_piped():
    assert Style(io.StringIO()).bad("x") == "x"


def test_no_colour_with_no_color_set_even_on_a_terminal(monkeypatch):
    monkeypatch.setenv("NO_COLOR", "")
    assert Style(Terminal()).good("x") == "x"


def test_no_colour_on_a_dumb_terminal(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "dumb")
    assert Style(Terminal()).good("x") == "x"


def test_always_and_never_override_detection(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert Style(io.StringIO(), "always").bold("x") == "\033[1mx\033[0m"
    assert Style(Terminal(), "never").bold("x") == "x"


def test_no_color_set_wins_over_always(monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    assert Style(Terminal(), "always").bad("x") == "x"
