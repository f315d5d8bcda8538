"""``AsyncClient``: the same client for asyncio applications, with no new dependency.

The protocol work is the same, and ``requests`` blocks, so the async client
runs the blocking one on a thread pool and awaits it: each call occupies a
thread only while it waits on the network, and the event loop stays free.
Streams hand over each delta as its own awaited step, so ``async for``
yields text as soon as its bytes arrive::

    async with rawchat.AsyncClient() as client:
        done = await client.chat(messages, model="gpt-4o-mini")
        async with client.stream(messages, model="gpt-4o-mini") as stream:
            async for text in stream.text():
                print(text, end="", flush=True)
        stream.completion

The pool's size bounds the calls in flight (default: the connection pool's).
"""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor
from typing import Any, AsyncIterator, Callable, Dict, List, Optional, Sequence, TypeVar

from ..protocol.completion import Completion
from ..protocol.http import HTTPResponse
from .client import Client
from .stream import Stream

__all__ = ["AsyncClient", "AsyncStream"]

T = TypeVar("T")
_END = object()


class AsyncClient:
    """``Client``'s methods, awaitable. Takes the same arguments, plus ``max_workers``."""

    def __init__(self, *args: Any, max_workers: Optional[int] = None, **kwargs: Any) -> None:
        self.client = Client(*args, **kwargs)
        workers = max_workers or kwargs.get("pool_maxsize", 10)
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="rawchat")

    async def _run(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, functools.partial(function, *args, **kwargs)
        )

    async def chat(self, messages: Sequence[Any], **kwargs: Any) -> Completion:
        return await self._run(self.client.chat, messages, **kwargs)

    def stream(self, messages: Sequence[Any], **kwargs: Any) -> AsyncStream:
        return AsyncStream(self, self.client.stream(messages, **kwargs))

    async def models(self) -> List[Dict[str, Any]]:
        return await self._run(self.client.models)

    async def request(self, method: str, path: str, json: Any = None) -> HTTPResponse:
        return await self._run(self.client.request, method, path, json)

    async def aclose(self) -> None:
        self._executor.shutdown(wait=False)
        self.client.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()


class AsyncStream:
    """A ``Stream`` driven from the event loop."""

    def __init__(self, owner: AsyncClient, stream: Stream) -> None:
        self._owner = owner
        self.stream = stream

    async def __aenter__(self) -> AsyncStream:
        await self._owner._run(self.stream.__enter__)
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self._owner._run(self.stream.close)

    async def _each(self, iterator: Any) -> AsyncIterator[Any]:
        while True:
            item = await self._owner._run(next, iterator, _END)
            if item is _END:
                return
            yield item

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._each(iter(self.stream))

    def text(self) -> AsyncIterator[str]:
        """Text deltas of the first choice, each as soon as it arrives."""
        return self._each(self.stream.text())

    @property
    def completion(self) -> Completion:
        """The assembled answer (read the stream to its end first)."""
        return self.stream.completion
