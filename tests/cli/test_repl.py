"""The chat REPL: history kept, committed only on success, commands."""

from __future__ import annotations

import argparse
import io
import json

import pytest

import rawchat
from rawchat.cli.repl import Repl
from rawchat.policies import Policies, UsageMeter

from ..conftest import KEY
from .test_main import run


@pytest.fixture
def client(sim):
    """A metered client, as ``rawchat chat`` makes one."""
    policies = Policies(usage=UsageMeter())
    with rawchat.Client(KEY, sim.base_url, policies=policies) as metered:
        yield metered


def args(**overrides):
    defaults = dict(
        model="gpt-4o-mini",
        system=None,
        temperature=None,
        max_tokens=None,
        color="never",
        strategy="drop-oldest",
    )
    return argparse.Namespace(**dict(defaults, **overrides))


def drive(client, lines, **overrides):
    feed = iter(lines)

    def read(prompt):
        try:
            return next(feed)
        except StopIteration:
            raise EOFError from None

    out, err = io.StringIO(), io.StringIO()
    repl = Repl(client, args(**overrides), input=read, out=out, err=err)
    assert repl.run() == 0
    return repl, out.getvalue(), err.getvalue()


def test_each_turn_resends_the_whole_history(client):
    repl, out, _ = drive(client, ["one", "two"], system="Be terse.")
    assert "I received 2 messages" in out.splitlines()[0]
    assert "I received 4 messages" in out.splitlines()[1]
    assert [m["role"] for m in repl.conversation.messages] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
    ]


def test_a_failed_answer_leaves_the_history_as_it_was(client):
    repl, _, err = drive(client, ["one"], model="no-such-model")
    assert repl.conversation.messages == []
    assert "404 The model `no-such-model` does not exist" in err


class CancelOnFirstWrite(io.StringIO):
    """Stands in for a user pressing Ctrl-C while the answer streams."""

    def __init__(self):
        super().__init__()
        self.cancelled = False

    def write(self, text):
        if not self.cancelled and text.strip():
            self.cancelled = True
            raise KeyboardInterrupt
        return super().write(text)


def test_ctrl_c_mid_answer_cancels_it_without_a_half_turn(client):
    out = CancelOnFirstWrite()
    repl = Repl(client, args(), input=iter(["one"]).__next__, out=out, err=io.StringIO())
    repl.turn("one")
    assert repl.conversation.messages == []
    repl.turn("two")
    assert len(repl.conversation.messages) == 2 and "I received 1 message" in out.getvalue()


def test_reset_system_usage_and_unknown_commands(client):
    repl, _, err = drive(client, ["hi", "/usage", "/reset", "/system Be kind.", "/system", "/nope"])
    assert repl.conversation.messages == [{"role": "system", "content": "Be kind."}]
    assert (
        "total: 1 requests, 8 prompt tokens (0 cached), 18 completion (0 reasoning), $0.000012"
        in err
    )
    assert "system prompt: 'Be kind.'" in err
    assert "unknown command '/nope'; /help lists them" in err


def test_save_and_load_round_trip(client, tmp_path):
    path = tmp_path / "chat.json"
    drive(client, ["hi", f"/save {path}"], system="S")
    saved = json.loads(path.read_text(encoding="utf-8"))
    assert saved["format"] == "rawchat.conversation/1"
    assert [m["role"] for m in saved["threads"]["main"]["messages"]] == ["user", "assistant"]
    repl, _, err = drive(client, [f"/load {path}"])
    assert repl.conversation.system == "S" and len(repl.conversation.messages) == 3
    assert f"(loaded 3 messages from {path})" in err


def test_loading_a_broken_file_says_why_and_keeps_the_conversation(client, tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(
        '{"format": "rawchat.conversation/1", "threads": {"main": {"messages": [{"role": "robot"}]}}}'
    )
    repl, _, err = drive(client, ["hi", f"/load {path}"])
    assert len(repl.conversation.messages) == 2
    assert "cannot load" in err and "has role 'robot'" in err


def test_trace_on_and_off(sim):
    client = rawchat.Client(KEY, sim.base_url)
    _, _, err = drive(client, ["/trace on", "hi", "/trace off", "again"])
    assert err.count("> POST ") == 1
    assert client.transport.trace is None


def test_usage_without_a_meter_says_how_to_get_one(sim):
    _, _, err = drive(rawchat.Client(KEY, sim.base_url), ["/usage"])
    assert "(usage is not metered: the client has no Policies(usage=UsageMeter()))" in err


def test_saving_to_a_missing_folder_says_why_and_the_chat_goes_on(client, tmp_path):
    path = tmp_path / "missing" / "chat.json"
    _, out, err = drive(client, ["hi", f"/save {path}", "again"])
    assert f"rawchat: error: cannot save to {path}: No such file or directory" in err
    assert "I received 3 messages" in out
    assert list(tmp_path.iterdir()) == []


def test_the_chosen_strategy_trims_the_conversation_and_is_saved_and_loaded_with_it(
    client, tmp_path
):
    path = tmp_path / "chat.json"
    repl, _, _ = drive(client, ["hi", f"/save {path}"], strategy="relevant")
    assert isinstance(repl.conversation.strategy, rawchat.Relevant)
    assert repl.conversation.last_trim.strategy == "relevant"
    assert json.loads(path.read_text(encoding="utf-8"))["strategy"] == "relevant"
    repl, _, err = drive(client, [f"/load {path}"])  # started with drop-oldest
    assert isinstance(repl.conversation.strategy, rawchat.Relevant)
    assert "(strategy relevant, as it was saved)" in err


def test_chat_without_a_strategy_drops_the_oldest_turns(client):
    repl, _, _ = drive(client, ["hi"], strategy=None)
    assert repl.conversation.last_trim.strategy == "drop-oldest"


def test_an_unknown_strategy_is_a_usage_error_listing_the_known_ones():
    result = run("chat", "--strategy", "lru")
    assert result.returncode == 2
    assert (
        "argument --strategy: invalid choice: 'lru' (choose from 'drop-oldest', "
        "'keep-first-and-recent', 'summarize', 'relevant')" in result.stderr
    )
