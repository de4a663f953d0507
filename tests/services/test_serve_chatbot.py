"""``apipeline serve --app chatbot``: the chatbot over the WebSocket contract, on its real engines.

One server per module (the LLM loads once per test process; ``load_local_llm`` caches it), a client
from ``apipeline.client`` speaking eSpeak NG questions at real-time pace, like a microphone.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import pytest_asyncio

from apipeline.client.websocket import FrameClient
from apipeline.errors import SessionRefused
from apipeline.frames import AudioRawFrame, EndFrame, ErrorFrame, Frame, TextFrame
from apipeline.services.espeak import synthesize_speech
from apipeline.transports.chatbot import ChatbotFactory
from apipeline.transports.websocket import ServerConfig, WebsocketServer

pytestmark = [pytest.mark.timeout(600), pytest.mark.asyncio(loop_scope="module")]

RATE = 16000
STEP = 320  # 20 ms, as a microphone sends


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server() -> AsyncIterator[WebsocketServer]:
    async with WebsocketServer(ChatbotFactory(), ServerConfig(port=0)) as s:
        await asyncio.wait_for(s.wait_ready(), 540)
        yield s


def _speech(text: str) -> np.ndarray:
    return synthesize_speech(text, sample_rate=RATE)


@dataclass
class Conversation:
    """What a client received, each with its arrival time (monotonic s)."""

    events: list[tuple[float, Frame]] = field(default_factory=list)

    def texts(self, kind: str) -> list[tuple[float, TextFrame]]:
        return [(t, f) for t, f in self.events if isinstance(f, TextFrame) and f.metadata.get("chat") == kind]

    def audio(self) -> list[tuple[float, AudioRawFrame]]:
        return [(t, f) for t, f in self.events if isinstance(f, AudioRawFrame)]


class Microphone:
    """Sends 20 ms frames in real time: queued speech, else silence."""

    def __init__(self, client: FrameClient, rate: int = RATE) -> None:
        self.client, self.rate = client, rate
        self.pending: list[np.ndarray] = []
        self.spoken: list[float] = []  # when each queued utterance started going out
        self.stop = asyncio.Event()

    def say(self, audio: np.ndarray) -> None:
        self.pending.append(audio)

    async def run(self) -> None:
        step = self.rate // 50
        t0 = time.monotonic()
        sent = 0
        current = np.zeros(0, np.float32)
        while not self.stop.is_set():
            if not len(current) and self.pending:
                current = self.pending.pop(0)
                self.spoken.append(time.monotonic())
            chunk, current = current[:step], current[step:]
            if len(chunk) < step:
                chunk = np.concatenate([chunk, np.zeros(step - len(chunk), np.float32)])
            await self.client.send(AudioRawFrame(chunk, self.rate))
            sent += step
            ahead = t0 + sent / self.rate - time.monotonic()
            if ahead > 0:
                await asyncio.sleep(ahead)  # a microphone's pace, not a synchronisation
        await self.client.send(EndFrame())


async def _receive(client: FrameClient, convo: Conversation) -> None:
    while (frame := await client.recv()) is not None:
        convo.events.append((time.monotonic(), frame))


async def _until(convo: Conversation, check: Any, timeout: float) -> None:
    """Wait (bounded) until ``check(convo)``; polls the received frames."""
    deadline = time.monotonic() + timeout
    while not check(convo):
        if time.monotonic() > deadline:
            t0 = convo.events[0][0] if convo.events else 0.0
            said = [
                f"{t - t0:.2f} {f.metadata.get('chat')} {f.text!r}"
                for t, f in convo.events
                if isinstance(f, TextFrame)
            ]
            raise AssertionError(f"timed out; {len(convo.audio())} audio frames; texts: {said}")
        await asyncio.sleep(0.05)


async def test_info_says_chatbot_and_its_parameters(server: WebsocketServer) -> None:
    url = server.page_url + "info"
    body = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=10).read())
    info = json.loads(body)
    assert info["app"] == "chatbot"
    assert {"voice", "max_tokens", "interruption", "vad_stop_ms"} <= set(info["params"]["properties"])


@pytest.mark.parametrize(
    "params, word",
    [
        ({"interruption": "sometimes"}, "interruption"),
        ({"max_tokens": 1000}, "max_tokens"),
        ({"voice": "xx-nowhere"}, "voice"),
        ({"max_token": 4}, "max_tokens"),  # a typo: the closest name is suggested
    ],
)
async def test_bad_settings_are_refused_at_the_handshake(
    server: WebsocketServer, params: dict[str, Any], word: str
) -> None:
    with pytest.raises(SessionRefused) as err:
        async with FrameClient(server.url, params={"sample_rate": RATE, **params}):
            pass
    assert "HTTP 400" in err.value.reason and word in err.value.reason


async def test_a_rate_the_chatbot_cannot_take_closes_the_session(server: WebsocketServer) -> None:
    async with FrameClient(server.url) as client:
        await client.send(AudioRawFrame(np.zeros(80, np.float32), 4000))
        frames = []
        while (frame := await asyncio.wait_for(client.recv(), 30)) is not None:
            frames.append(frame)
    assert client.close_code == 1008
    assert any(isinstance(f, ErrorFrame) and "8000..48000" in f.error for f in frames)


async def test_spoken_question_then_barge_in_over_the_websocket(server: WebsocketServer) -> None:
    convo = Conversation()
    # 24 kHz in: the session resamples the user to 16 kHz and answers at 24 kHz
    rate = 24000
    async with FrameClient(server.url, params={"sample_rate": rate, "max_tokens": 40}) as client:
        mic = Microphone(client, rate)
        receiver = asyncio.create_task(_receive(client, convo))
        sender = asyncio.create_task(mic.run())
        mic.say(synthesize_speech("what is two plus two", sample_rate=rate))
        # the transcript, the answer's words and its audio arrive
        await _until(convo, lambda c: c.texts("user") and c.audio() and c.texts("bot"), 240)
        first_audio_t = convo.audio()[0][0]
        # talk over the bot while it speaks
        await _until(convo, lambda c: c.audio()[-1][0] - first_audio_t > 0.3 or c.texts("bot_end"), 60)
        assert not convo.texts("bot_end"), "the first answer ended before the barge-in: too short to test"
        mic.say(synthesize_speech("stop please what is the weather like today", sample_rate=rate))
        await _until(convo, lambda c: c.texts("interrupted") and c.texts("bot_end"), 60)
        await _until(convo, lambda c: c.texts("user")[-1][0] > c.texts("interrupted")[-1][0], 120)
        mic.stop.set()
        await asyncio.wait_for(sender, 30)
        await asyncio.wait_for(receiver, 300)
    assert client.close_code == 1000
    assert isinstance(convo.events[-1][1], EndFrame)
    assert not [f for _, f in convo.events if isinstance(f, ErrorFrame)]

    first_user = convo.texts("user")[0][1].text
    assert "what" in first_user.split(), first_user  # pocketsphinx hears espeak's "what" reliably
    audio = convo.audio()
    assert all((f.sample_rate, f.audio.dtype, f.num_channels) == (rate, np.float32, 1) for _, f in audio)
    assert max(float(np.abs(f.audio).max()) for _, f in audio) > 0.05  # a voice, not silence

    # barge-in: the client is told, the answer is recorded as cut, and no bot audio arrives between the
    # interruption and the next user turn (the next answer can only follow that)
    t_cut = next(t for t, _ in convo.texts("interrupted") if t > mic.spoken[1])
    t_next_user = next(t for t, _ in convo.texts("user") if t > t_cut)
    assert not [f for t, f in audio if t_cut < t < t_next_user]
    # the cut answer's bot_end goes out as the interruption passes the assistant's context, just before
    # the "interrupted" message
    t_end, end = min(convo.texts("bot_end"), key=lambda e: abs(e[0] - t_cut))
    assert end.metadata["interrupted"] is True and t_end <= t_cut
    heard = " ".join(f.text for t, f in convo.texts("bot") if t < t_end).split()
    assert end.text.split() == heard and heard  # what was played before the cut, word for word
    # the bot had started speaking before the second utterance, which then cut it
    assert convo.audio()[0][0] < mic.spoken[1] < t_cut
    print(f"barge-in: {1000 * (t_cut - mic.spoken[1]):.0f} ms from the second utterance's onset")


async def test_voice_changer_settings_change_mid_stream_and_others_are_refused() -> None:
    from apipeline.frames import UpdateSettingsFrame
    from apipeline.voice_changer import VoiceChangerSettings

    factory = ChatbotFactory(voice_changer=VoiceChangerSettings(pitch=2.0))
    assert factory.settings_schema["pitch"].live and factory.settings_schema["pitch"].default == 2.0
    async with WebsocketServer(factory, ServerConfig(port=0)) as server:
        await asyncio.wait_for(server.wait_ready(), 540)
        async with FrameClient(server.url, params={"sample_rate": RATE, "pitch": -3}) as client:
            silence = np.zeros(STEP, np.float32)
            await client.send(AudioRawFrame(silence, RATE))
            await client.send(UpdateSettingsFrame({"pitch": 5.0, "formant": 1.1}))  # live: accepted
            await client.send(UpdateSettingsFrame({"max_tokens": 5}))  # fixed at the start: refused
            await client.send(UpdateSettingsFrame({"pitch": 99}))  # out of range: refused
            await client.send(AudioRawFrame(silence, RATE))
            await client.send(EndFrame())
            frames = []
            while (frame := await asyncio.wait_for(client.recv(), 60)) is not None:
                frames.append(frame)
    errors = [f.error for f in frames if isinstance(f, ErrorFrame)]
    assert len(errors) == 2 and not any(f.fatal for f in frames if isinstance(f, ErrorFrame)), errors
    assert "max_tokens" in errors[0] and "pitch" in errors[1]
    assert isinstance(frames[-1], EndFrame) and client.close_code == 1000
