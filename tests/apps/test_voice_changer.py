"""The voice changer DAG end to end: geometry and latency, parity with the pure core (phase-locked and
free-running, every layout), pitch and clicks on the committed sample, mid-stream settings, every sample
rate, stereo, the parallel layout and FCPE."""

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from apipeline.audio.f0 import get_f0_estimator
from apipeline.audio.io import read_audio
from apipeline.audio.level import soft_limit
from apipeline.audio.metrics import cents_error, click_score
from apipeline.audio.voice_changer import StreamingVoiceChanger
from apipeline.errors import PipelineError
from apipeline.frames import AudioRawFrame, UpdateSettingsFrame
from apipeline.pipeline import Pipeline, SyncParallelPipeline, pipeline_latency
from apipeline.processors.audio.convert import ChannelMixer
from apipeline.processors.audio.features import BlockGeometry
from apipeline.processors.audio.sola import SolaProcessor
from apipeline.processors.audio.vocoder import VocoderProcessor
from apipeline.testing import run_pipeline
from apipeline.voice_changer import (
    VoiceChangerSettings,
    build_voice_changer,
    convert_array,
    render_offline_array,
)
from apipeline.voice_changer.local import check_phase_lock_layout

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "data" / "speech.wav"
RATES = (16000, 22050, 24000, 44100, 48000)


def speech(seconds: float) -> tuple[np.ndarray, int]:
    audio, sr = read_audio(SAMPLE)
    return audio[: int(seconds * sr), 0].copy(), sr


def harmonic(f0: float, seconds: float, sr: int) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return sum(0.2 / k * np.sin(2 * np.pi * k * f0 * t) for k in range(1, 8)).astype(np.float32)


@pytest.mark.parametrize("rate", RATES)
def test_geometry_matches_the_core_and_default_latency_is_within_60_ms(rate):
    g = BlockGeometry.from_ms(rate)
    core = StreamingVoiceChanger(rate)
    assert (g.block, g.crossfade, g.search, g.lookahead, g.context) == (
        core.block_size, core.crossfade_size, core.search_size, core.lookahead_size, core.context_size
    )  # fmt: skip
    assert (g.kept_start, g.kept_start + g.kept_size) == core._kept and g.frames == core._frames
    vc = build_voice_changer(VoiceChangerSettings(vad=False), sample_rate=rate)
    assert vc.latency_seconds == pytest.approx(g.latency_seconds) == pytest.approx(core.latency_seconds)
    assert vc.latency_seconds <= 0.060 + 1e-9


def test_a_processing_rate_adds_the_resamplers_to_the_declared_latency():
    vc = build_voice_changer(VoiceChangerSettings(sample_rate=16000, vad=False), sample_rate=44100)
    names = [p.name for p in vc.processors()]
    assert names[names.index("input_guard") + 1] == "resample_in" and "resample_out" in names
    assert pipeline_latency(vc) > vc.geometry.latency_seconds


def core_output(x: np.ndarray, sr: int, settings: VoiceChangerSettings) -> np.ndarray:
    """The pure core's streamed render with the same settings, aligned as the DAG aligns its output.

    The core has the fixed level gate only (the DAG's adaptive gate decides per block from the noise
    floor) and no limiter: the DAG's memoryless limiter is applied to the core's output.
    """
    assert settings.gate == "fixed", "the core has the fixed gate only"
    core = StreamingVoiceChanger(sr, **settings.core_settings())
    y = np.concatenate([core.push(x), core.flush()])
    a = build_voice_changer(settings, sample_rate=sr).align_samples
    y = y[a : a + len(x)]
    return soft_limit(y) if settings.limiter else y


async def run_dag(x: np.ndarray, sr: int, settings: VoiceChangerSettings) -> tuple[np.ndarray, Any]:
    """The DAG's aligned output (10 ms chunks in) and the pipeline, to look inside."""
    vc = build_voice_changer(settings, sample_rate=sr)
    step = sr // 100
    result = await run_pipeline(
        vc, [AudioRawFrame(x[i : i + step].copy(), sr, 1) for i in range(0, len(x), step)]
    )
    assert not result.errors, result.errors
    y = np.concatenate([f.audio for f in result.data])
    return y[vc.align_samples : vc.align_samples + len(x)], vc


def vocoder_of(vc: Any) -> VocoderProcessor:
    return next(p for p in vc.walk() if isinstance(p, VocoderProcessor))


async def test_the_dag_is_sample_exact_with_the_streaming_core():
    x, sr = speech(1.5)
    settings = VoiceChangerSettings(pitch=4.0, formant=1.1, gate="fixed")  # phase-locked, mirrored F0 tail
    result = await convert_array(x, sr, settings)
    assert not result.errors and result.output.shape == x.shape
    np.testing.assert_array_equal(result.output, core_output(x, sr, settings))


@pytest.mark.parametrize(
    "layout",
    [
        {},  # serial: F0 -> analysis -> svc -> vocoder -> SOLA, in the event loop
        {"parallel": True, "threads": True},  # F0 branch || analysis branch (its own dio), in threads
        {"threads": True},  # serial, every stage in its own thread
        {"phase_lock": False},  # free-running synthesis, the same geometry
        {"phase_lock": False, "f0_pad_ms": 0.0, "crossfade_ms": 10.0, "search_ms": 15.0, "lookahead_ms": 0.0},
    ],
)
async def test_every_layout_renders_the_core_samples_and_the_lock_never_misses(layout):
    x, sr = speech(1.5)
    settings = VoiceChangerSettings(pitch=-5.0, formant=1.1, gate="fixed", **layout)
    y, vc = await run_dag(x, sr, settings)
    np.testing.assert_array_equal(y, core_output(x, sr, settings))
    assert any(isinstance(p, SyncParallelPipeline) for p in vc.processors()) == settings.use_parallel()
    vocoder = vocoder_of(vc)
    assert vocoder.lock_misses == 0
    blocks = vocoder.blocks_synthesised
    # every block after a synthesised one is locked (the sample has no silent block inside the speech)
    assert vocoder.lock.locked > 0.8 * blocks if settings.phase_lock else vocoder.lock.locked == 0


async def test_phase_lock_changes_the_samples_and_a_bad_layout_is_refused():
    x, sr = speech(0.6)
    locked, _ = await run_dag(x, sr, VoiceChangerSettings(pitch=4.0))
    free, _ = await run_dag(x, sr, VoiceChangerSettings(pitch=4.0, phase_lock=False))
    assert not np.array_equal(locked, free)
    vocoder = VocoderProcessor(sample_rate=sr, phase_lock=True, name="vocoder")
    sola = SolaProcessor(770, 320, 11, sample_rate=sr, name="sola")
    Pipeline([vocoder, ChannelMixer(1), sola])
    with pytest.raises(PipelineError, match=r"sola does not directly follow vocoder; sola does not report"):
        check_phase_lock_layout(vocoder, sola)


@pytest.mark.parametrize("shift", [4.0, -5.0])
async def test_pitch_accuracy_and_clicks_on_the_sample(shift):
    x, sr = speech(3.0)
    settings = VoiceChangerSettings(pitch=shift, formant=1.1)
    streamed = (await convert_array(x, sr, settings)).output
    offline = render_offline_array(x, sr, settings)
    ref = get_f0_estimator("harvest", hop_seconds=0.01)  # not the pipeline's estimator
    f0_in = ref.estimate(x, sr).f0_hz
    err_stream = cents_error(f0_in, ref.estimate(streamed, sr).f0_hz, shift)
    err_offline = cents_error(f0_in, ref.estimate(offline, sr).f0_hz, shift)
    assert err_stream.voiced_frames > 100
    assert err_stream.median_cents < 40 and err_stream.share_over_50 < 0.5
    assert err_stream.median_cents < err_offline.median_cents + 25
    vc = build_voice_changer(settings, sample_rate=sr)
    block, offset = vc.geometry.block, (-vc.align_samples) % vc.geometry.block
    clicks = click_score(streamed, block, sr, offset=offset)
    assert clicks <= 1.25 * click_score(offline, block, sr, offset=offset) + 0.5
    no_sola = settings.replace(sola=False)
    plain = (await convert_array(x, sr, no_sola)).output
    offset = (-build_voice_changer(no_sola, sample_rate=sr).align_samples) % block
    assert clicks < click_score(plain, block, sr, offset=offset)


async def test_update_settings_mid_stream_take_effect_in_order():
    sr = 16000
    x = harmonic(140.0, 1.6, sr)
    chunks = [AudioRawFrame(x[i : i + 320].copy(), sr, 1) for i in range(0, len(x), 320)]
    half = len(chunks) // 2
    frames = [*chunks[:half], UpdateSettingsFrame({"pitch": 12.0, "formant": 1.1}), *chunks[half:]]
    vc = build_voice_changer(VoiceChangerSettings(vad=False), sample_rate=sr)
    result = await run_pipeline(vc, frames)
    assert not result.errors
    y = np.concatenate([f.audio for f in result.data])[vc.align_samples :]
    f0 = get_f0_estimator("harvest", hop_seconds=0.01).estimate(y, sr).f0_hz
    switch = half * 320 // 160  # the frame (10 ms) where the settings changed
    before, after = f0[20 : switch - 8], f0[switch + 8 : switch + 60]
    assert np.median(before[before > 0]) == pytest.approx(140.0, rel=0.03)
    assert np.median(after[after > 0]) == pytest.approx(280.0, rel=0.03)


@pytest.mark.parametrize("rate", RATES)
async def test_every_rate_in_and_out(rate):
    x = harmonic(160.0, 0.4, rate)
    result = await convert_array(x, rate, VoiceChangerSettings(pitch=-3.0, vad=False))
    assert not result.errors and result.output.shape == x.shape and result.sample_rate == rate
    tail = result.output[int(0.1 * rate) : int(0.35 * rate)]
    assert np.isfinite(tail).all() and np.sqrt(np.mean(tail**2)) > 0.02


async def test_stereo_in_stereo_out():
    mono = harmonic(180.0, 0.5, 24000)
    stereo = np.stack([mono, 0.5 * mono], axis=1)
    result = await convert_array(stereo, 24000, VoiceChangerSettings(pitch=2.0, vad=False))
    assert result.output.shape == stereo.shape and result.channels == 2
    # the mid is converted, each channel's side restored aligned: L - R of the output is the input's
    np.testing.assert_allclose(
        result.output[:, 0] - result.output[:, 1], stereo[:, 0] - stereo[:, 1], atol=1e-5
    )
    assert not np.allclose(result.output[:, 0], result.output[:, 1])
    assert np.sqrt(np.mean(result.output[6000:, 0] ** 2)) > 0.02


async def test_fcpe_runs_beside_the_world_analysis():
    x, sr = speech(0.8)
    settings = VoiceChangerSettings(f0="fcpe", pitch=4.0, vad=False, gate="fixed")
    vc = build_voice_changer(settings, sample_rate=sr)
    assert vc.parallel and any(isinstance(p, SyncParallelPipeline) for p in vc.processors())
    result = await convert_array(x, sr, settings)
    assert not result.errors and result.report is not None and result.report.blocks > 10
    assert np.isfinite(result.output).all() and np.sqrt(np.mean(result.output**2)) > 0.01
    # the serial layout analyses with FCPE's own track, as the core does: the core's samples
    serial = settings.replace(parallel=False)
    y, vc = await run_dag(x, sr, serial)
    np.testing.assert_array_equal(y, core_output(x, sr, serial))
    assert vocoder_of(vc).lock.locked > 0 and vocoder_of(vc).lock_misses == 0
