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
