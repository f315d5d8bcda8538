"""The embedded OpenAI-compatible simulator: a real HTTP server on loopback.

``Simulator()`` serves ``SimulatorApp`` (the protocol, as pure code, in
``app.py``) on a free port of 127.0.0.1 from a background thread, so tests
and notebooks run offline against real sockets:

>>> import rawchat
>>> with Simulator() as sim:
...     client = rawchat.Client(base_url=sim.base_url, api_key="sk-test")
...     client.chat([{"role": "user", "content": "hi"}], model="gpt-4o-mini").content
'Hello from the rawchat simulator. ...'

``rawchat serve`` runs the same server in the foreground.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Dict, Optional, Sequence

from .app import SimRequest, SimResponse, SimulatorApp
from .model import MODELS
from .server import SimulatorServer

__all__ = ["MODELS", "SimRequest", "SimResponse", "Simulator", "SimulatorApp"]


class Simulator:
    """The simulator on ``host:port`` (port 0 picks a free one).

    ``api_keys`` limits the accepted keys (default: any non-empty key);
    ``chunk_interval`` spaces streamed chunks, to watch a typewriter;
    ``faults`` is a fault script for every request (see ``faults.py``);
    ``requests_per_minute`` (and ``burst``) rate-limit each key.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        api_keys: Optional[Sequence[str]] = None,
        models: Sequence[str] = MODELS,
        chunk_interval: float = 0.0,
        faults: str = "",
        requests_per_minute: Optional[float] = None,
        burst: Optional[float] = None,
        verbose: bool = False,
    ) -> None:
        self.app = SimulatorApp(
            api_keys=api_keys,
            models=models,
            clock=time.time,
            chunk_interval=chunk_interval,
            faults=faults,
            requests_per_minute=requests_per_minute,
            burst=burst,
            monotonic=time.monotonic,
        )
        self._address = (host, port)
        self._verbose = verbose
        self._server: Optional[SimulatorServer] = None
        self._thread: Optional[threading.Thread] = None

    def bind(self) -> Simulator:
        """Open the listening socket (so ``base_url`` is known) without serving."""
        if self._server is None:
            self._server = SimulatorServer(self.app, self._address, verbose=self._verbose)
        return self

    def start(self) -> Simulator:
        """Serve from a background thread."""
        self.bind()
        assert self._server is not None
        self._thread = threading.Thread(
            # A short poll interval makes stop() quick: shutdown() waits one poll.
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="rawchat-simulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.close_connections()
            self._server.server_close()
            self._server = None

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted (``rawchat serve``)."""
        self.bind()
        assert self._server is not None
        try:
            self._server.serve_forever()
        finally:
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the simulator is not running: call start() or use `with`")
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        """The base URL to give a client, ``http://127.0.0.1:PORT/v1``."""
        host = self._address[0]
        return f"http://{host}:{self.port}/v1"

    @property
    def requests_by_key(self) -> Dict[str, int]:
        """How many requests each key (by fingerprint) has made."""
        return dict(self.app.requests_by_key)

    @property
    def request_count(self) -> int:
        return self.app.request_count
