"""The talk loop: a spoken question in, a spoken answer out, one conversation turn.

Three calls make one turn: ``POST /audio/transcriptions`` turns the
user's audio into text
(https://platform.openai.com/docs/api-reference/audio/createTranscription),
a streamed ``POST /chat/completions`` answers it through a
``Conversation``, and ``POST /audio/speech`` speaks the answer
(https://platform.openai.com/docs/api-reference/audio/createSpeech). What
the user waits for is the first sound of the reply; done one after the
other, that wait is the sum of all three calls, the whole answer's speech
included. OpenAI's voice-agent guide
(https://platform.openai.com/docs/guides/voice-agents) chains them with
overlap instead, and that is what ``talk`` does::

    transcribe  |=====|
    chat              |--=--=--=--=--=--=--|        (each = a complete sentence)
    speech               |~~~~| |~~~~~|  |~~~~~| |~~|
                             ^ the reply starts here, while the model still writes

Each sentence (``rawchat.protocol.audio.sentences`` cuts them) is sent for
speech as soon as it is complete, from a worker thread, while the chat
stream goes on in the calling thread. The worker speaks the sentences one
at a time, in order: audio comes faster than it plays, so one request at a
time keeps up, and the clips come out in the order they are to be played.
``talk_naive`` is the same turn done serially (the whole transcript, then
the whole answer, then the whole answer's speech), to measure against.

The conversation's rule stands: the turn is committed when the answer has
arrived whole, and nothing changes on a failed transcription or a broken
answer. A speech request that fails while the answer is still streaming
stops the turn before it is committed (the failure is seen at the next
piece of the answer); one that fails after the answer was whole leaves
the turn committed (the model did answer) and is raised.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, List, Mapping, Optional, Sequence, Tuple

from ..client.clock import Clock
from ..errors import InvalidRequestError
from ..protocol.audio import parse_wav, pcm_to_wav, sentences
from ..protocol.completion import Completion

if TYPE_CHECKING:  # pragma: no cover
    from ..client.client import Client
    from .conversation import Conversation

__all__ = [
    "SPEECH_MODEL",
    "TRANSCRIBE_MODEL",
    "VOICE",
    "TalkEvent",
    "TalkTurn",
    "join_wav",
    "talk",
    "talk_naive",
]

#: OpenAI's defaults for a talk loop: the small transcription and speech models.
TRANSCRIBE_MODEL = "gpt-4o-mini-transcribe"
SPEECH_MODEL = "gpt-4o-mini-tts"
VOICE = "alloy"

#: The stages a turn records, in the order they first happen when all goes well.
STAGES = (
    "transcribed",  # the transcript is in (text: the transcript)
    "first_token",  # the answer's first text
    "speech_requested",  # a sentence goes to speech (index, text: the sentence)
    "first_audio",  # the reply's first audio byte (index 0)
    "speech_done",  # a sentence's audio is whole (index)
    "speech_failed",  # a sentence's speech failed (index, text: the error)
    "answer_complete",  # the answer arrived whole and is committed (text: the answer)
    "done",  # the last audio byte is in
)


@dataclass(frozen=True)
class TalkEvent:
    """One moment of a turn.

    ``stage``: one of ``STAGES``. ``ms``: milliseconds since the turn
    started (on the client's clock). ``index``: the sentence, for the speech
    stages. ``text``: the transcript, the sentence, the answer or the error,
    as the stage says.
    """

    stage: str
    ms: float
    index: Optional[int] = None
    text: str = ""


@dataclass(frozen=True)
class TalkTurn:
    """One spoken turn: what was heard, answered and said, and when.

    Times are milliseconds since the turn started, which is when the user's
    audio was complete (the recording is handed over whole):

    ``transcribed_ms``  upload and transcription done
    ``first_token_ms``  the answer's first text (``None``: an empty answer)
    ``answer_ms``       the answer whole, and committed to the conversation
    ``first_audio_ms``  the reply's first audio byte (``None``: nothing to say)
    ``total_ms``        the last audio byte

    ``sentences`` were spoken one request each, ``audio`` holds each one's
    clip in the same order (``join_wav`` makes one file of WAV clips).
    ``events`` are the stages as they happened, in order.
    """

    transcript: str
    answer: str
    sentences: Tuple[str, ...]
    audio: Tuple[bytes, ...] = field(repr=False)
    transcribed_ms: float
    first_token_ms: Optional[float]
    answer_ms: float
    first_audio_ms: Optional[float]
    total_ms: float
    events: Tuple[TalkEvent, ...] = field(repr=False)
    completion: Optional[Completion] = field(default=None, repr=False)

    @property
    def reply_latency_ms(self) -> Optional[float]:
        """From the end of the user's audio to the first sound of the reply."""
        return self.first_audio_ms

    def stages(self) -> List[str]:
        """The stage of each event, in order (``index`` appended for speech stages)."""
        return [e.stage if e.index is None else f"{e.stage} {e.index}" for e in self.events]


def talk(
    client: Client,
    conversation: Conversation,
    audio: bytes,
    *,
    filename: str = "audio.wav",
    transcribe_model: str = TRANSCRIBE_MODEL,
    model: Optional[str] = None,
    speech_model: str = SPEECH_MODEL,
    voice: Any = VOICE,
    response_format: str = "wav",
    transcribe_params: Optional[Mapping[str, Any]] = None,
    speech_params: Optional[Mapping[str, Any]] = None,
    on_text: Optional[Callable[[str], None]] = None,
    on_audio: Optional[Callable[[int, bytes], None]] = None,
    on_event: Optional[Callable[[TalkEvent], None]] = None,
    clock: Optional[Clock] = None,
    overlap: bool = True,
    **params: Any,
) -> TalkTurn:
    """Hear ``audio``, answer it in ``conversation``, speak the answer sentence by sentence.

    ``audio``: the user's recording, whole; ``filename`` its name (the API
    reads the format from the extension). ``transcribe_model``,
    ``model`` (the chat model: default the conversation's, else the
    client's), ``speech_model``, ``voice`` and ``response_format`` (of
    each sentence's clip) choose the three calls; ``transcribe_params``
    (``language``, ``prompt``...) and ``speech_params`` (``instructions``,
    ``speed``...) go to theirs, ``params`` to the chat request.

    The answer streams in the calling thread; each complete sentence is
    spoken by a worker thread while the model still writes, one request at
    a time, in order. ``overlap=False`` is ``talk_naive``. Callbacks, for a
    player or a live display:

    ``on_text(delta)``          each piece of the answer (calling thread)
    ``on_audio(index, chunk)``  audio bytes of sentence ``index`` as they
                                arrive; sentence ``index`` + 1 starts after
                                sentence ``index`` is whole (speech thread)
    ``on_event(event)``         each ``TalkEvent`` as it is recorded (the
                                thread the stage happened in)

    A callback that raises fails the turn as a failed call would. Times
    come from ``clock`` (default: the client's), so a test can give its own.
    Errors are the client's, raised as they are; see the module docstring
    for what the conversation keeps when one happens.
    """
    timeline = _Timeline(clock or client.clock, on_event)
    transcription = client.transcribe(
        audio, model=transcribe_model, filename=filename, **dict(transcribe_params or {})
    )
    transcript = transcription.text.strip()
    if not transcript:
        raise InvalidRequestError(
            f"the transcript of {filename!r} is empty: there is nothing to answer",
            hint="check that the recording holds speech (and its language=..., if given)",
        )
    timeline.mark("transcribed", text=transcript)
    speaker = _Speaker(
        client, timeline, speech_model, voice, response_format, speech_params, on_audio
    )
    if not overlap:
        completion = _answer(conversation, client, transcript, model, params, timeline, on_text)
        if (completion.content or "").strip():
            speaker.speak_now(completion.content.strip())
        return timeline.turn(transcript, speaker, completion)
    speaker.start()
    try:
        completion = _answer(
            conversation, client, transcript, model, params, timeline, on_text, speaker
        )
        speaker.finish()
    finally:
        speaker.stop()
    return timeline.turn(transcript, speaker, completion)


def talk_naive(
    client: Client, conversation: Conversation, audio: bytes, **options: Any
) -> TalkTurn:
    """``talk``'s turn done serially, with the same arguments: the whole
    transcript, then the whole answer, then one speech request for all of it.

    The answer is streamed as in ``talk`` (so ``first_token_ms`` means the
    same, and a server that only paces streamed answers paces both), but
    nothing is spoken before it is whole. The audio is still handed to
    ``on_audio`` as it arrives (from the calling thread here), so the
    comparison with ``talk`` measures the overlap and nothing else.
    """
    return talk(client, conversation, audio, overlap=False, **options)


def join_wav(clips: Sequence[bytes]) -> bytes:
    """One WAV file of WAV ``clips`` played one after another.

    The clips must share one sample format. A ``LIST/INFO`` tag the same in
    every clip is kept once; one that differs (a comment holding each
    clip's text) becomes the clips' values joined with spaces.
    ``ValueError`` if a clip is not a PCM WAV file or the formats differ.
    """
    wavs = [parse_wav(clip) for clip in clips]
    if not wavs:
        raise ValueError("no clips to join")
    formats = {(w.sample_rate, w.channels, w.bits_per_sample) for w in wavs}
    if len(formats) > 1:
        raise ValueError(f"clips of different sample formats: {sorted(formats)}")
    tags = {}
    for name in dict.fromkeys(name for w in wavs for name in w.info):
        values = [w.info[name] for w in wavs if name in w.info]
        same = len(values) == len(wavs) and len(set(values)) == 1
        tags[name] = values[0] if same else " ".join(values)
    first = wavs[0]
    return pcm_to_wav(
        b"".join(w.data for w in wavs),
        info=tags or None,
        sample_rate=first.sample_rate,
        channels=first.channels,
        bits_per_sample=first.bits_per_sample,
    )


# -- the pieces of a turn ------------------------------------------------------------


class _Timeline:
    """The turn's clock and its record of events, written from both threads."""

    def __init__(self, clock: Clock, on_event: Optional[Callable[[TalkEvent], None]]) -> None:
        self.clock = clock
        self.on_event = on_event
        self.start = clock.monotonic()
        self.events: List[TalkEvent] = []
        self._lock = threading.Lock()

    def mark(self, stage: str, index: Optional[int] = None, text: str = "") -> TalkEvent:
        with self._lock:
            event = TalkEvent(stage, (self.clock.monotonic() - self.start) * 1000, index, text)
            self.events.append(event)
        # Outside the lock: a callback may wait for the other thread's next event.
        if self.on_event is not None:
            self.on_event(event)
        return event

    def at(self, stage: str) -> Optional[float]:
        """When ``stage`` first happened, or ``None``."""
        with self._lock:
            return next((e.ms for e in self.events if e.stage == stage), None)

    def turn(self, transcript: str, speaker: _Speaker, completion: Completion) -> TalkTurn:
        self.mark("done")
        at = self.at
        return TalkTurn(
            transcript=transcript,
            answer=completion.content or "",
            sentences=tuple(speaker.sentences),
            audio=tuple(speaker.clips),
            transcribed_ms=at("transcribed") or 0.0,
            first_token_ms=at("first_token"),
            answer_ms=at("answer_complete") or 0.0,
            first_audio_ms=at("first_audio"),
            total_ms=at("done") or 0.0,
            events=tuple(self.events),
            completion=completion,
        )


def _answer(
    conversation: Conversation,
    client: Client,
    transcript: str,
    model: Optional[str],
    params: Mapping[str, Any],
    timeline: _Timeline,
    on_text: Optional[Callable[[str], None]],
    speaker: Optional[_Speaker] = None,
) -> Completion:
    """The answer to ``transcript``, streamed through the conversation; with
    a ``speaker``, each sentence goes to it as soon as it is complete."""
    with conversation.stream(client, transcript, model=model, **params) as stream:
        pending, first = "", True
        for delta in stream.text():
            if not delta:
                continue
            if first:
                timeline.mark("first_token")
                first = False
            if speaker is not None:
                done, pending = sentences(pending + delta)
                for sentence in done:
                    speaker.say(sentence)
            if on_text is not None:
                on_text(delta)
            if speaker is not None:
                # Leaving the block before the end closes the stream: no commit.
                speaker.raise_failure()
        completion = stream.completion
    timeline.mark("answer_complete", text=completion.content or "")
    if speaker is not None and pending.strip():
        speaker.say(pending.strip())  # the last sentence, unpunctuated
    return completion


class _Speaker:
    """Speaks sentences one request at a time, in order: on a worker thread
    (``start``, ``say``, ``finish``) or in the calling one (``speak_now``)."""

    def __init__(
        self,
        client: Client,
        timeline: _Timeline,
        model: str,
        voice: Any,
        response_format: str,
        params: Optional[Mapping[str, Any]],
        on_audio: Optional[Callable[[int, bytes], None]],
    ) -> None:
        self.client = client
        self.timeline = timeline
        self.params = dict(params or {}, model=model, voice=voice, response_format=response_format)
        self.on_audio = on_audio
        self.sentences: List[str] = []
        self.clips: List[bytes] = []
        self.failure: Optional[BaseException] = None
        self._queue: queue.Queue = queue.Queue()
        self._stopped = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._work, name="rawchat-talk-speech", daemon=True)
        self._thread.start()

    def say(self, sentence: str) -> None:
        """Queue ``sentence`` for speech, after those queued before it."""
        self.sentences.append(sentence)
        self._queue.put((len(self.sentences) - 1, sentence))

    def raise_failure(self) -> None:
        if self.failure is not None:
            raise self.failure

    def finish(self) -> None:
        """Wait until every queued sentence is spoken; raise a speech failure."""
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join()
        self.raise_failure()

    def stop(self) -> None:
        """Abandon what is left (after a failure): stop reading audio, end the thread."""
        self._stopped.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join()

    def speak_now(self, sentence: str) -> None:
        self.sentences.append(sentence)
        self.clips.append(self._spoken(len(self.sentences) - 1, sentence))

    def _work(self) -> None:
        while not self._stopped.is_set():
            item = self._queue.get()
            if item is None:
                return
            index, sentence = item
            try:
                self.clips.append(self._spoken(index, sentence))
            except BaseException as exc:  # handed to the calling thread, raised there
                self.failure = exc
                self.timeline.mark("speech_failed", index, text=str(exc))
                return

    def _spoken(self, index: int, sentence: str) -> bytes:
        """``sentence``'s audio, each chunk handed to ``on_audio`` as it arrives."""
        timeline = self.timeline
        timeline.mark("speech_requested", index, text=sentence)
        parts: List[bytes] = []
        with self.client.speak(sentence, **self.params) as speech:
            for chunk in speech.iter_bytes():
                if self._stopped.is_set():
                    break
                if not chunk:
                    continue
                if timeline.at("first_audio") is None:
                    timeline.mark("first_audio", index)
                parts.append(chunk)
                if self.on_audio is not None:
                    self.on_audio(index, chunk)
        if not self._stopped.is_set():
            timeline.mark("speech_done", index)
        return b"".join(parts)
