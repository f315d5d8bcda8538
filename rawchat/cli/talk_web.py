"""``rawchat talk --web``: a page to talk to, served on this machine only.

A small ``http.server`` (https://docs.python.org/3/library/http.server.html)
in front of the talk loop (``rawchat.conversation.talk``). The browser
records and plays; this server holds the key and makes the three API calls,
so the key never reaches the page::

    GET  /                   the page (talk.html, shipped as package data)
    POST /talk?session=ID    the recording in the body (Content-Type:
                             audio/wav, or another type the transcription
                             API reads); the answer is text/event-stream

The answer of ``POST /talk`` is a chunked stream of server-sent events
(https://html.spec.whatwg.org/multipage/server-sent-events.html), each
event one HTTP chunk, written the moment it is known (``fetch`` reads a
POST's body as it arrives; ``EventSource`` would only GET):

    stage       {"stage", "ms", "index"}: each ``TalkEvent`` of the turn
    transcript  {"text"}: what was heard
    text        {"delta"}: the answer as the model writes it
    audio       {"index", "text", "wav"}: one sentence's audio, a whole
                WAV file in base64, as soon as its speech has arrived
    answer      {"text"}: the whole answer, committed to the conversation
    timings     the turn's times in ms since the upload arrived
    error       {"message", "hint"}: the turn failed; nothing was committed
                unless the answer had arrived whole

Why the page uploads WAV: it records PCM through the Web Audio API and
writes a 16 kHz 16-bit mono WAV itself. ``MediaRecorder`` would give webm
(Chrome), ogg (Firefox) or mp4 (Safari), which OpenAI reads but not every
compatible transcription server does, nor the simulator; WAV is read by
all of them, and at 32 kB a second a recording stays far below the 25 MB
upload limit.

Why each sentence's audio is re-wrapped: a streamed WAV's header may say
"length unknown" (sizes 0xFFFFFFFF); ``decodeAudioData`` is only reliable
on a complete file, so each sentence's clip is sent once it is whole, with
the real sizes. The first sentence plays while the model still writes the
rest, as in the terminal.

Each page keeps its own ``Conversation`` (keyed by a random id it makes),
so a reload starts afresh. The server answers only requests addressed to
it by its loopback name (a ``Host`` or ``Origin`` naming another site is a
DNS-rebinding page trying to spend the key) and only on the loopback
interface by default; browsers also allow the microphone only there or on
HTTPS.
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any, Callable, Dict, List, Mapping, Optional, Tuple
from urllib.parse import parse_qs, urlsplit

from ..errors import ConfigError, RawchatError
from ..protocol.audio import AUDIO_TYPES, MAX_UPLOAD_BYTES, parse_wav, pcm_to_wav
from ..protocol.sse import encode_event
from .console import EXIT_OK, print_error

__all__ = ["PAGE", "TalkServer", "add_web_options", "run"]

#: The page, shipped next to this module (``setup.cfg``'s package data).
PAGE = Path(__file__).with_name("talk.html")

_SESSION = re.compile(r"[A-Za-z0-9_-]{1,64}")
# Each media type's first extension in AUDIO_TYPES (audio/mpeg: mp3).
_EXTENSIONS = {media: extension for extension, media in reversed(list(AUDIO_TYPES.items()))}
_LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


class TalkServer(ThreadingHTTPServer):
    """Serves the page and one talk turn per ``POST /talk``.

    ``client`` makes the calls; ``talk_options`` go to
    ``rawchat.conversation.talk.talk`` (``model``, ``transcribe_model``,
    ``speech_model``, ``voice``, ``speech_params``, chat parameters...);
    ``new_conversation`` makes each page's ``Conversation``. Port 0 picks a
    free port: ``url`` says which.
    """

    daemon_threads = True

    def __init__(
        self,
        client: Any,
        address: Tuple[str, int] = ("127.0.0.1", 0),
        *,
        talk_options: Optional[Mapping[str, Any]] = None,
        new_conversation: Optional[Callable[[], Any]] = None,
        max_sessions: int = 64,
        log: Optional[IO[str]] = None,
    ) -> None:
        if new_conversation is None:
            from ..conversation.conversation import Conversation

            new_conversation = Conversation
        self.client = client
        self.talk_options = dict(talk_options or {})
        self.new_conversation = new_conversation
        self.max_sessions = max_sessions
        self.log = log
        self.page = PAGE.read_bytes()
        self._sessions: Dict[str, Any] = {}
        self._lock = threading.Lock()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = f"[{host}]" if ":" in str(host) else host
        return f"http://{host}:{port}/"

    def conversation(self, session: str) -> Any:
        """The page's conversation; the least recently used one goes past ``max_sessions``."""
        with self._lock:
            # Taken out and put back: a dict keeps its keys in the order they came.
            conversation = self._sessions.pop(session, None)
            if conversation is None:
                conversation = self.new_conversation()
            self._sessions[session] = conversation
            while len(self._sessions) > self.max_sessions:
                del self._sessions[next(iter(self._sessions))]
            return conversation

    def note(self, text: str) -> None:
        if self.log is not None:
            print(text, file=self.log, flush=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, and chunked encoding for the answer
    server: TalkServer

    def do_GET(self) -> None:
        if not self._addressed_to_us():
            return
        path = urlsplit(self.path).path
        if path in ("/", "/index.html"):
            self._reply(200, "text/html; charset=utf-8", self.server.page)
        elif path == "/favicon.ico":
            self._reply(204, "image/x-icon", b"")
        else:
            self._reply(404, "text/plain; charset=utf-8", b"not found: try /\n")

    def do_POST(self) -> None:
        if not self._addressed_to_us():
            return
        url = urlsplit(self.path)
        if url.path != "/talk":
            self._reply(404, "text/plain; charset=utf-8", b"not found: POST /talk\n")
            return
        session = (parse_qs(url.query).get("session") or [""])[0]
        if not _SESSION.fullmatch(session):
            self._reply(
                400, "text/plain; charset=utf-8", b"POST /talk?session=ID (letters, digits)\n"
            )
            return
        media = (self.headers.get("Content-Type") or "audio/wav").partition(";")[0].strip().lower()
        extension = _EXTENSIONS.get("audio/wav" if media == "audio/x-wav" else media)
        if extension is None:
            text = "the body is audio: Content-Type one of " + ", ".join(sorted(_EXTENSIONS))
            self._reply(415, "text/plain; charset=utf-8", (text + "\n").encode())
            return
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self._reply(411, "text/plain; charset=utf-8", b"send the audio with a Content-Length\n")
            return
        if int(length) > MAX_UPLOAD_BYTES:
            self._reply(413, "text/plain; charset=utf-8", b"the recording is over 25 MB\n")
            return
        audio = self.rfile.read(int(length))
        self._talk(session, audio, f"turn.{extension}")

    def _talk(self, session: str, audio: bytes, filename: str) -> None:
        from ..conversation.talk import talk

        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        events = _EventWriter(self.wfile)
        clips: Dict[int, List[bytes]] = {}
        said: Dict[int, str] = {}

        def on_event(event: Any) -> None:
            stage = {"stage": event.stage, "ms": round(event.ms, 1), "index": event.index}
            events.send("stage", stage)
            if event.stage == "transcribed":
                events.send("transcript", {"text": event.text})
            elif event.stage == "speech_requested":
                said[event.index] = event.text
            elif event.stage == "speech_done":
                wav = _whole_wav(b"".join(clips.pop(event.index, [])))
                text = said.get(event.index, "")
                data = {"index": event.index, "text": text, "wav": _b64(wav)}
                events.send("audio", data)

        def on_audio(index: int, chunk: bytes) -> None:
            clips.setdefault(index, []).append(chunk)

        options = dict(self.server.talk_options, response_format="wav")
        try:
            turn = talk(
                self.server.client,
                self.server.conversation(session),
                audio,
                filename=filename,
                on_text=lambda delta: events.send("text", {"delta": delta}),
                on_audio=on_audio,
                on_event=on_event,
                **options,
            )
        except RawchatError as exc:
            if self.server.log is not None:
                print_error(exc, out=self.server.log)
            self._finish(events, "error", {"message": exc.message, "hint": exc.hint})
            return
        except OSError:  # the page went away: the turn is abandoned where it was
            self.close_connection = True
            return
        events.send("answer", {"text": turn.answer})
        timings = {
            "transcribed_ms": _ms(turn.transcribed_ms),
            "first_token_ms": _ms(turn.first_token_ms),
            "first_audio_ms": _ms(turn.first_audio_ms),
            "reply_latency_ms": _ms(turn.reply_latency_ms),
            "answer_ms": _ms(turn.answer_ms),
            "total_ms": _ms(turn.total_ms),
        }
        self.server.note(
            "rawchat talk: "
            + ", ".join(
                f"{name[:-3]} {ms:.0f} ms" for name, ms in timings.items() if ms is not None
            )
        )
        self._finish(events, "timings", timings)

    def _finish(self, events: _EventWriter, name: str, data: Mapping[str, Any]) -> None:
        try:
            events.send(name, data)
            events.close()
        except OSError:
            self.close_connection = True

    def _addressed_to_us(self) -> bool:
        """Refuse a request that names another site: a DNS-rebinding page
        (its own name resolved to 127.0.0.1) could otherwise spend the key."""
        port = self.server.server_address[1]
        host = (self.headers.get("Host") or "").lower()
        origin = (self.headers.get("Origin") or "").lower()
        served = str(self.server.server_address[0])
        names = {served, f"[{served}]", *_LOOPBACK_NAMES}
        hosts = {f"{name}:{port}" for name in names}
        if host in hosts and (not origin or origin[len("http://") :] in hosts):
            return True
        self._reply(403, "text/plain; charset=utf-8", b"open the page at its own address\n")
        return False

    def _reply(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        if status >= 400:  # a refused request's body may be unread: the connection ends
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per turn is written instead (TalkServer.note)


class _EventWriter:
    """Server-sent events as HTTP chunks (RFC 9112 section 7.1), from any thread:
    the answer's text comes from the calling thread, its audio from the speech one."""

    def __init__(self, out: Any) -> None:
        self.out = out
        self._lock = threading.Lock()

    def send(self, name: str, data: Mapping[str, Any]) -> None:
        event = encode_event(json.dumps(data, ensure_ascii=False), event=name)
        with self._lock:
            self.out.write(b"%x\r\n%s\r\n" % (len(event), event))
            self.out.flush()

    def close(self) -> None:
        with self._lock:
            self.out.write(b"0\r\n\r\n")
            self.out.flush()


def _whole_wav(clip: bytes) -> bytes:
    """A sentence's clip with its WAV sizes written in; other audio as it came
    (the browser decodes mp3 and others itself)."""
    try:
        wav = parse_wav(clip)
    except ValueError:
        return clip
    return pcm_to_wav(
        wav.data,
        sample_rate=wav.sample_rate,
        channels=wav.channels,
        bits_per_sample=wav.bits_per_sample,
    )


def _ms(value: Optional[float]) -> Optional[float]:
    return None if value is None else round(value, 1)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def add_web_options(talk: argparse.ArgumentParser) -> None:
    """Give ``rawchat talk`` its ``--web``, ``--host`` and ``--port``.

    With ``--web`` the command serves the page instead of taking a turn
    from audio files; the talk options (``--model``, ``--system``,
    ``--voice``, ``--language``, the transcription and speech models) apply
    to every page's turns.
    """
    group = talk.add_argument_group("a page to talk to (--web)")
    group.add_argument(
        "--web", action="store_true", help="serve a page that records and plays (no IN files)"
    )
    group.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    group.add_argument("--port", type=int, default=8766, help="port (8766; 0 picks a free one)")
    talk.set_defaults(voice_command=_web_or(talk.get_default("voice_command")))


def _web_or(command: Callable[..., int]) -> Callable[..., int]:
    """``talk``'s command, or with ``--web`` the page's server."""

    def talk_or_serve(args: argparse.Namespace, client_for: Any, settings_for: Any) -> int:
        if not args.web:
            return command(args, client_for, settings_for)
        if args.files or args.out:
            raise ConfigError(
                "--web takes its audio from the page, not from IN files or --out",
                hint="rawchat talk --web",
            )
        return _serve_web(args, client_for)

    return talk_or_serve


def _serve_web(args: argparse.Namespace, client_for: Callable[[], Any]) -> int:
    from ..conversation.conversation import Conversation
    from .voice import talk_options

    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port} is not a port number (0 to 65535)")
    options = talk_options(args)
    with client_for() as client:
        try:
            server = TalkServer(
                client,
                (args.host, args.port),
                talk_options=options,
                new_conversation=lambda: Conversation(system=args.system),
                log=sys.stderr,
            )
        except OSError as exc:  # the port is taken, or the address is not this host's
            raise ConfigError(
                f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc} "
                "(--port 0 picks a free port)"
            ) from exc
        if args.host not in ("127.0.0.1", "localhost", "::1"):
            print(
                "rawchat talk: browsers allow the microphone only on localhost or HTTPS; "
                "from another machine, tunnel the port (ssh -L) and open it as localhost",
                file=sys.stderr,
            )
        run(server, sys.stderr)
    return EXIT_OK


def run(server: TalkServer, out: IO[str] = sys.stderr) -> None:
    """Serve until Ctrl-C, then close the socket."""
    print(f"rawchat talk: open {server.url} in a browser (Ctrl-C stops it)", file=out, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print(file=out)
    finally:
        server.server_close()
