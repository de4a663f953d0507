"""Streaming voice changer core: sizes, latency, exact lengths, pitch, continuity, silence gate, errors."""

from __future__ import annotations

import numpy as np
import pytest

from apipeline.audio.f0 import get_f0_estimator
from apipeline.audio.metrics import click_score
from apipeline.audio.voice_changer import StreamingVoiceChanger, render_offline
from apipeline.errors import AudioFormatError


def glide(sr: int, seconds: float) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    f0 = 140 + 20 * np.sin(2 * np.pi * 0.8 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    return (0.2 * sum(np.sin(h * phase) / h for h in range(1, 30))).astype(np.float32)


def run(vc: StreamingVoiceChanger, x: np.ndarray, chunk: int) -> np.ndarray:
    outs = [vc.push(x[i : i + chunk]) for i in range(0, len(x), chunk)]
    return np.concatenate([*outs, vc.flush()])


def test_default_sizes_meet_the_latency_budget() -> None:
    vc = StreamingVoiceChanger(22050)
    assert vc.block_size % vc.hop == 0 and vc.context_size % vc.hop == 0
    assert vc.latency_seconds <= 0.060
    assert vc.latency_samples == vc.block_size + vc.crossfade_size + vc.search_size + vc.lookahead_size


@pytest.mark.parametrize("chunk", [123, 1000])
def test_output_length_is_whole_blocks_whatever_the_chunking(chunk: int) -> None:
    sr = 16000
    x = glide(sr, 0.5)
    vc = StreamingVoiceChanger(sr, pitch=3.0)
    y = run(vc, x, chunk)
    blocks = -(-len(x) // vc.block_size) + -(-vc.delay_samples // vc.block_size)
    assert y.dtype == np.float32 and len(y) == blocks * vc.block_size


def test_streamed_pitch_shift_and_no_border_clicks() -> None:
    sr = 16000
    x = glide(sr, 1.5)
    vc = StreamingVoiceChanger(sr, pitch=4.0)
    y = run(vc, x, vc.block_size)
    delay = vc.crossfade_size + vc.search_size // 2
    ref = get_f0_estimator("harvest")
    f_in, f_out = ref.estimate(x, sr), ref.estimate(y[delay : delay + len(x)], sr)
    both = f_in.voiced & f_out.voiced
    cents = np.abs(1200 * np.log2(f_out.f0_hz[both] / (f_in.f0_hz[both] * 2 ** (4 / 12))))
    assert both.mean() > 0.8 and np.median(cents) < 10
    offline = render_offline(x, sr, pitch=4.0)
    assert click_score(y, vc.block_size, sr) < 1.25 * click_score(offline, vc.block_size, sr) + 0.5


def test_silence_gate_outputs_silence_with_the_right_length() -> None:
    vc = StreamingVoiceChanger(16000)
    y = vc.push(np.zeros(vc.block_size * 4, np.float32))
    assert len(y) == 4 * vc.block_size and not y.any() and vc.blocks_gated == 4


def test_process_block_and_bad_input() -> None:
    vc = StreamingVoiceChanger(16000)
    assert len(vc.process_block(glide(16000, 1.0)[: vc.block_size])) == vc.block_size
    with pytest.raises(AudioFormatError, match="exactly"):
        vc.process_block(np.zeros(10, np.float32))
    with pytest.raises(AudioFormatError, match="NaN"):
        vc.push(np.array([np.nan], np.float32))
    with pytest.raises(AudioFormatError, match="mono"):
        vc.push(np.zeros((10, 2), np.float32))
    with pytest.raises(ValueError, match="unknown F0 estimator"):
        StreamingVoiceChanger(16000, f0="nope")


def test_offline_render_keeps_length_and_shifts_pitch() -> None:
    sr = 22050
    x = glide(sr, 0.6)
    y = render_offline(x, sr, pitch=-5.0, formant=1.1)
    assert len(y) == len(x)
    tr_in, tr_out = get_f0_estimator("harvest").estimate(x, sr), get_f0_estimator("harvest").estimate(y, sr)
    both = tr_in.voiced & tr_out.voiced
    assert np.median(np.abs(1200 * np.log2(tr_out.f0_hz[both] / tr_in.f0_hz[both]) + 500)) < 10


def steady(f0: float, sr: int, seconds: float) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (0.2 * sum(np.sin(2 * np.pi * h * f0 * t) / h for h in range(1, 40) if h * f0 < sr / 2)).astype(
        np.float32
    )


def border_cents(
    y: np.ndarray, x: np.ndarray, sr: int, vc: StreamingVoiceChanger, shift: float
) -> np.ndarray:
    """|cents| off the requested shift per 5 ms frame of the streamed output, start-up skipped."""
    ref = get_f0_estimator("harvest", hop_seconds=0.005)
    delay = vc.crossfade_size + vc.search_size + vc.lookahead_size
    f_in, f_out = ref.estimate(x, sr), ref.estimate(y[delay : delay + len(x)], sr)
    keep = slice(40, len(x) * 200 // sr - 10)  # skip the first 200 ms (start-up) and the ragged end
    f_out_hz, f_in_hz = f_out.f0_hz[keep], f_in.f0_hz[keep]
    with np.errstate(divide="ignore", invalid="ignore"):
        cents = np.abs(1200 * np.log2(f_out_hz / (f_in_hz * 2 ** (shift / 12))))
    return np.where(np.isfinite(cents), cents, 2400.0)  # a frame called unvoiced counts as a gross error


@pytest.mark.parametrize(("f0", "shift"), [(100.0, 4.0), (90.0, -5.0)])
def test_phase_lock_keeps_streamed_windows_coherent(f0: float, shift: float) -> None:
    # a search far shorter than the output pitch period: without the lock SOLA cannot align the windows'
    # pulse trains and the crossfades double pulses (octave bursts at the block rate)
    sr = 22050
    x = steady(f0, sr, 1.5)
    settings = dict(pitch=shift, search_ms=0.5, lookahead_ms=10.0)
    vc = StreamingVoiceChanger(sr, **settings)
    locked = border_cents(run(vc, x, vc.block_size), x, sr, vc, shift)
    assert np.median(locked) < 10 and np.mean(locked > 50) < 0.1 and np.max(locked) < 600
    vc_free = StreamingVoiceChanger(sr, phase_lock=False, **settings)
    free = border_cents(run(vc_free, x, vc_free.block_size), x, sr, vc_free, shift)
    assert np.mean(free > 50) > 0.3  # the failure the lock exists to prevent is real
