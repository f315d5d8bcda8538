"""The talk loop: stage order, overlap, what the conversation keeps, the record of times."""

from __future__ import annotations

import itertools
import threading

import pytest

import rawchat
from rawchat.client.clock import Clock
from rawchat.conversation.talk import TalkEvent, join_wav, talk, talk_naive
from rawchat.errors import BadRequestError, IncompleteStreamError
from rawchat.protocol.audio import parse_wav, pcm_to_wav, sentences
from rawchat.simulator import Simulator

from ..conftest import KEY

QUESTION = "What is SSE?"
ANSWER = (
    "Hello from the rawchat simulator. I received 1 message (about 11 prompt tokens); "
    'your last message was: "What is SSE?".'
)
#: Generous: a gate that is never opened fails the test instead of hanging it.
PATIENCE = 10


@pytest.fixture
def paced():
    """A simulator whose streams take a while: 10 ms between chunks."""
    with Simulator(chunk_interval=0.01) as simulator:
        yield simulator


@pytest.fixture
def client(paced):
    with rawchat.Client(KEY, paced.base_url, model="gpt-4o-mini") as c:
        yield c


@pytest.fixture
def question(client):
    """The question as the simulator speaks it: it transcribes its own speech back."""
    with client.speak(QUESTION, model="gpt-4o-mini-tts", voice="alloy", response_format="wav") as s:
        return b"".join(s.iter_bytes())


class Gate:
    """Holds the answer's reading, once a sentence of it is complete, until
    the speech thread has recorded ``stage``."""

    def __init__(self, stage: str) -> None:
        self.stage = stage
        self.seen = threading.Event()
        self.text = ""

    def on_event(self, event: TalkEvent) -> None:
        if event.stage == self.stage:
            self.seen.set()

    def on_text(self, text: str) -> None:
        self.text += text
        if sentences(self.text)[0]:
            assert self.seen.wait(PATIENCE), f"no {self.stage} while the answer was streaming"


def test_speech_is_requested_and_heard_while_the_answer_is_still_streaming(client, question):
    # The answer's reading waits for the first audio: a loop that spoke only
    # once the answer was whole would never get there.
    gate = Gate("first_audio")
    turn = talk(
        client, rawchat.Conversation(), question, on_event=gate.on_event, on_text=gate.on_text
    )
    stages = turn.stages()
    assert stages[:2] == ["transcribed", "first_token"]
    assert stages.index("speech_requested 0") < stages.index("answer_complete")
    assert stages.index("first_audio 0") < stages.index("answer_complete")
    assert stages[-1] == "done"
    assert turn.first_audio_ms < turn.answer_ms <= turn.total_ms
    assert turn.reply_latency_ms == turn.first_audio_ms


def test_each_sentence_is_spoken_in_order_and_the_clips_join_into_the_answer(client, question):
    heard = []
    turn = talk(
        client, rawchat.Conversation(), question, on_audio=lambda i, b: heard.append((i, b))
    )
    assert (turn.transcript, turn.answer) == (QUESTION, ANSWER)
    assert turn.sentences == (
        "Hello from the rawchat simulator.",
        'I received 1 message (about 11 prompt tokens); your last message was: "What is SSE?".',
    )
    indexes = [index for index, _ in heard]
    assert indexes == sorted(indexes) and set(indexes) == {0, 1}
    assert tuple(b"".join(b for i, b in heard if i == n) for n in range(2)) == turn.audio
    reply = join_wav(turn.audio)
    assert client.transcribe(reply, model="whisper-1", filename="reply.wav").text == ANSWER
    requested = [e for e in turn.events if e.stage == "speech_requested"]
    assert [(e.index, e.text) for e in requested] == list(enumerate(turn.sentences))


def test_the_naive_turn_is_strictly_serial(client, question):
    turn = talk_naive(client, rawchat.Conversation(), question)
    assert turn.stages() == [
        "transcribed",
        "first_token",
        "answer_complete",
        "speech_requested 0",
        "first_audio 0",
        "speech_done 0",
        "done",
    ]
    assert turn.sentences == (ANSWER,)
    assert parse_wav(turn.audio[0]).info["ICMT"] == ANSWER


def test_the_conversation_keeps_both_turns(client, question):
    conversation = rawchat.Conversation()
    first = talk(client, conversation, question)
    second = talk_naive(client, conversation, question)
    assert second.answer == (
        "Hello from the rawchat simulator. I received 3 messages (about 52 prompt tokens); "
        'your last message was: "What is SSE?".'
    )
    assert conversation.messages == [
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": first.answer},
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": second.answer},
    ]


def test_a_stream_broken_mid_answer_leaves_the_conversation_unchanged(client, question):
    conversation = rawchat.Conversation()
    fault = {"X-Rawchat-Fault": "truncate=12"}
    with pytest.raises(IncompleteStreamError):
        talk(client, conversation, question, extra_headers=fault)
    assert conversation.messages == []
    # The conversation is free again, and the next turn is the first.
    assert talk(client, conversation, question).answer == ANSWER


def test_speech_failing_while_the_answer_streams_stops_the_turn_uncommitted(client, question):
    conversation = rawchat.Conversation()
    gate = Gate("speech_failed")
    with pytest.raises(BadRequestError, match="Invalid voice 'nobody'"):
        talk(
            client, conversation, question, voice="nobody", on_event=gate.on_event,
            on_text=gate.on_text,
        )  # fmt: skip
    assert conversation.messages == []


def test_a_failed_transcription_leaves_the_conversation_unchanged(client, question):
    conversation = rawchat.Conversation()
    with pytest.raises(BadRequestError, match="does not support transcription"):
        talk(client, conversation, question, transcribe_model="gpt-4o-mini")
    assert conversation.messages == []


def test_times_come_from_the_clock_given():
    # One second a reading: the naive turn reads the clock once per stage, in one thread.
    ticks = itertools.count()
    clock = Clock(monotonic=lambda: float(next(ticks)))
    with Simulator() as sim, rawchat.Client(KEY, sim.base_url, model="gpt-4o-mini") as client:
        with client.speak(QUESTION, model="tts-1", voice="alloy", response_format="wav") as s:
            question = b"".join(s.iter_bytes())
        turn = talk_naive(client, rawchat.Conversation(), question, clock=clock)
    assert [(e.stage, e.ms) for e in turn.events] == [
        ("transcribed", 1000.0),
        ("first_token", 2000.0),
        ("answer_complete", 3000.0),
        ("speech_requested", 4000.0),
        ("first_audio", 5000.0),
        ("speech_done", 6000.0),
        ("done", 7000.0),
    ]
    assert (turn.transcribed_ms, turn.first_token_ms, turn.answer_ms) == (1000.0, 2000.0, 3000.0)
    assert (turn.first_audio_ms, turn.total_ms, turn.reply_latency_ms) == (5000.0, 7000.0, 5000.0)


def test_joined_clips_keep_shared_tags_once_and_join_the_others():
    one = pcm_to_wav(b"\x01\x00", info={"ISFT": "sim", "ICMT": "Hello."})
    two = pcm_to_wav(b"\x02\x00\x03\x00", info={"ISFT": "sim", "ICMT": "Bye."})
    joined = parse_wav(join_wav([one, two]))
    assert joined.data == b"\x01\x00\x02\x00\x03\x00"
    assert dict(joined.info) == {"ISFT": "sim", "ICMT": "Hello. Bye."}
    assert (joined.sample_rate, joined.channels, joined.bits_per_sample) == (24000, 1, 16)


def test_clips_of_different_formats_do_not_join():
    stereo = pcm_to_wav(b"\0\0\0\0", channels=2)
    with pytest.raises(ValueError, match="different sample formats"):
        join_wav([pcm_to_wav(b"\0\0"), stereo])
