"""Assembling deltas into one Completion."""

from __future__ import annotations

from rawchat.protocol.accumulate import Accumulator
from rawchat.protocol.chunks import ChoiceDelta, Chunk, ToolCallDelta
from rawchat.protocol.completion import FunctionCall, ToolCall, Usage


def assemble(*chunks: Chunk):
    accumulator = Accumulator()
    for chunk in chunks:
        accumulator.add(chunk)
    return accumulator


def test_content_deltas_concatenate_and_the_finish_reason_is_kept():
    done = assemble(
        Chunk(id="c", model="m", choices=(ChoiceDelta(0, role="assistant", content=""),)),
        Chunk(choices=(ChoiceDelta(0, content="Hel"),)),
        Chunk(choices=(ChoiceDelta(0, content="lo"),)),
        Chunk(choices=(ChoiceDelta(0, finish_reason="stop"),)),
        Chunk(usage=Usage(3, 2, 5)),
    ).completion()
    assert (done.id, done.model, done.content, done.finish_reason, done.usage) == (
        "c",
        "m",
        "Hello",
        "stop",
        Usage(3, 2, 5),
    )


def test_tool_call_fragments_join_by_index():
    done = assemble(
        Chunk(
            choices=(
                ChoiceDelta(
                    0,
                    tool_calls=(ToolCallDelta(0, "call_a", "function", "get_weather", ""),),
                ),
            )
        ),
        Chunk(
            choices=(
                ChoiceDelta(
                    0,
                    tool_calls=(ToolCallDelta(1, "call_b", "function", "get_time", '{"tz"'),),
                ),
            )
        ),
        Chunk(choices=(ChoiceDelta(0, tool_calls=(ToolCallDelta(0, arguments='{"city":'),)),)),
        Chunk(choices=(ChoiceDelta(0, tool_calls=(ToolCallDelta(0, arguments='"Paris"}'),)),)),
        Chunk(choices=(ChoiceDelta(0, tool_calls=(ToolCallDelta(1, arguments=':"UTC"}'),)),)),
        Chunk(choices=(ChoiceDelta(0, finish_reason="tool_calls"),)),
    ).completion()
    assert done.tool_calls == (
        ToolCall("call_a", FunctionCall("get_weather", '{"city":"Paris"}')),
        ToolCall("call_b", FunctionCall("get_time", '{"tz":"UTC"}')),
    )
    assert done.message.content is None
    assert done.finish_reason == "tool_calls"


def test_a_name_repeated_in_every_fragment_is_not_doubled():
    done = assemble(
        Chunk(choices=(ChoiceDelta(0, tool_calls=(ToolCallDelta(0, "c", None, "f", "{"),)),)),
        Chunk(choices=(ChoiceDelta(0, tool_calls=(ToolCallDelta(0, None, None, "f", "}"),)),)),
    ).completion()
    assert done.tool_calls[0].function == FunctionCall("f", "{}")


def test_choices_of_n_greater_than_one_are_kept_apart_and_in_order():
    done = assemble(
        Chunk(choices=(ChoiceDelta(1, content="B"),)),
        Chunk(choices=(ChoiceDelta(0, content="A"),)),
        Chunk(choices=(ChoiceDelta(1, content="b", finish_reason="stop"),)),
    ).completion()
    assert [(c.index, c.message.content) for c in done.choices] == [(0, "A"), (1, "Bb")]


def test_reasoning_and_refusal_accumulate_separately():
    done = assemble(
        Chunk(choices=(ChoiceDelta(0, reasoning="think "),)),
        Chunk(choices=(ChoiceDelta(0, reasoning="more", refusal="No"),)),
    ).completion()
    assert (done.reasoning, done.refusal, done.content) == ("think more", "No", "")


def test_finished_needs_a_finish_reason_on_every_choice():
    accumulator = assemble(
        Chunk(
            choices=(
                ChoiceDelta(0, content="a", finish_reason="stop"),
                ChoiceDelta(1, content="b"),
            )
        )
    )
    assert accumulator.finished is False
    accumulator.add(Chunk(choices=(ChoiceDelta(1, finish_reason="length"),)))
    assert accumulator.finished is True
    assert Accumulator().finished is False


def test_a_long_answer_joins_in_order():
    pieces = [f"{n}," for n in range(600)]
    done = assemble(*(Chunk(choices=(ChoiceDelta(0, content=p),)) for p in pieces)).completion()
    assert done.content == "".join(pieces)
    assert done.content.startswith("0,1,2,") and done.content.endswith("598,599,")


def test_tool_call_arguments_in_many_fragments_join_in_order():
    fragments = [ToolCallDelta(0, id="c1", name="f")] + [
        ToolCallDelta(0, arguments=str(n % 10)) for n in range(300)
    ]
    done = assemble(Chunk(choices=(ChoiceDelta(0, tool_calls=tuple(fragments)),))).completion()
    assert done.tool_calls[0].function.arguments == "0123456789" * 30


def test_the_first_chunks_id_model_and_created_are_kept():
    done = assemble(
        Chunk(id="first", model="m1", created=5, choices=(ChoiceDelta(0, content="a"),)),
        Chunk(id="second", model="m2", created=6, choices=(ChoiceDelta(0, content="b"),)),
    ).completion()
    assert (done.id, done.model, done.created) == ("first", "m1", 5)


def test_the_completion_so_far_can_be_read_mid_stream_and_again_at_the_end():
    accumulator = assemble(Chunk(choices=(ChoiceDelta(0, content="Hel"),)))
    assert accumulator.completion().content == "Hel"
    accumulator.add(Chunk(choices=(ChoiceDelta(0, content="lo", finish_reason="stop"),)))
    assert (accumulator.completion().content, accumulator.finished) == ("Hello", True)


def test_a_tool_call_without_a_type_is_a_function_call():
    done = assemble(
        Chunk(choices=(ChoiceDelta(0, tool_calls=(ToolCallDelta(0, "c", None, "f", "{}"),)),))
    ).completion()
    assert done.tool_calls == (ToolCall("c", FunctionCall("f", "{}"), type="function"),)
