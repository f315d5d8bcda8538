"""The simulator's model: the oracle reader, the extractive summary, the judge."""

from __future__ import annotations

import json

from rawchat.protocol.trimming import Summarize
from rawchat.simulator.model import reply_to


def probe(*context, answer="AB123", stale=""):
    messages = [*context, {"role": "user", "content": "What is my locker code?"}]
    metadata = {"rawchat_probe_answer": answer, "rawchat_probe_stale": stale}
    return reply_to({"model": "gpt-4o-mini", "messages": messages, "metadata": metadata}).content


def test_the_oracle_answers_a_probe_whose_answer_it_was_sent():
    said = {"role": "user", "content": "My locker code is AB123."}
    assert probe(said) == "AB123"


def test_the_oracle_reads_tool_results_and_tool_call_arguments():
    result = {"role": "tool", "tool_call_id": "c1", "content": '{"code": "AB123"}'}
    assert probe(result) == "AB123"


def test_the_oracle_does_not_know_what_it_was_not_sent():
    assert probe({"role": "user", "content": "Hello."}) == "I don't know."
    assert probe(answer="") == "I don't know."


def test_the_oracle_gives_the_stale_value_when_only_that_reached_it():
    said = {"role": "user", "content": "My locker code is ZZ999."}
    assert probe(said, stale="ZZ999") == "ZZ999"


def test_the_summary_request_gets_the_sentences_it_was_given_cut_to_max_tokens():
    body = {
        "model": "gpt-4o-mini",
        "max_tokens": 10,
        "messages": [
            {"role": "system", "content": Summarize.PROMPT},
            {
                "role": "user",
                "content": "Current summary:\n(none yet)\n\nNew turns:\n"
                "user: My code is AB123. Please remember.\nassistant: Noted, I will.",
            },
        ],
    }
    assert reply_to(body).content == "My code is AB123. Please remember."


def test_a_system_prompt_that_mentions_a_summary_is_answered_as_any_other():
    body = {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "Summary of the earlier conversation:\nAB."},
            {"role": "user", "content": "hi"},
        ],
    }
    assert 'your last message was: "hi"' in reply_to(body).content


def test_the_judge_grades_by_containment_in_the_verdict_shape():
    def verdict(candidate, gold="Lyon", stale="Porto"):
        item = {"question": "Where?", "gold": gold, "stale": stale, "candidate": candidate}
        body = {
            "model": "rawchat-sim",
            "metadata": {"rawchat_judge": "rawchat-judge/1"},
            "messages": [{"role": "user", "content": json.dumps(item)}],
        }
        return json.loads(reply_to(body).content)["verdict"]

    assert [verdict("lyon"), verdict("Porto"), verdict("I don't know."), verdict("Paris")] == [
        "CORRECT",
        "STALE",
        "ABSTAIN",
        "WRONG",
    ]
    assert verdict("I don't know.", gold="") == "CORRECT"
