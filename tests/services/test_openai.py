"""The OpenAI-compatible clients against a local server speaking the wire format, misbehaving on demand."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import numpy as np
import pytest

from apipeline.frames import (
    AudioRawFrame,
    ErrorFrame,
    LLMFullResponseEndFrame,
    LLMMessagesFrame,
    LLMTextFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    TTSSpeakFrame,
    TTSTextFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from apipeline.services.ai_service import ServiceError
from apipeline.services.openai import OpenAILLMService, OpenAISTTService, OpenAITTSService, check_base_url
from apipeline.testing import run_pipeline
from tests.services.openai_server import FakeOpenAIServer

MESSAGES = [{"role": "user", "content": "what is two plus two"}]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _ask(llm: OpenAILLMService):
    return await asyncio.wait_for(run_pipeline(llm, [LLMMessagesFrame(list(MESSAGES))]), 20)


async def test_llm_streams_server_sent_events_token_by_token() -> None:
    async with FakeOpenAIServer() as server:
        llm = OpenAILLMService(base_url=server.url, model="m", api_key="k", max_tokens=7)
        result = await _ask(llm)
    assert [f.text for f in result.of_type(LLMTextFrame)] == server.tokens
    assert len(result.of_type(LLMFullResponseEndFrame)) == 1
    assert not result.errors
    request = server.requests[0]
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer k"
    body = json.loads(request.body)
    assert body["stream"] is True and body["messages"] == MESSAGES and body["max_tokens"] == 7
    assert llm.ttfb_ns is not None and llm.last_response == "Two plus two is four."


@pytest.mark.parametrize(
    ("mode", "expected", "fatal"),
    [
        ("429", "HTTP 429 busy", False),
        ("500", "HTTP 500 server error", False),
        ("drop", "dropped the connection", False),
        ("garbage", "not JSON", False),
        ("nodone", "without 'data: [DONE]'", False),
    ],
)
async def test_llm_server_failures_become_clear_error_frames(mode: str, expected: str, fatal: bool) -> None:
    async with FakeOpenAIServer(mode=mode) as server:
        result = await _ask(OpenAILLMService(base_url=server.url, timeout_s=5))
    assert len(result.errors) == 1, result.errors
    error = result.errors[0]
    assert expected in error.error and server.url in error.error
    assert error.fatal is fatal
    # the turn still ends, so the conversation can go on
    assert len(result.of_type(LLMFullResponseEndFrame)) == 1


async def test_llm_stalled_server_times_out_without_hanging() -> None:
    async with FakeOpenAIServer(mode="stall") as server:
        t0 = time.monotonic()
        result = await _ask(OpenAILLMService(base_url=server.url, timeout_s=0.3))
    assert time.monotonic() - t0 < 3.0  # 10x the configured timeout
    assert "timed out after 0.3 s" in result.errors[0].error


async def test_unreachable_server_is_a_fatal_error_within_the_connect_timeout() -> None:
    url = f"http://127.0.0.1:{_free_port()}/v1"  # nothing listens there
    t0 = time.monotonic()
    result = await asyncio.wait_for(
        run_pipeline(
            OpenAILLMService(base_url=url, connect_timeout_s=0.5),
            [LLMMessagesFrame(list(MESSAGES))],
            end=False,
        ),
        5.0,
    )
    assert time.monotonic() - t0 < 5.0
    assert result.errors and result.errors[0].fatal and "unreachable" in result.errors[0].error


@pytest.mark.parametrize("url", ["not a url", "ftp://host/v1", "http://", "http://host:99999/v1", ""])
def test_bad_urls_are_refused_at_build_time(url: str) -> None:
    with pytest.raises(ServiceError, match=r"URL|port"):
        OpenAILLMService(base_url=url)
    with pytest.raises(ServiceError):
        OpenAITTSService(base_url=url)


def test_a_bare_host_gets_the_v1_prefix() -> None:
    assert check_base_url("http://localhost:8080", "x") == "http://localhost:8080/v1"
    assert check_base_url("http://localhost:8080/api/v1/", "x") == "http://localhost:8080/api/v1"


async def test_tts_streams_pcm_and_reassembles_samples_split_across_chunks() -> None:
    async with FakeOpenAIServer() as server:
        tts = OpenAITTSService(base_url=server.url, voice="nova", sample_rate=24000, chunk_ms=20)
        result = await asyncio.wait_for(run_pipeline(tts, [TTSSpeakFrame("Hello there.")]), 20)
    audio = np.concatenate([f.audio for f in result.of_type(TTSAudioRawFrame)])
    expected = np.frombuffer(server.pcm, dtype="<i2")
    np.testing.assert_array_equal(audio, expected)
    assert [f.text for f in result.of_type(TTSTextFrame)] == ["Hello there."]
    body = json.loads(server.requests[0].body)
    assert body["voice"] == "nova" and body["response_format"] == "pcm" and body["input"] == "Hello there."


@pytest.mark.parametrize("mode", ["500", "drop"])
async def test_tts_failures_become_error_frames(mode: str) -> None:
    async with FakeOpenAIServer(mode=mode) as server:
        result = await asyncio.wait_for(
            run_pipeline(OpenAITTSService(base_url=server.url, sample_rate=24000), [TTSSpeakFrame("Hi.")]), 20
        )
    assert len(result.errors) == 1 and server.url in result.errors[0].error


def _utterance(seconds: float) -> list[AudioRawFrame]:
    rng = np.random.default_rng(0)
    audio = (rng.standard_normal(round(seconds * 16000)) * 1000).astype(np.int16)
    return [AudioRawFrame(audio[i : i + 320], 16000) for i in range(0, len(audio), 320)]


async def test_stt_posts_each_utterance_as_wav_and_pushes_the_transcript_before_the_turn_ends() -> None:
    async with FakeOpenAIServer() as server:
        stt = OpenAISTTService(base_url=server.url, model="whisper-x", audio_passthrough=False)
        frames = [UserStartedSpeakingFrame(), *_utterance(1.0), UserStoppedSpeakingFrame()]
        result = await asyncio.wait_for(run_pipeline(stt, frames), 20)
    kinds = [
        type(f) for f in result.downstream if isinstance(f, (TranscriptionFrame, UserStoppedSpeakingFrame))
    ]
    assert kinds == [TranscriptionFrame, UserStoppedSpeakingFrame]
    assert result.of_type(TranscriptionFrame)[0].text == server.transcript
    body = server.requests[0].body
    assert b'name="model"' in body and b"whisper-x" in body and b"RIFF" in body


async def test_a_monologue_past_the_turn_limit_is_cut_into_bounded_requests() -> None:
    async with FakeOpenAIServer() as server:
        stt = OpenAISTTService(base_url=server.url, max_utterance_s=10.0, audio_passthrough=False)
        frames = [UserStartedSpeakingFrame(), *_utterance(120.0), UserStoppedSpeakingFrame()]
        result = await asyncio.wait_for(run_pipeline(stt, frames), 60)
    assert len(server.requests) == 12  # 2 minutes at 10 s per request
    # no request carried more than the limit: 10 s of PCM16 plus a WAV header
    assert max(len(r.body) for r in server.requests) < 10 * 16000 * 2 + 2000
    assert len(result.of_type(TranscriptionFrame)) == 12
    assert not result.errors


async def test_stt_server_error_loses_the_turn_not_the_conversation() -> None:
    async with FakeOpenAIServer(mode="500") as server:
        stt = OpenAISTTService(base_url=server.url, audio_passthrough=False)
        frames = [UserStartedSpeakingFrame(), *_utterance(0.5), UserStoppedSpeakingFrame()]
        result = await asyncio.wait_for(run_pipeline(stt, frames), 20)
    assert len(result.errors) == 1 and not result.errors[0].fatal
    assert result.of_type(UserStoppedSpeakingFrame)  # the turn boundary still passes
    assert isinstance(result.errors[0], ErrorFrame)
