"""``rawchat talk --web``: the page, the event stream of a turn, and a real browser talking.

The browser test runs Debian's ``chromium`` headless with a fake
microphone fed from a WAV file. It reads the page's outcome over the
Chrome DevTools Protocol on ``--remote-debugging-pipe`` (JSON messages
ended by a NUL byte; the browser reads fd 3 and writes fd 4): no
selenium, no websocket client, only ``os.pipe``. ``--dump-dom`` was the
other stdlib route, but it needs virtual time, which does not wait for
a microphone recording in real time or for audio to play.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import select
import shutil
import subprocess
import sys
import threading
import time

import pytest
import requests

import rawchat
from rawchat.cli import talk_web
from rawchat.cli.main import main
from rawchat.cli.talk_web import PAGE, TalkServer
from rawchat.protocol.audio import parse_wav, pcm_to_wav
from rawchat.protocol.sse import SSEParser
from rawchat.simulator.audio import synthesize

from ..conftest import KEY

ONE_SECOND = pcm_to_wav(b"\0\0" * 16000, sample_rate=16000)
HEARD = (
    "This is 1.00 seconds of audio. The rawchat simulator transcribes only the speech it "
    "made itself."
)


@contextlib.contextmanager
def serving(talk_server):
    """``talk_server`` answering on a thread, closed at the end."""
    thread = threading.Thread(target=talk_server.serve_forever, daemon=True)
    thread.start()
    try:
        yield talk_server
    finally:
        talk_server.shutdown()
        talk_server.server_close()
        thread.join(10)


@pytest.fixture
def server(sim):
    with rawchat.Client(KEY, sim.base_url) as client:
        with serving(TalkServer(client, talk_options={"model": "gpt-4o-mini"})) as talk_server:
            yield talk_server


def post_turn(server, audio=ONE_SECOND, session="page1", content_type="audio/wav"):
    """The events of one ``POST /talk``, as (name, data) pairs."""
    response = requests.post(
        f"{server.url}talk?session={session}",
        data=audio,
        headers={"Content-Type": content_type},
        stream=True,
        timeout=30,
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/event-stream; charset=utf-8"
    parser, events = SSEParser(), []
    for piece in response.iter_content(chunk_size=None):
        events += parser.feed(piece)
    events += parser.close()
    return [(event.event, json.loads(event.data)) for event in events]


def test_the_page_is_served_at_the_root(server):
    response = requests.get(server.url, timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert response.content == PAGE.read_bytes()
    assert b'id="record"' in response.content


def test_a_request_naming_another_site_is_refused(server):
    # A DNS-rebinding page reaches 127.0.0.1 under its own name.
    port = server.server_address[1]
    response = requests.get(server.url, headers={"Host": f"evil.example:{port}"}, timeout=10)
    assert response.status_code == 403
    response = requests.post(
        f"{server.url}talk?session=page1",
        data=ONE_SECOND,
        headers={"Content-Type": "audio/wav", "Origin": "http://evil.example"},
        timeout=10,
    )
    assert response.status_code == 403


def test_a_body_that_is_not_audio_is_refused_before_any_call(server):
    response = requests.post(
        f"{server.url}talk?session=page1",
        data=b"{}",
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 415


def test_a_turn_streams_transcript_text_sentence_audio_then_timings(server):
    events = post_turn(server)
    names = [name for name, _ in events if name != "stage"]
    assert names[0] == "transcript"
    assert names[1] == "text"
    assert names[-2:] == ["answer", "timings"]
    assert events[1] == ("transcript", {"text": HEARD})
    answer = dict(events)["answer"]["text"]
    assert answer.startswith("Hello from the rawchat simulator. I received 1 message (about ")
    assert "".join(data["delta"] for name, data in events if name == "text") == answer
    audio = [data for name, data in events if name == "audio"]
    assert [clip["index"] for clip in audio] == [0, 1, 2]
    assert audio[0]["text"] == "Hello from the rawchat simulator."
    first = parse_wav(base64.b64decode(audio[0]["wav"]))
    assert (first.sample_rate, first.channels, first.bits_per_sample) == (24000, 1, 16)
    assert first.duration == 1.98  # 33 characters at 0.06 s
    timings = dict(events)["timings"]
    assert sorted(timings) == [
        "answer_ms",
        "first_audio_ms",
        "first_token_ms",
        "reply_latency_ms",
        "total_ms",
        "transcribed_ms",
    ]
    assert all(isinstance(ms, float) for ms in timings.values())


def test_each_sentence_is_sent_as_a_whole_wav_with_its_sizes_written_in(server):
    events = post_turn(server)
    for name, data in events:
        if name == "audio":
            clip = base64.b64decode(data["wav"])
            assert int.from_bytes(clip[4:8], "little") == len(clip) - 8


def test_a_page_keeps_its_conversation_and_another_page_starts_afresh(server):
    post_turn(server, session="page1")
    again = dict(post_turn(server, session="page1"))["answer"]["text"]
    other = dict(post_turn(server, session="page2"))["answer"]["text"]
    assert "I received 3 messages" in again
    assert "I received 1 message " in other


def test_a_failed_turn_ends_with_an_error_event_and_its_hint(sim):
    with rawchat.Client(KEY, sim.base_url) as client:
        options = {"transcribe_model": "gpt-4o-mini"}  # a chat model
        with serving(TalkServer(client, talk_options=options)) as talk_server:
            events = post_turn(talk_server)
    assert [name for name, _ in events] == ["error"]
    error = events[0][1]
    assert "does not support transcription" in error["message"]
    assert "does not transcribe here" in error["hint"]


def test_talk_web_serves_the_page_on_the_built_in_simulator_when_nothing_is_configured(
    monkeypatch, capsys
):
    seen = {}

    def one_turn(server, out):
        with serving(server):
            seen["events"] = post_turn(server)

    monkeypatch.setattr(talk_web, "run", one_turn)
    assert main(["talk", "--web", "--port", "0", "-m", "gpt-4o-mini", "-s", "Be brief."]) == 0
    assert "built-in simulator" in capsys.readouterr().err
    events = dict(seen["events"])
    assert events["transcript"] == {"text": HEARD}
    # The system prompt and the question.
    assert "I received 2 messages" in events["answer"]["text"]


def test_talk_web_takes_no_audio_files(capsys):
    assert main(["talk", "--web", "question.wav"]) == 2
    assert "--web takes its audio from the page" in capsys.readouterr().err


def test_talk_web_refuses_a_port_out_of_range(capsys):
    assert main(["talk", "--web", "--port", "70000"]) == 2
    assert "--port 70000 is not a port number" in capsys.readouterr().err


# -- a real browser ------------------------------------------------------------------

CHROMIUM = shutil.which("chromium")

# Makes fds 3 and 4 the pipes and becomes the browser; a subprocess
# preexec_fn would do it too, but is not safe with the server's threads.
_ON_FDS_3_AND_4 = (
    "import os, sys; os.dup2(int(sys.argv[1]), 3); os.dup2(int(sys.argv[2]), 4); "
    "os.execvp(sys.argv[3], sys.argv[3:])"
)


class DevTools:
    """A minimal Chrome DevTools Protocol client over ``--remote-debugging-pipe``."""

    def __init__(self, argv, log):
        to_browser, self._in = os.pipe()
        self._out, from_browser = os.pipe()
        self.process = subprocess.Popen(
            [sys.executable, "-c", _ON_FDS_3_AND_4, str(to_browser), str(from_browser), *argv],
            pass_fds=(to_browser, from_browser),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
        os.close(to_browser)
        os.close(from_browser)
        self._buffer = b""
        self._number = 0

    def call(self, method, session=None, timeout=30.0, **params):
        self._number += 1
        message = {"id": self._number, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        os.write(self._in, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" not in self._buffer:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([self._out], [], [], left)[0]:
                    raise TimeoutError(f"no answer to {method} in {timeout} s")
                data = os.read(self._out, 1 << 16)
                if not data:
                    raise EOFError(f"the browser closed the pipe (exit {self.process.poll()})")
                self._buffer += data
            raw, _, self._buffer = self._buffer.partition(b"\0")
            reply = json.loads(raw)
            if reply.get("id") == self._number:  # events (no id) are not asked for
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def close(self):
        try:
            self.call("Browser.close", timeout=10)
        except (OSError, EOFError, TimeoutError, RuntimeError):
            pass
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        os.close(self._in)
        os.close(self._out)


def page_session(devtools, deadline):
    """Attach to the browser's one page target, once it exists."""
    while time.monotonic() < deadline:
        targets = devtools.call("Target.getTargets")["targetInfos"]
        pages = [target for target in targets if target["type"] == "page"]
        if pages:
            attached = devtools.call("Target.attachToTarget", targetId=pages[0]["targetId"],
                                     flatten=True)  # fmt: skip
            return attached["sessionId"]
        time.sleep(0.2)
    raise TimeoutError("the browser opened no page")


# Empty until the page has loaded and written its result.
READ_OUTCOME = """JSON.stringify({
  result: (document.getElementById("result") || {}).textContent || "",
  latencies: Array.from(document.querySelectorAll("#latencies tr"),
    (row) => Array.from(row.cells, (cell) => cell.textContent)),
})"""


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="needs a headless browser: Debian's chromium (apt-get install chromium)",
)
def test_a_browser_records_from_its_microphone_and_plays_the_spoken_reply(server, tmp_path):
    microphone = tmp_path / "microphone.wav"
    microphone.write_bytes(pcm_to_wav(synthesize("Hello, can you hear me?")))
    argv = [
        CHROMIUM,
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--no-default-browser-check",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-audio-capture={microphone}",
        "--autoplay-policy=no-user-gesture-required",
        "--remote-debugging-pipe",
        f"{server.url}?record=2",
    ]
    with open(tmp_path / "chromium.log", "wb") as log:
        devtools = DevTools(argv, log)
        try:
            deadline = time.monotonic() + 90  # a liveness bound for a loaded machine
            session = page_session(devtools, deadline)
            while True:
                answer = devtools.call(
                    "Runtime.evaluate", session, expression=READ_OUTCOME, returnByValue=True
                )
                outcome = json.loads(answer["result"]["value"])
                if outcome["result"] or time.monotonic() > deadline:
                    break
                time.sleep(0.25)
        finally:
            devtools.close()
    assert outcome["result"], (
        "the page wrote no result: "
        + (tmp_path / "chromium.log").read_text(errors="replace")[-2000:]
    )
    result = json.loads(outcome["result"])
    assert result["error"] is None
    assert result["recorded_peak"] > 0.01  # the WAV reached the page as sound, not silence
    assert re.fullmatch(r"This is \d+\.\d\d seconds of audio\. .*", result["transcript"])
    assert result["answer"].startswith("Hello from the rawchat simulator.")
    assert result["sentences"] == 3
    assert result["decoded_seconds"] > 0
    assert result["played_seconds"] > 0
    page, timings = result["latencies"]["page"], result["latencies"]["server"]
    for stage in ("transcribed", "first_token", "first_audio", "first_sound"):
        assert isinstance(page[stage], (int, float)), stage
    for name in ("transcribed_ms", "first_token_ms", "first_audio_ms", "reply_latency_ms"):
        assert isinstance(timings[name], (int, float)), name
    labels = [row[0] for row in outcome["latencies"]]
    assert labels == [
        "upload + transcription",
        "first token",
        "first audio byte",
        "reply latency (first sound)",
        "whole answer",
        "last audio byte",
    ]
    assert all(re.fullmatch(r"[\d,]+", cell) for row in outcome["latencies"] for cell in row[1:])
