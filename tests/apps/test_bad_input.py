"""Bad input to the voice changer: errors name the problem, the stream keeps its clock, nothing crashes."""

import numpy as np
import pytest

from apipeline.errors import AudioFormatError
from apipeline.frames import AudioRawFrame
from apipeline.testing import run_pipeline
from apipeline.voice_changer import (
    VoiceChangerSettings,
    build_voice_changer,
    convert_array,
    render_offline_array,
)

SR = 16000


def tone(seconds: float, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amp * np.sin(2 * np.pi * 150 * t)).astype(np.float32)


async def test_nan_frame_is_reported_replaced_by_silence_and_the_clock_kept():
    chunks = [tone(0.02) for _ in range(40)]
    chunks[10] = chunks[10].copy()
    chunks[10][5:9] = np.nan
    frames = [AudioRawFrame(c, SR, 1) for c in chunks]
    frames.insert(20, AudioRawFrame(tone(0.02), 8000, 1))  # another rate mid-stream: dropped, reported
    frames.insert(30, AudioRawFrame(np.zeros(0, np.float32), SR, 1))  # empty frame
    vc = build_voice_changer(VoiceChangerSettings(vad=False), sample_rate=SR)
    result = await run_pipeline(vc, frames)
    errors = [e.error for e in result.errors]
    assert len(errors) == 3
    assert any("4 NaN/Inf sample(s) at stream position 3200; replaced by silence" in e for e in errors)
    assert any("the stream is 16000 Hz, 1 ch" in e and "8000 Hz" in e for e in errors)
    assert any("empty audio frame" in e for e in errors)
    y = np.concatenate([f.audio for f in result.data])
    assert np.isfinite(y).all()
    assert len(y) >= 40 * 320 + vc.align_samples  # every good input sample has its output
    late = y[30 * 320 : 38 * 320]
    assert np.sqrt(np.mean(late**2)) > 0.05  # converted audio after the bad frames


async def test_silence_and_clipping_are_named_and_converted():
    silent = await convert_array(np.zeros(SR // 2, np.float32), SR)
    assert silent.warnings == ["input is digital silence: the output is silence"]
    assert not silent.errors and (silent.output == 0).all() and silent.blocks_gated > 0
    clipped = np.clip(tone(0.5, 3.0), -1.0, 1.0)
    result = await convert_array(clipped, SR, VoiceChangerSettings(pitch=2.0))
    assert len(result.warnings) == 1 and result.warnings[0].startswith("input is clipped:")
    assert np.isfinite(result.output).all() and not result.errors


def test_unsupported_rates_and_bad_settings_are_refused_before_running():
    with pytest.raises(AudioFormatError, match=r"8000 Hz input is outside the supported 16000\.\.48000 Hz"):
        build_voice_changer(VoiceChangerSettings(), sample_rate=8000)
    build_voice_changer(VoiceChangerSettings(sample_rate=16000, vad=False), sample_rate=8000)  # resampled
    with pytest.raises(ValueError, match="f0 must be one of"):
        build_voice_changer(VoiceChangerSettings(f0="yin"), sample_rate=SR)
    with pytest.raises(ValueError, match="formant must be within"):
        build_voice_changer(VoiceChangerSettings(formant=0.0), sample_rate=SR)
    with pytest.raises(AudioFormatError, match="NaN/Inf"):
        render_offline_array(np.full(SR, np.nan, np.float32), SR)
