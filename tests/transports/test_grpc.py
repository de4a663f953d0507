"""The gRPC frame service and RemoteProcessor, on loopback."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from apipeline.client import GrpcFrameClient
from apipeline.errors import SessionRefused
from apipeline.frames import AudioRawFrame, StartFrame, TextFrame, UpdateSettingsFrame
from apipeline.pipeline.pipeline import Pipeline
from apipeline.testing import run_pipeline
from apipeline.transports.grpc_service import GrpcServer
from apipeline.transports.remote import RemoteProcessor
from tests.transports._standin import Gain, chunks, gain_factory
from tests.transports.conftest import leftover_tasks


def signal(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-0.5, 0.5, n).astype(np.float32)


@pytest.fixture
async def grpc_server():
    server = GrpcServer(gain_factory(), port=0, token="t0k", ready=True)
    await server.start()
    yield server
    await server.aclose()
    assert not server.sessions


async def test_round_trip_over_grpc_is_exact_and_in_order(grpc_server):
    x = signal(8000, 1)
    frames = chunks(x, 333)
    stream = [*frames[:12], UpdateSettingsFrame({"gain": 0.5}), *frames[12:]]
    async with GrpcFrameClient(grpc_server.address, params={"gain": 2}, token="t0k") as client:
        out = [f async for f in client.stream(stream)]
    y = np.concatenate([f.audio for f in out])
    np.testing.assert_array_equal(y[: 12 * 333], x[: 12 * 333] * np.float32(2))
    np.testing.assert_array_equal(y[12 * 333 :], x[12 * 333 :] * np.float32(0.5))


async def test_grpc_refusals_carry_the_close_code(grpc_server):
    async with GrpcFrameClient(grpc_server.address, token="t0k") as client:
        with pytest.raises(SessionRefused) as info:
            _ = [f async for f in client.stream([AudioRawFrame(signal(10, 2)), StartFrame()])]
    assert info.value.code == 1008 and "StartFrame is not accepted" in info.value.reason
    async with GrpcFrameClient(grpc_server.address, token="wrong") as client:
        with pytest.raises(SessionRefused) as info:
            _ = [f async for f in client.stream([AudioRawFrame(signal(10, 3))])]
    assert "PERMISSION_DENIED" in info.value.reason


async def test_remote_processor_spans_two_pipelines_in_order(grpc_server):
    x = signal(6400, 4)
    remote = RemoteProcessor(grpc_server.address, params={"gain": 3}, token="t0k")
    frames = [*chunks(x, 320), TextFrame("after the audio")]
    result = await run_pipeline(Pipeline([Gain(2.0), remote, Gain(0.5)]), frames)
    assert not result.errors, result.errors
    audio = [f for f in result.data if isinstance(f, AudioRawFrame)]
    np.testing.assert_array_equal(np.concatenate([f.audio for f in audio]), x * np.float32(3))
    assert isinstance(result.data[-1], TextFrame) and result.data[-1].text == "after the audio"
    await grpc_server.wait_idle()
    assert leftover_tasks() == []


async def test_remote_processor_reports_a_refused_stream_as_fatal(grpc_server):
    remote = RemoteProcessor(grpc_server.address, token="t0k")
    result = await run_pipeline(Pipeline([remote]), [AudioRawFrame(signal(10, 5), sample_rate=4000)])
    assert any(e.fatal and "below 8000 Hz" in e.error for e in result.errors), result.errors
    await grpc_server.wait_idle()
    assert leftover_tasks() == []


async def test_shutdown_ends_open_grpc_sessions(grpc_server):
    client = GrpcFrameClient(grpc_server.address, token="t0k")
    await client.connect()
    await client.send(AudioRawFrame(signal(160, 6), sample_rate=16000))
    assert isinstance(await client.recv(), AudioRawFrame)
    await grpc_server.aclose()
    with pytest.raises(SessionRefused) as info:
        while await client.recv() is not None:
            pass
    assert info.value.code == 1001
    await client.aclose()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("case", ["dead", "missing_token", "wrong_token", "refusing"])
async def test_remote_processor_to_a_dead_or_refusing_server_fails_loudly(grpc_server, case):
    """No silent success: run() reports a fatal error (and the audio is not passed on as if processed)."""
    address = f"127.0.0.1:{free_port()}" if case == "dead" else grpc_server.address
    token = {"dead": "t0k", "missing_token": None, "wrong_token": "nope", "refusing": "t0k"}[case]
    params = {"bogus": 1} if case == "refusing" else None
    remote = RemoteProcessor(address, token=token, params=params)
    frames = chunks(signal(3200, 7), 320)
    async with asyncio.timeout(20):
        result = await run_pipeline(Pipeline([remote]), frames)
    fatal = [e for e in result.errors if e.fatal]
    assert fatal, result.errors
    assert address in fatal[0].error
    assert not [f for f in result.data if isinstance(f, AudioRawFrame)]
