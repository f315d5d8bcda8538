"""The trimming plan as tables: what each strategy sends, drops and folds, and when."""

from __future__ import annotations

import pytest

from rawchat.errors import ContextOverflowError
from rawchat.protocol.trimming import (
    DropOldest,
    KeepFirstAndRecent,
    Summarize,
    TrimPlan,
    TrimReport,
    TrimState,
    budget_for,
    context_window_for,
    plan_trim,
    split_turns,
)


def words(text: str) -> int:
    """A counter simple enough to add up by hand: one token per word."""
    return len(text.split())


def history(turns: int, size: int = 10):
    """``turns`` answered questions q1/a1 ... and the new question, ``size`` tokens each."""
    messages = []
    for i in range(1, turns + 1):
        messages += [
            {"role": "user", "content": f"q{i}"},
            {"role": "assistant", "content": f"a{i}"},
        ]
    messages.append({"role": "user", "content": f"q{turns + 1}"})
    return messages, [size] * len(messages), [False] * len(messages)


def plan(turns, budget=100, pin=(), **options) -> TrimPlan:
    """The plan for ``history(turns)`` with the messages at ``pin`` pinned."""
    messages, tokens, pinned = history(turns)
    for index in pin:
        pinned[index] = True
    return plan_trim(messages, tokens, pinned, budget=budget, count=words, **options)


def contents(messages):
    return [m["content"] for m in messages]


# -- turns and budgets ------------------------------------------------------------------


@pytest.mark.parametrize(
    "roles, expected",
    [
        (["user", "assistant", "user"], [(0, 2), (2, 3)]),
        (["user", "assistant", "tool", "tool", "assistant", "user"], [(0, 5), (5, 6)]),
        (["system", "user", "assistant"], [(0, 1), (1, 3)]),
        (["developer", "assistant", "user", "user"], [(0, 2), (2, 3), (3, 4)]),
        (["assistant", "assistant", "user"], [(0, 2), (2, 3)]),
        ([], []),
    ],
)
def test_a_turn_is_a_question_and_everything_that_answers_it(roles, expected):
    assert split_turns([{"role": role} for role in roles]) == expected


@pytest.mark.parametrize(
    "window, reserve, expected",
    [(300, 50, 250), (100, None, 75), (8_192, None, 6_144), (128_000, None, 123_904)],
)
def test_the_budget_is_the_window_minus_room_for_the_reply(window, reserve, expected):
    assert budget_for(window, reserve) == expected


@pytest.mark.parametrize(
    "model, expected",
    [
        ("gpt-4o-mini", 128_000),
        ("gpt-4o-mini-2024-07-18", 128_000),
        ("openai/gpt-4.1", 1_047_576),
        ("gpt-4", 8_192),
        ("deepseek-chat", 65_536),
        ("some-local-model", 8_192),
    ],
)
def test_the_window_comes_from_the_model_table(model, expected):
    assert context_window_for(model) == expected


# -- what each strategy keeps --------------------------------------------------------------


def test_a_history_that_fits_is_sent_whole():
    result = plan(3)
    assert contents(result.messages) == ["q1", "a1", "q2", "a2", "q3", "a3", "q4"]
    assert result.report == TrimReport("drop-oldest", 100, 73, 0, 0)
    assert result.state == TrimState(start=0)


@pytest.mark.parametrize(
    "strategy, pin, sent, report",
    [
        (
            DropOldest(),
            (),
            ["q3", "a3", "q4", "a4", "q5", "a5", "q6"],
            TrimReport("drop-oldest", 100, 73, 4, 40),
        ),
        (
            KeepFirstAndRecent(),
            (),
            ["q1", "a1", "q4", "a4", "q5", "a5", "q6"],
            TrimReport("keep-first-and-recent", 100, 73, 4, 40),
        ),
        (
            DropOldest(),
            (3,),  # a2: a pinned answer keeps its question with it
            ["q2", "a2", "q4", "a4", "q5", "a5", "q6"],
            TrimReport("drop-oldest", 100, 73, 4, 40),
        ),
        (
            DropOldest(low_water=1.0),
            (),
            ["q2", "a2", "q3", "a3", "q4", "a4", "q5", "a5", "q6"],
            TrimReport("drop-oldest", 100, 93, 2, 20),
        ),
        (
            DropOldest(low_water=0.5),
            (),
            ["q5", "a5", "q6"],
            TrimReport("drop-oldest", 100, 33, 8, 80),
        ),
    ],
)
def test_each_strategy_drops_whole_turns_down_to_the_low_water_mark(strategy, pin, sent, report):
    # Five answered turns of 20 tokens and a 10-token question: 113 tokens
    # with the reply priming, over the budget of 100; low water is 75.
    result = plan(5, pin=pin, strategy=strategy)
    assert contents(result.messages) == sent
    assert result.report == report
    assert result.to_summarize == ()


def test_the_system_prompt_is_sent_first_and_counted_but_never_dropped():
    result = plan(5, system="Be terse.")  # 3 + 2 words
    assert result.messages[0] == {"role": "system", "content": "Be terse."}
    assert contents(result.messages[1:]) == ["q4", "a4", "q5", "a5", "q6"]
    assert result.report == TrimReport("drop-oldest", 100, 58, 6, 60)


def test_trimming_never_drops_the_new_question():
    messages, tokens, pinned = history(2)
    tokens[-1] = 90
    result = plan_trim(messages, tokens, pinned, budget=100)
    assert contents(result.messages) == ["q3"]
    assert result.report == TrimReport("drop-oldest", 100, 93, 4, 40)


@pytest.mark.parametrize(
    "new_tokens, pin, message",
    [
        (120, (), "123 tokens do not fit the budget of 100 even with every droppable turn dropped"),
        (80, (0,), "103 tokens do not fit the budget of 100"),
    ],
)
def test_what_cannot_fit_even_trimmed_is_refused(new_tokens, pin, message):
    messages, tokens, pinned = history(2)
    tokens[-1] = new_tokens
    for index in pin:
        pinned[index] = True
    with pytest.raises(ContextOverflowError, match=message) as caught:
        plan_trim(messages, tokens, pinned, budget=100)
    assert "raise context_window" in caught.value.hint


def test_token_counts_must_match_the_messages():
    with pytest.raises(ValueError, match="same length"):
        plan_trim([{"role": "user", "content": "hi"}], [], [], budget=100)


# -- low water: the start of the prompt stays put ------------------------------------------


def conversation(requests, strategy=None):
    """Plan ``requests`` requests in a row, each answered, as a conversation would."""
    messages, tokens, pinned, state, plans = [], [], [], TrimState(), []
    for i in range(1, requests + 1):
        messages.append({"role": "user", "content": f"q{i}"})
        tokens.append(10)
        pinned.append(False)
        result = plan_trim(
            messages, tokens, pinned, budget=100, state=state, strategy=strategy or DropOldest()
        )
        if result.to_summarize:
            result = result.with_summary(f"s{i}", words)
        plans.append(result)
        state = result.state
        messages.append({"role": "assistant", "content": f"a{i}"})
        tokens.append(10)
        pinned.append(False)
    return plans


def test_trimming_moves_the_start_rarely_so_the_prompt_prefix_stays_put():
    plans = conversation(12)
    assert [p.messages[0]["content"] for p in plans] == (
        ["q1"] * 5 + ["q3"] * 2 + ["q5"] * 2 + ["q7"] * 2 + ["q9"]
    )
    assert [p.report.tokens_sent for p in plans] == [13, 33, 53, 73, 93, 73, 93, 73, 93, 73, 93, 73]


def test_between_trims_each_request_starts_with_the_previous_one_byte_for_byte():
    plans = conversation(12)
    extended = [
        later.messages[: len(earlier.messages)] == earlier.messages
        for earlier, later in zip(plans, plans[1:])
    ]
    assert extended == [True] * 4 + [False, True, False, True, False, True, False]


# -- summaries ------------------------------------------------------------------------------------


def test_summarize_names_the_dropped_messages_to_fold_and_holds_room_for_the_summary():
    # 113 tokens, and 20 more for the summary to come: three turns must go.
    result = plan(5, strategy=Summarize(summary_tokens=20))
    assert contents(result.to_summarize) == ["q1", "a1", "q2", "a2", "q3", "a3"]
    assert result.summary_tokens == 20
    assert result.state == TrimState(start=3, summary=None, summary_upto=3)
    assert contents(result.messages) == ["q4", "a4", "q5", "a5", "q6"]
    assert result.report == TrimReport("summarize", 100, 53, 6, 60, 0)


def test_the_summary_filled_in_is_sent_after_the_system_prompt_and_counted():
    # 3 + 5 + 110 tokens, and 20 more for the summary: four turns must go.
    result = plan(5, system="Be terse.", strategy=Summarize(summary_tokens=20))
    assert len(result.to_summarize) == 8
    ready = result.with_summary("The user asked q1 to q4.", words)
    assert ready.messages[:2] == [
        {"role": "system", "content": "Be terse."},
        {
            "role": "system",
            "content": "Summary of the earlier conversation:\nThe user asked q1 to q4.",
        },
    ]
    assert contents(ready.messages[2:]) == ["q5", "a5", "q6"]
    assert ready.state == TrimState(start=4, summary="The user asked q1 to q4.", summary_upto=4)
    # 38 as planned without a summary, plus 3 + 11 words.
    assert ready.report == TrimReport("summarize", 100, 52, 8, 80, 8)
    assert ready.to_summarize == () and ready.summary_tokens == 0


def test_the_summary_request_shows_the_current_summary_and_each_new_message():
    messages = [
        {"role": "user", "content": "look up 42"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": '{"q": 42}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "forty-two"},
        {"role": "assistant", "content": "It is forty-two."},
        {"role": "user", "content": "thanks"},
    ]
    result = plan_trim(
        messages,
        [40, 40, 10, 10, 10],
        [False] * 5,
        budget=50,
        state=TrimState(summary="Nothing yet."),
        strategy=Summarize(summary_tokens=5),
        count=words,
    )
    assert result.summary_request() == [
        {"role": "system", "content": Summarize.PROMPT},
        {
            "role": "user",
            "content": "Current summary:\nNothing yet.\n\nNew turns:\n"
            "user: look up 42\n"
            'assistant: null [tool calls: [{"id": "call_1", "type": "function", '
            '"function": {"name": "lookup", "arguments": "{\\"q\\": 42}"}}]]\n'
            "tool result (call_1): forty-two\n"
            "assistant: It is forty-two.",
        },
    ]


def test_the_summary_is_rewritten_only_when_more_turns_are_dropped():
    # The first trim holds 20 tokens for the summary to come; later ones
    # count the summary as it is (9 tokens here).
    plans = conversation(12, Summarize(summary_tokens=20))
    assert [p.report.summarized_messages for p in plans] == [0, 0, 0, 0, 0, 6, 0, 4, 0, 4, 0, 4]
    assert [p.state.summary for p in plans] == (
        [None] * 5 + ["s6"] * 2 + ["s8"] * 2 + ["s10"] * 2 + ["s12"]
    )
    assert [p.messages[1]["content"] for p in plans[5:]] == [
        "q4",
        "q4",
        "q6",
        "q6",
        "q8",
        "q8",
        "q10",
    ]


def test_a_new_summary_replaces_the_old_ones_tokens():
    old = TrimState(start=3, summary="q1 to q3", summary_upto=3)  # 3 + 8 words
    result = plan(7, state=old, strategy=Summarize(summary_tokens=20))
    assert contents(result.to_summarize) == ["q4", "a4", "q5", "a5"]
    assert result.report.tokens_sent == 64  # 3 + 11 + 50, the old summary still in
    ready = result.with_summary("q1 to q5", words)
    assert ready.report.tokens_sent == 64
    assert ready.report.summarized_messages == 4
    assert ready.state == TrimState(start=5, summary="q1 to q5", summary_upto=5)


def test_pinned_turns_are_sent_not_folded_into_the_summary():
    result = plan(5, pin=(2,), strategy=Summarize(summary_tokens=20))
    assert contents(result.to_summarize) == ["q1", "a1", "q3", "a3", "q4", "a4"]
    assert contents(result.messages) == ["q2", "a2", "q5", "a5", "q6"]


def test_other_strategies_fold_nothing():
    with pytest.raises(ValueError, match="nothing to fold"):
        plan(5).with_summary("s", words)


# -- the strategies as values -----------------------------------------------------------------


def test_strategies_construct_with_no_arguments_and_compare_by_value():
    assert [s.name for s in (DropOldest(), KeepFirstAndRecent(), Summarize())] == [
        "drop-oldest",
        "keep-first-and-recent",
        "summarize",
    ]
    assert Summarize() == Summarize(low_water=0.75, summary_tokens=300)
    assert DropOldest() != KeepFirstAndRecent()
    assert repr(Summarize(summary_tokens=40)) == "Summarize(low_water=0.75, summary_tokens=40)"


@pytest.mark.parametrize(
    "make",
    [lambda: DropOldest(low_water=0), lambda: DropOldest(1.5), lambda: Summarize(summary_tokens=0)],
)
def test_impossible_strategy_settings_are_refused(make):
    with pytest.raises(ValueError):
        make()


# -- Relevant, BM25, the extractive summary --------------------------------------------

from rawchat.protocol.trimming import (  # noqa: E402
    STRATEGIES,
    Relevant,
    bm25_scores,
    extractive_summary,
)


def _chat(*pairs):
    return [
        m
        for q, a in pairs
        for m in ({"role": "user", "content": q}, {"role": "assistant", "content": a})
    ]


def test_relevant_brings_back_the_dropped_turn_that_matches_the_new_question():
    tides = [(f"tell me about tides {i}", "tides rise and fall twice a day") for i in range(11)]
    question = {"role": "user", "content": "what is my locker code?"}
    history = [*_chat(("my locker code is AB123", "noted"), *tides), question]
    tokens = [10] * len(history)
    # Budget 200: 100 set aside for recall, the recent turns trimmed to 150 - 100.
    plan = plan_trim(history, tokens, [False] * len(history), budget=200, strategy=Relevant())
    assert plan.kept[:2] == tuple(history[:2])  # recalled, in its place, before the recent turns
    assert [m["content"] for m in plan.kept[2:]] == [
        "tell me about tides 10",
        "tides rise and fall twice a day",
        "what is my locker code?",
    ]
    assert plan.report.tokens_sent == 3 + 50


def test_relevant_recalls_nothing_when_no_dropped_turn_shares_a_word():
    history = [*_chat(*[(f"tides {i}", "they rise") for i in range(12)])]
    history.append({"role": "user", "content": "hello?"})
    plan = plan_trim(
        history, [10] * len(history), [False] * len(history), budget=200, strategy=Relevant()
    )
    assert [m["content"] for m in plan.kept] == ["tides 11", "they rise", "hello?"]


def test_relevant_sends_a_history_that_fits_whole():
    history = [*_chat(("a", "b")), {"role": "user", "content": "c"}]
    plan = plan_trim(history, [10, 10, 10], [False] * 3, budget=100, strategy=Relevant())
    assert plan.kept == tuple(history)


def test_relevant_is_a_named_strategy_constructed_with_no_arguments():
    assert STRATEGIES["relevant"] is Relevant
    assert Relevant() == Relevant(recall_share=0.5)
    with pytest.raises(ValueError):
        Relevant(recall_share=1.0)


def test_bm25_ranks_the_document_with_the_rarer_shared_words_first():
    scores = bm25_scores("my order number", ["my order number is 7Q", "a number", "nothing here"])
    assert scores[0] > scores[1] > scores[2] == 0


def test_bm25_matches_chinese_by_character_pairs():
    scores = bm25_scores("我的订单号是什么？", ["顺便说一下，我的订单号是7Q。", "今天天气很好。"])
    assert scores[0] > 0 and scores[1] == 0


def test_the_extractive_summary_keeps_whole_sentences_in_order_up_to_the_cap():
    plan_request = [
        {"role": "system", "content": Summarize.PROMPT},
        {
            "role": "user",
            "content": "Current summary:\nOld fact one.\n\nNew turns:\nuser: My code is AB. Thanks!\n"
            "assistant: Noted.",
        },
    ]
    assert extractive_summary(plan_request, 100) == "Old fact one. My code is AB. Thanks! Noted."
    assert extractive_summary(plan_request, 9) == "Old fact one. My code is AB."
