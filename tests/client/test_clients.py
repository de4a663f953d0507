"""The Python clients against the real voice changer, over both transports."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from apipeline.client import FrameClient, GrpcFrameClient, VoiceChangerClient
from apipeline.errors import SessionRefused
from apipeline.frames import AudioRawFrame, UpdateSettingsFrame
from apipeline.transports import ServerConfig, VoiceChangerFactory, WebsocketServer
from apipeline.transports.grpc_service import GrpcServer
from tests.transports._standin import chunks

SPEECH, RATE = sf.read("tests/data/speech_16k.wav", dtype="int16")


def test_client_url_carries_settings_and_token():
    client = VoiceChangerClient("ws://127.0.0.1:1/ws?x=1", pitch=4, formant=1.1, token="t", sola=False)
    assert client.url == "ws://127.0.0.1:1/ws?x=1&pitch=4&formant=1.1&sola=false&token=t"


@pytest.fixture(scope="module")
def factory():
    return VoiceChangerFactory()


async def test_voice_changer_over_websocket_and_grpc(factory):
    x = SPEECH[: RATE // 2]
    frames = chunks(x, 333, rate=RATE)
    stream = [*frames[:10], UpdateSettingsFrame({"pitch": -5, "formant": 0.9}), *frames[10:]]
    async with WebsocketServer(factory, ServerConfig(port=0, ping_interval=None)) as server:
        await server.wait_ready()
        async with VoiceChangerClient(server.url, pitch=4, formant=1.1) as client:
            out = [f async for f in client.stream(stream)]
        assert client.close_code == 1000
        grpc_server = GrpcServer(factory, port=0, ready=True)
        async with grpc_server:
            async with GrpcFrameClient(grpc_server.address, params={"pitch": 4, "formant": 1.1}) as gclient:
                gout = [f async for f in gclient.stream(stream)]
    for result in (out, gout):
        assert all(isinstance(f, AudioRawFrame) and f.sample_rate == RATE for f in result)
        y = np.concatenate([f.audio for f in result])
        assert len(x) <= len(y) <= len(x) + RATE // 5  # delayed and padded to whole blocks
        assert np.sqrt(np.mean(y.astype(np.float64) ** 2)) > 1e-3  # a voice came back, not silence
    # the same input and settings give the same output over both transports
    np.testing.assert_allclose(
        np.concatenate([f.audio for f in out]), np.concatenate([f.audio for f in gout]), atol=1e-5
    )


async def test_voice_changer_refuses_a_rate_it_cannot_take(factory):
    async with WebsocketServer(factory, ServerConfig(port=0, ping_interval=None)) as server:
        await server.wait_ready()
        async with VoiceChangerClient(server.url) as client:
            with pytest.raises(SessionRefused) as info:
                _ = [f async for f in client.stream([AudioRawFrame(np.zeros(400, np.int16), 4000)])]
    assert info.value.code == 1008
    assert "4000 Hz" in info.value.reason


async def test_refused_handshake_raises_session_refused_with_the_servers_reason(factory):
    # websockets' InvalidStatus said only "HTTP 400"; the server's reason is in the response body
    async with WebsocketServer(factory, ServerConfig(port=0, ping_interval=None)) as server:
        await server.wait_ready()
        with pytest.raises(SessionRefused) as info:
            async with FrameClient(server.url, params={"pitchh": 4}):
                pass
    assert info.value.code == 1008
    assert info.value.reason.startswith("HTTP 400: ")
    assert "unknown parameter 'pitchh'" in info.value.reason
    assert "did you mean 'pitch'" in info.value.reason


async def test_grpc_client_keeps_the_servers_reason_for_an_unknown_setting(factory):
    async with GrpcServer(factory, port=0, ready=True) as grpc_server:
        async with GrpcFrameClient(grpc_server.address, params={"pitchh": 4}) as client:
            with pytest.raises(SessionRefused) as info:
                _ = [f async for f in client.stream(chunks(SPEECH[:800], 400, rate=RATE))]
    assert "unknown parameter 'pitchh'" in str(info.value)
