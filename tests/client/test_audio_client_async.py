"""AsyncClient's audio methods: the same requests and answers as Client's, awaited."""

from __future__ import annotations

import asyncio

import pytest

import rawchat
from rawchat.client.aio import AsyncSpeechStream, AsyncTranscriptStream
from rawchat.errors import BadRequestError, IncompleteStreamError, InvalidRequestError
from rawchat.protocol.audio import MAX_UPLOAD_BYTES, AudioUsage, pcm_to_wav

from ..conftest import KEY
from .test_audio_client import BOUNDARY, PCM, SEGMENTS, TEXT, WAV, WORDS, Sent, fault, form


async def _no_wait(seconds):
    pass


def run(sim, sent, work):
    """``work(client)`` on a fresh event loop, with an AsyncClient that never waits."""

    async def main():
        clock = rawchat.Clock(asleep=_no_wait)
        async with rawchat.AsyncClient(KEY, sim.base_url, trace=sent, clock=clock) as client:
            return await work(client)

    return asyncio.run(main())


@pytest.fixture
def sent():
    return Sent()


def test_an_awaited_transcription_sends_the_same_literal_body(sim, sent):
    async def work(client):
        return await client.transcribe(
            WAV, model="whisper-1", filename="hello.wav", boundary=BOUNDARY, language="en"
        )

    done = run(sim, sent, work)
    ((request, headers),) = sent.requests
    assert request.url == sim.base_url + "/audio/transcriptions"
    assert headers["Content-Type"] == "multipart/form-data; boundary=rawchat-test"
    assert request.body == form(("model", "whisper-1"), ("language", "en"))
    assert (done.text, done.usage, done.request_id) == (
        TEXT,
        AudioUsage(type="duration", seconds=2.0),
        "req_sim000001",
    )


def test_awaited_verbose_json_srt_and_a_translation(sim, sent):
    async def work(client):
        verbose = await client.transcribe(WAV, model="whisper-1", response_format="verbose_json")
        srt = await client.transcribe(WAV, model="whisper-1", response_format="srt")
        english = await client.translate(WAV, model="whisper-1", response_format="text")
        return verbose, srt, english

    verbose, srt, english = run(sim, sent, work)
    assert (verbose.segments, verbose.duration, verbose.language) == (SEGMENTS, 1.5, "english")
    assert (srt.text, srt.segments) == (TEXT, SEGMENTS)
    assert (english.text, english.body) == (TEXT, TEXT + "\n")
    assert sent.requests[2][0].url == sim.base_url + "/audio/translations"


def test_an_awaited_retry_resends_the_identical_body(sim, sent):
    async def work(client):
        return await client.transcribe(WAV, model="whisper-1", extra_headers=fault("500"))

    assert run(sim, sent, work).text == TEXT
    first, second = sent.bodies
    assert first == second


def test_an_oversized_file_is_refused_before_anything_is_sent(sim, sent, tmp_path):
    path = tmp_path / "long.wav"
    with open(path, "wb") as out:
        out.truncate(MAX_UPLOAD_BYTES + 1)

    async def work(client):
        return await client.transcribe(path, model="whisper-1")

    with pytest.raises(InvalidRequestError, match="over the 26,214,400-byte upload limit"):
        run(sim, sent, work)
    assert sent.requests == []


def test_an_awaited_chat_model_error_carries_the_audio_hint(sim, sent):
    async def work(client):
        return await client.transcribe(WAV, model="gpt-4o-mini")

    with pytest.raises(BadRequestError) as raised:
        run(sim, sent, work)
    assert "this model does not transcribe here" in raised.value.hint


@pytest.mark.parametrize(
    "script, texts, usage",
    [
        ("", WORDS, AudioUsage("tokens", 15, 5, 20, audio_tokens=15)),
        ("chunk-shape", WORDS, AudioUsage("", 15, 5, 20)),
        ("segment-shape", ["Hello there.", " How are you?"], None),
    ],
)
def test_an_async_transcript_stream_reads_each_shape(sim, sent, script, texts, usage):
    async def work(client):
        async with client.transcribe_stream(
            WAV, model="gpt-4o-mini-transcribe", extra_headers=fault(script)
        ) as stream:
            assert isinstance(stream, AsyncTranscriptStream)
            return [text async for text in stream.text()], stream.transcription

    got, done = run(sim, sent, work)
    assert got == texts
    assert (done.text, done.usage) == (TEXT, usage)


def test_an_async_transcript_cut_before_its_end_raises_with_the_text_so_far(sim, sent):
    async def work(client):
        async with client.transcribe_stream(
            WAV, model="gpt-4o-mini-transcribe", extra_headers=fault("no-done")
        ) as stream:
            return [text async for text in stream.text()]

    with pytest.raises(IncompleteStreamError) as raised:
        run(sim, sent, work)
    assert raised.value.partial.text == TEXT


@pytest.mark.parametrize(
    "params, audio, usage",
    [
        ({"response_format": "wav"}, WAV, None),
        ({"response_format": "pcm", "stream_format": "sse"}, PCM, AudioUsage("", 5, 30, 35)),
    ],
)
def test_async_speech_hands_over_the_audio_in_both_stream_formats(sim, sent, params, audio, usage):
    async def work(client):
        async with client.speak(TEXT, model="tts-1", voice="alloy", **params) as speech:
            assert isinstance(speech, AsyncSpeechStream)
            return b"".join([piece async for piece in speech.iter_bytes()]), speech.usage

    assert run(sim, sent, work) == (audio, usage)


def test_async_save_writes_pcm_as_a_wav_file(sim, sent, tmp_path):
    path = tmp_path / "hello.wav"

    async def work(client):
        async with client.speak(TEXT, model="tts-1", voice="alloy", response_format="pcm") as a:
            return await a.save(path)

    speech = run(sim, sent, work)
    assert path.read_bytes() == pcm_to_wav(PCM)
    assert (speech.content_type, speech.audio_bytes) == ("audio/pcm", len(PCM))
    assert [p.name for p in tmp_path.iterdir()] == ["hello.wav"]


def test_async_speech_is_retried_after_a_500_with_the_same_body(sim, sent):
    async def work(client):
        async with client.speak(
            "Hi", model="tts-1", voice="alloy", extra_headers=fault("500")
        ) as speech:
            return b"".join([piece async for piece in speech.iter_bytes()]), speech.retries_taken

    audio, retries = run(sim, sent, work)
    assert (audio[:4], retries) == (b"RIFF", 1)
    assert sent.bodies[0] == sent.bodies[1]
