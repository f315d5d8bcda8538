"""``rawchat transcribe``, ``speak`` and ``talk``: the audio endpoints from a terminal.

    rawchat transcribe question.wav                POST /audio/transcriptions: the text
    rawchat speak "Hello!" --out hello.wav         POST /audio/speech: the audio, to a file
    rawchat talk question.wav --out reply.wav      one spoken turn, its stage latencies in ms

The endpoints are https://platform.openai.com/docs/api-reference/audio;
the talk loop is ``rawchat.conversation.talk``. ``--curl`` prints the
request as a curl command instead of sending it (the upload as ``-F``
parts, the key as ``$OPENAI_API_KEY``). The models default to OpenAI's
small ones, or ``RAWCHAT_TRANSCRIBE_MODEL`` and ``RAWCHAT_SPEECH_MODEL``
when set; with no key and no base URL the commands use the built-in
simulator, whose speech carries its text, so what ``speak`` wrote
``transcribe`` reads back.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import IO, Any, Callable, Dict, List, Optional, Sequence, Tuple

from ..client.audio import read_upload, transcription_request
from ..client.client import Client
from ..conversation.conversation import Conversation
from ..conversation.talk import (
    SPEECH_MODEL,
    TRANSCRIBE_MODEL,
    VOICE,
    TalkEvent,
    TalkTurn,
    join_wav,
    talk,
)
from ..errors import InvalidRequestError, InvalidResponseError
from ..protocol.audio import SPEECH_FORMATS, build_speech_request, parse_wav
from ..protocol.settings import Settings
from .console import EXIT_OK

__all__ = ["add_voice_commands", "latency_table", "talk_options"]

#: How a command reaches the API: ``client()`` is the configured client
#: (or the simulator's, said on stderr), ``settings()`` what a ``--curl``
#: command names. The main command makes both.
ClientFor = Callable[[], Client]
SettingsFor = Callable[[], Settings]

#: The formats ``transcribe --format`` offers (diarized_json needs a diarizing model).
FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
_STAGES = (
    ("transcribed", "transcribed_ms"),
    ("first token", "first_token_ms"),
    ("first audio", "first_audio_ms"),
    ("answer done", "answer_ms"),
    ("last audio", "total_ms"),
)


def add_voice_commands(
    command: Callable[[str, str], argparse.ArgumentParser], run: Callable[..., int]
) -> Dict[str, argparse.ArgumentParser]:
    """Add ``transcribe``, ``speak`` and ``talk``; return their parsers by name.

    ``command(name, help)`` makes a subcommand's parser; ``run`` is what the
    main command calls, which calls ``args.voice_command(args, client, settings)``.
    """
    transcribe = command("transcribe", "audio to text (POST /audio/transcriptions)")
    transcribe.add_argument("file", help="the audio file (flac, m4a, mp3, mp4, ogg, wav, webm...)")
    transcribe.add_argument(
        "--format",
        choices=FORMATS,
        help="the answer's format, printed as it came (default: the transcript's text)",
    )
    transcribe.add_argument("--stream", action="store_true", help="print the text as it arrives")
    transcribe.add_argument("--language", help="the audio's language, ISO-639-1 (en, zh, fr...)")
    transcribe.add_argument("--prompt", help="text to guide the style or spell names")
    transcribe.add_argument(
        "-m",
        "--model",
        help=f"transcription model (RAWCHAT_TRANSCRIBE_MODEL or {TRANSCRIBE_MODEL})",
    )
    transcribe.add_argument("--curl", action="store_true", help="print the curl command instead")
    transcribe.set_defaults(run=run, voice_command=_transcribe)

    speak = command("speak", "text to audio (POST /audio/speech)")
    speak.add_argument("text", help="what to say; - reads stdin")
    speak.add_argument("--out", metavar="FILE", help="where to write the audio (required)")
    speak.add_argument("--voice", default=VOICE, help=f"the voice ({VOICE})")
    speak.add_argument(
        "--format",
        choices=SPEECH_FORMATS,
        help="audio format (default: --out's extension if it names one, else the server's)",
    )
    speak.add_argument(
        "--stream-format",
        choices=("audio", "sse"),
        help="the audio itself (audio) or base64 events (sse) on the wire",
    )
    speak.add_argument("--instructions", help="how to say it (gpt-4o-mini-tts)")
    speak.add_argument("--speed", type=float, help="0.25 to 4 (1)")
    speak.add_argument(
        "-m", "--model", help=f"speech model (RAWCHAT_SPEECH_MODEL or {SPEECH_MODEL})"
    )
    speak.add_argument("--curl", action="store_true", help="print the curl command instead")
    speak.set_defaults(run=run, voice_command=_speak)

    talk = command("talk", "a spoken turn: transcribe, answer, speak; the latency of each stage")
    # Both needed, checked when the command runs: another mode of talk may need neither.
    talk.add_argument("files", nargs="*", metavar="IN", help="the question as audio; one per turn")
    talk.add_argument(
        "--out", metavar="FILE", help="the reply as WAV, required (FILE-2.wav... for more turns)"
    )
    talk.add_argument(
        "--compare", action="store_true", help="also take each turn serially, and show both"
    )
    talk.add_argument(
        "--turns", type=int, help="turns to take, going round the files (one per file)"
    )
    talk.add_argument("-m", "--model", help="chat model (default: RAWCHAT_MODEL or the profile's)")
    talk.add_argument("-s", "--system", help="system prompt")
    talk.add_argument("--voice", default=VOICE, help=f"the reply's voice ({VOICE})")
    talk.add_argument("--language", help="the question's language, ISO-639-1")
    talk.add_argument(
        "--transcribe-model", help=f"(RAWCHAT_TRANSCRIBE_MODEL or {TRANSCRIBE_MODEL})"
    )
    talk.add_argument("--speech-model", help=f"(RAWCHAT_SPEECH_MODEL or {SPEECH_MODEL})")
    talk.set_defaults(run=run, voice_command=_talk)
    return {"transcribe": transcribe, "speak": speak, "talk": talk}


def _transcribe_model(given: Optional[str]) -> str:
    return given or os.environ.get("RAWCHAT_TRANSCRIBE_MODEL", "").strip() or TRANSCRIBE_MODEL


def _speech_model(given: Optional[str]) -> str:
    return given or os.environ.get("RAWCHAT_SPEECH_MODEL", "").strip() or SPEECH_MODEL


# -- transcribe -----------------------------------------------------------------------


def _transcribe(args: argparse.Namespace, client_for: ClientFor, settings_for: SettingsFor) -> int:
    params: Dict[str, Any] = {"model": _transcribe_model(args.model)}
    for name in ("language", "prompt"):
        if getattr(args, name):
            params[name] = getattr(args, name)
    if args.format:
        params["response_format"] = args.format
    if args.curl:
        request = transcription_request(settings_for(), args.file, stream=args.stream, **params)
        print(request.to_curl(key_variable=settings_for().key_variable, files={"file": args.file}))
        return EXIT_OK
    # Read and checked before a client (or the simulator) is started.
    audio, name = read_upload(args.file)
    with client_for() as client:
        if args.stream:
            with client.transcribe_stream(audio, filename=name, **params) as stream:
                typewriter = _Typewriter(sys.stdout, started=True)
                try:
                    for text in stream.text():
                        typewriter.text(text)
                finally:
                    typewriter.end()
                stream.transcription  # noqa: B018 -- reads to the end, or raises
            return EXIT_OK
        transcription = client.transcribe(audio, filename=name, **params)
    if args.format in ("json", "verbose_json"):
        print(json.dumps(transcription.raw, indent=2, ensure_ascii=False))
    elif args.format in ("text", "srt", "vtt"):
        body = transcription.body
        sys.stdout.write(body if body.endswith("\n") else body + "\n")
    else:
        print(transcription.text)
    return EXIT_OK


# -- speak --------------------------------------------------------------------------------


def _speak(args: argparse.Namespace, client_for: ClientFor, settings_for: SettingsFor) -> int:
    text = _read_text() if args.text == "-" else args.text
    if not args.out and not args.curl:
        raise InvalidRequestError(
            "where should the audio go?", hint='rawchat speak "Hello!" --out hello.wav'
        )
    params: Dict[str, Any] = {"model": _speech_model(args.model), "voice": args.voice}
    extension = os.path.splitext(args.out or "")[1][1:].lower()
    response_format = args.format or (extension if extension in SPEECH_FORMATS else None)
    if response_format:
        params["response_format"] = response_format
    for name in ("stream_format", "instructions", "speed"):
        if getattr(args, name) is not None:
            params[name] = getattr(args, name)
    if args.curl:
        settings = settings_for()
        command = build_speech_request(settings, text, **params).to_curl(
            key_variable=settings.key_variable
        )
        if args.out and args.stream_format != "sse":  # SSE is events to decode, not audio
            command += f" \\\n  --output {_shell_word(args.out)}"
        print(command)
        return EXIT_OK
    with client_for() as client, client.speak(text, **params) as audio:
        speech = audio.save(args.out)
    print(f"{args.out}: {speech.audio_bytes:,} bytes of {speech.content_type or 'audio'}")
    return EXIT_OK


def _read_text() -> str:
    """The text to speak, piped in (UTF-8, without a byte-order mark or the last newline)."""
    stream = getattr(sys.stdin, "buffer", None)
    try:
        text = sys.stdin.read() if stream is None else stream.read().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequestError("the input is not UTF-8") from exc
    return text.lstrip("\ufeff").rstrip("\r\n")


def _shell_word(text: str) -> str:
    safe = text and all(c.isalnum() or c in "@%+=:,./-_" for c in text)
    return text if safe else "'" + text.replace("'", "'\"'\"'") + "'"


# -- talk -------------------------------------------------------------------------------------


def _talk(args: argparse.Namespace, client_for: ClientFor, settings_for: SettingsFor) -> int:
    if not args.files or not args.out:
        missing = "the question's audio" if not args.files else "--out, where the reply goes"
        raise InvalidRequestError(
            f"talk needs {missing}", hint="rawchat talk question.wav --out reply.wav"
        )
    turns = len(args.files) if args.turns is None else args.turns
    if turns < 1:
        raise InvalidRequestError(f"--turns {turns}: take at least one", hint="--turns 3")
    # Every file is read and checked before the first request.
    recordings = [read_upload(path) for path in args.files]
    options = talk_options(args)
    rows: List[Tuple[str, TalkTurn]] = []
    with client_for() as client:
        overlapped = Conversation(system=args.system)
        serial = Conversation(system=args.system) if args.compare else None
        for number in range(turns):
            audio, name = recordings[number % len(recordings)]
            label = "" if turns == 1 else f"{number + 1} "
            typewriter = _Typewriter(sys.stdout)
            try:
                turn = talk(
                    client, overlapped, audio, filename=name, on_event=typewriter.event,
                    on_text=typewriter.text, **options,
                )  # fmt: skip
            finally:
                typewriter.end()
            out = _reply_path(args.out, number, turns)
            _write_reply(out, turn)
            rows.append((label + "overlapped", turn))
            if serial is not None:
                naive = talk(client, serial, audio, filename=name, overlap=False, **options)
                rows.append((label + "naive", naive))
    print()
    print(latency_table(rows))
    return EXIT_OK


def talk_options(args: argparse.Namespace) -> Dict[str, Any]:
    """The keyword arguments of ``talk()`` that the talk command's options give."""
    options: Dict[str, Any] = {
        "transcribe_model": _transcribe_model(args.transcribe_model),
        "speech_model": _speech_model(args.speech_model),
        "voice": args.voice,
        "model": args.model,
    }
    if args.language:
        options["transcribe_params"] = {"language": args.language}
    return options


class _Typewriter:
    """Text as it arrives, and a newline at the end if any line was begun: a
    talk turn's transcript once it is in, then its answer as it streams."""

    def __init__(self, out: IO[str], *, started: bool = False) -> None:
        self.out = out
        self.started = started

    def event(self, event: TalkEvent) -> None:
        if event.stage == "transcribed":
            self.out.write(f"you: {event.text}\nassistant: ")
            self.out.flush()
            self.started = True

    def text(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def end(self) -> None:
        if self.started:
            self.out.write("\n")
            self.out.flush()


def _reply_path(out: str, number: int, turns: int) -> str:
    """``out`` for one turn; ``reply-1.wav``, ``reply-2.wav``... for several."""
    if turns == 1:
        return out
    stem, extension = os.path.splitext(out)
    return f"{stem}-{number + 1}{extension or '.wav'}"


def _write_reply(path: str, turn: TalkTurn) -> None:
    if not turn.audio:
        print(f"({path} not written: the answer has no text to speak)")
        return
    try:
        reply = join_wav(turn.audio)
    except ValueError as exc:
        raise InvalidResponseError(
            f"the speech is not the WAV audio asked for ({exc})",
            hint="the server ignored response_format=wav; try another speech model",
        ) from exc
    with open(path, "wb") as file:
        file.write(reply)
    seconds = parse_wav(reply).duration
    clips = len(turn.audio)
    print(f"{path}: {seconds:.1f} s of audio, {clips} sentence{'s' if clips != 1 else ''}")


def latency_table(rows: Sequence[Tuple[str, TalkTurn]]) -> str:
    """The stage times of each turn, one row each, in ms since the user's audio ended."""
    width = max([len("ms")] + [len(label) for label, _ in rows])
    head = "ms".ljust(width) + "".join(f"  {name:>11}" for name, _ in _STAGES)
    lines = [head]
    for label, turn in rows:
        cells = [getattr(turn, field) for _, field in _STAGES]
        lines.append(label.ljust(width) + "".join(f"  {_ms(cell):>11}" for cell in cells))
    lines.append("reply latency = first audio: from the end of your audio to the first sound")
    return "\n".join(lines)


def _ms(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:,.0f}"
