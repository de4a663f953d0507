import numpy as np
import pytest

from apipeline.audio.f0 import F0Track
from apipeline.audio.world import WorldFeatures
from apipeline.frames import UpdateSettingsFrame
from apipeline.processors.audio.features import ConvertedFeaturesFrame, F0Frame, SpectralFeaturesFrame
from apipeline.processors.audio.svc import VoiceConversionProcessor
from apipeline.testing import run_pipeline

SR, BINS, N = 16000, 513, 40


def frames(seq: int, f0_hz: float = 150.0) -> tuple[F0Frame, SpectralFeaturesFrame]:
    f0 = np.full(N, f0_hz)
    f0[:3] = 0.0  # unvoiced start
    track = F0Track(f0, f0 > 0, 0.005)
    analysis_f0 = f0.copy()
    analysis_f0[-2:] = 0.0  # the analysis saw the end unvoiced: the conversion must follow it
    sp = np.tile(np.exp(-np.linspace(0, 8, BINS)), (20, 1))
    feats = WorldFeatures(analysis_f0[20:], sp, np.full((20, BINS), 0.1), 5.0, 1024, SR, start_frame=20)
    return F0Frame(seq=seq, track=track, sample_rate=SR), SpectralFeaturesFrame(
        seq=seq, features=feats, source=np.zeros(10), kept_size=10
    )


async def test_joins_by_seq_in_any_order_and_shifts_pitch():
    f0a, spa = frames(0)
    f0b, spb = frames(1)
    proc = VoiceConversionProcessor(pitch=4.0, formant=1.2)
    out = (await run_pipeline(proc, [spa, f0a, f0b, spb])).data
    assert [type(f) for f in out] == [ConvertedFeaturesFrame] * 2 and [f.seq for f in out] == [0, 1]
    f0 = out[0].features.f0
    np.testing.assert_allclose(f0[:-2], 150.0 * 2 ** (4 / 12))
    assert (f0[-2:] == 0).all()
    assert out[0].features.sp[0, 100] != spa.features.sp[0, 100]  # warped


async def test_update_settings_apply_in_order_and_bad_values_are_refused():
    blocks = [frames(i) for i in range(3)]
    proc = VoiceConversionProcessor(pitch=0.0)
    stream = [*blocks[0], UpdateSettingsFrame({"pitch": 12.0}), *blocks[1]]
    stream += [UpdateSettingsFrame({"formant": -1.0}), *blocks[2]]
    result = await run_pipeline(proc, stream)
    medians = [float(np.median(f.features.f0[f.features.f0 > 0])) for f in result.data]
    assert medians == pytest.approx([150.0, 300.0, 300.0])
    assert len(result.errors) == 1 and "formant_ratio must be positive" in result.errors[0].error
    assert proc.formant == 1.0 and proc.pitch == 12.0


async def test_missing_halves_render_silent_or_are_evicted():
    f0a, spa = frames(0)
    spa.features = None
    proc = VoiceConversionProcessor()
    out = (await run_pipeline(proc, [f0a, spa])).data
    assert out[0].features is None
    lonely = [frames(i)[0] for i in range(10)]
    result = await run_pipeline(VoiceConversionProcessor(), lonely)
    assert not result.data and len(result.errors) == 2
    assert "block 0 never got both" in result.errors[0].error
