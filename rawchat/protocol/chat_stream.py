"""A chat completion stream as a whole: bytes in, chunks out, and a verdict at the end.

The sans-I/O pipeline of a streamed chat completion
(https://platform.openai.com/docs/api-reference/chat-streaming): bytes go
to the SSE parser (``sse.py``), each event is interpreted as a chunk
(``chunks.py``) and added to the answer (``accumulate.py``). At the end of
the body the decoder says whether the stream ended properly: it did if it
sent ``data: [DONE]`` or every choice got a ``finish_reason``; otherwise it
was cut off, and ``IncompleteStreamError`` says so with the partial answer
attached rather than passing a prefix off as the answer.

``data: [DONE]`` makes the answer final. Some servers send more after it
(a stray chunk, a second ``[DONE]``) or keep the connection open; what
follows is parsed only to be counted (``ignored_events`` and
``ignored_bytes``, for whoever reports on the stream), never interpreted or
added to the answer; the caller should stop reading once ``done`` is set
rather than wait for the server to close.
"""

from __future__ import annotations

from typing import Any, Iterator, List, Optional

from ..errors import IncompleteStreamError, StreamError
from .accumulate import Accumulator
from .chunks import DONE, Chunk, chunk_from_object, interpret
from .completion import Completion
from .response import parse_completion
from .sse import SSEParser

__all__ = ["ChatStreamDecoder"]


class ChatStreamDecoder:
    """Bytes of a chat stream in, ``Chunk`` values out; no I/O."""

    def __init__(self, parser: Optional[SSEParser] = None) -> None:
        self.parser = parser or SSEParser()
        self.accumulator = Accumulator()
        self.done = False  # saw data: [DONE]
        self.events = 0
        #: Events after ``[DONE]``, and the UTF-8 size of their data: not read.
        self.ignored_events = 0
        self.ignored_bytes = 0

    def feed(self, data: bytes) -> List[Chunk]:
        """Decode the next bytes; return the chunks they complete."""
        return list(self.iter_feed(data))

    def iter_feed(self, data: bytes) -> Iterator[Chunk]:
        """``feed``, one chunk at a time.

        A read can hold hundreds of events. Decoded all at once, their JSON
        objects would be alive together, enough to wake Python's cyclic
        garbage collector every read; one at a time, each is freed before
        the next is made.
        """
        events = self.parser.feed(data)
        self.events += len(events)
        add = self.accumulator.add
        for event in events:
            if self.done:
                self.ignored_events += 1
                self.ignored_bytes += len(event.data.encode("utf-8"))
                continue
            try:
                item = interpret(event)
            except StreamError as exc:
                exc.partial = self.accumulator.completion()
                raise
            if item is DONE:
                self.done = True
            elif item is not None:
                add(item)  # type: ignore[arg-type]
                yield item  # type: ignore[misc]

    def feed_completion(self, data: Any) -> Chunk:
        """A whole completion object, from a server that ignored ``stream``."""
        parse_completion(data)  # the same checks and errors as a plain answer
        chunk = chunk_from_object(data)
        self.accumulator.add(chunk)
        self.done = True
        return chunk

    def close(self) -> Completion:
        """End of the body: the assembled ``Completion``, if the stream was whole."""
        self.parser.close()
        completion = self.accumulator.completion()
        if not self.done and not self.accumulator.finished:
            got = f"{self.events} events" if self.events else "no events"
            raise IncompleteStreamError(
                f"the stream ended after {got} without [DONE] or a finish_reason: "
                "the answer is truncated",
                hint="the connection was cut (server restart, proxy idle timeout, "
                "deadline); the text so far is on the error's .partial",
                partial=completion,
            )
        return completion
