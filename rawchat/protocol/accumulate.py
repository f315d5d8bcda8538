"""Assembling a streamed answer: chunk deltas to one ``Completion``.

Each chunk of a chat stream
(https://platform.openai.com/docs/api-reference/chat-streaming) carries
fragments for choice ``index``: text to append to ``content``, reasoning
text, a refusal, the ``finish_reason`` once at the end, and tool calls in
pieces keyed by their own ``index``: ``id`` and ``function.name`` usually
arrive once, ``function.arguments`` as JSON text cut anywhere, to be
concatenated. The usage chunk comes last, with no choices.

The accumulator keeps the pieces in lists and joins them when asked for
the ``Completion``, so a long stream costs linear time (``+=`` on a string
would copy the answer so far at every token).
"""

from __future__ import annotations

from typing import Dict, List, Mapping, Optional

from .chunks import Chunk
from .completion import Choice, Completion, FunctionCall, Message, ToolCall, Usage

__all__ = ["Accumulator"]


class _ToolCallState:
    __slots__ = ("arguments", "id", "name", "type")

    def __init__(self) -> None:
        self.id = ""
        self.type = "function"
        self.name = ""
        self.arguments: List[str] = []


class _ChoiceState:
    __slots__ = (
        "content",
        "finish_reason",
        "reasoning",
        "refusal",
        "role",
        "tool_calls",
    )

    def __init__(self) -> None:
        self.role = "assistant"
        self.content: List[str] = []
        self.reasoning: List[str] = []
        self.refusal: List[str] = []
        self.tool_calls: Dict[int, _ToolCallState] = {}
        self.finish_reason: Optional[str] = None

    def message(self) -> Message:
        calls = tuple(
            ToolCall(
                id=call.id,
                type=call.type,
                function=FunctionCall(call.name, "".join(call.arguments)),
            )
            for _, call in sorted(self.tool_calls.items())
        )
        return Message(
            role=self.role,
            content="".join(self.content) if self.content or not calls else None,
            tool_calls=calls,
            refusal="".join(self.refusal) if self.refusal else None,
            reasoning="".join(self.reasoning) if self.reasoning else None,
        )


class Accumulator:
    """Collects chunks; ``completion()`` returns what they add up to so far."""

    def __init__(self) -> None:
        self.id = ""
        self.model = ""
        self.created = 0
        self.system_fingerprint: Optional[str] = None
        self.usage: Optional[Usage] = None
        self.chunks = 0
        self._choices: Dict[int, _ChoiceState] = {}
        self._last_raw: Mapping = {}

    @property
    def finished(self) -> bool:
        """Every choice seen so far has a finish reason (and there is one)."""
        return bool(self._choices) and all(
            c.finish_reason is not None for c in self._choices.values()
        )

    def add(self, chunk: Chunk) -> None:
        self.chunks += 1
        # The first chunk sets these; later ones rarely differ (called per token).
        if not self.id:
            self.id = chunk.id
        if not self.model:
            self.model = chunk.model
        if not self.created:
            self.created = chunk.created
        if chunk.system_fingerprint:
            self.system_fingerprint = chunk.system_fingerprint
        if chunk.usage is not None:
            self.usage = chunk.usage
        if chunk.raw:
            self._last_raw = chunk.raw
        choices = self._choices
        for delta in chunk.choices:
            state = choices.get(delta.index)
            if state is None:
                state = choices[delta.index] = _ChoiceState()
            if delta.role:
                state.role = delta.role
            if delta.content:
                state.content.append(delta.content)
            if delta.reasoning:
                state.reasoning.append(delta.reasoning)
            if delta.refusal:
                state.refusal.append(delta.refusal)
            if delta.finish_reason:
                state.finish_reason = delta.finish_reason
            for fragment in delta.tool_calls:
                call = state.tool_calls.get(fragment.index)
                if call is None:
                    call = state.tool_calls[fragment.index] = _ToolCallState()
                if fragment.id:
                    call.id = fragment.id
                if fragment.type:
                    call.type = fragment.type
                # Most servers send the name once; some repeat it in every
                # fragment, which must not double it.
                if fragment.name and fragment.name != call.name:
                    call.name += fragment.name
                if fragment.arguments:
                    call.arguments.append(fragment.arguments)

    def completion(self) -> Completion:
        """The ``Completion`` the chunks so far add up to."""
        choices = tuple(
            Choice(index=index, message=state.message(), finish_reason=state.finish_reason)
            for index, state in sorted(self._choices.items())
        )
        return Completion(
            id=self.id,
            model=self.model,
            created=self.created,
            choices=choices,
            usage=self.usage,
            system_fingerprint=self.system_fingerprint,
            raw=self._last_raw,
        )
