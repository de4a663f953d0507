"""The neural voice-changer graph end to end on the tiny models (real FCPE for F0)."""

from __future__ import annotations

import numpy as np
import pytest
import pytest_asyncio

from apipeline.frames import AudioRawFrame
from apipeline.models import MachineResources, ModelRegistry
from apipeline.models.services import ContentEncoderService, F0Service, SvcService, VocoderService
from apipeline.processors.models import neural_voice_changer
from apipeline.testing import run_processor
from tests.models.conftest import tiny_models  # noqa: F401  (session fixture)

MACHINE = MachineResources(cpu_count=2, available_memory=8 * 2**30, gpus=())


def _voice(seconds: float, rate: int) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    f0 = 150 + 30 * np.sin(2 * np.pi * 0.5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    return (0.3 * np.sin(phase) + 0.1 * np.sin(2 * phase)).astype(np.float32)


def _frames(audio: np.ndarray, rate: int, chunk: int) -> list[AudioRawFrame]:
    return [AudioRawFrame(audio[i : i + chunk], rate, 1) for i in range(0, audio.size, chunk)]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def registry(tiny_models):  # noqa: F811
    pytest.importorskip("torch")
    reg = ModelRegistry(machine=MACHINE)
    reg.register(ContentEncoderService(tiny_models["content_encoder"]))
    reg.register(F0Service("fcpe"))
    reg.register(SvcService(tiny_models["sovits_mel"], name="svc_mel"))
    reg.register(SvcService(tiny_models["sovits"], name="svc_audio"))
    reg.register(VocoderService(tiny_models["nsf_hifigan"]))
    yield reg
    await reg.aclose()


async def _convert(registry, audio, rate, **kw):
    stages = neural_voice_changer(registry, block_ms=200, context_ms=300, **kw)
    out = await run_processor(stages, _frames(audio, rate, rate // 50))
    assert all(isinstance(f, AudioRawFrame) and f.sample_rate == 44100 for f in out)
    return np.concatenate([f.audio for f in out])


@pytest.mark.asyncio(loop_scope="module")
async def test_graph_with_vocoder_right_length_rate_and_deterministic(registry):
    audio = _voice(1.0, 16000)
    first = await _convert(registry, audio, 16000, svc_service="svc_mel", vocoder_service="vocoder")
    assert first.shape == (44100,)
    assert np.isfinite(first).all() and first[4410:].std() > 1e-3
    again = await _convert(registry, audio, 16000, svc_service="svc_mel", vocoder_service="vocoder")
    assert np.array_equal(first, again)


@pytest.mark.asyncio(loop_scope="module")
async def test_graph_audio_model_from_48k_input_follows_pitch(registry):
    audio = _voice(1.0, 48000)
    low = await _convert(registry, audio, 48000, svc_service="svc_audio")
    high = await _convert(registry, audio, 48000, svc_service="svc_audio", pitch=12.0)
    assert low.shape == high.shape == (44100,)

    def peak(x: np.ndarray) -> float:
        seg = x[11025:33075]
        spec = np.abs(np.fft.rfft(seg * np.hanning(seg.size)))
        return float(np.argmax(spec[10:]) + 10) * 44100 / seg.size

    assert peak(high) == pytest.approx(2 * peak(low), rel=0.1)
