import numpy as np
import pytest

from apipeline.audio.world import analyze
from apipeline.frames import UpdateSettingsFrame
from apipeline.processors.audio.features import SEQ_KEY, BlockGeometry, ConvertedFeaturesFrame
from apipeline.processors.audio.vocoder import VocoderProcessor
from apipeline.testing import run_pipeline

SR = 16000
G = BlockGeometry.from_ms(SR)


def converted(seq: int) -> ConvertedFeaturesFrame:
    t = np.arange(G.window) / SR
    x = sum(0.3 / k * np.sin(2 * np.pi * k * 150 * t) for k in range(1, 8))
    feats = analyze(x, SR, "dio", G.frame_period_ms, frames=G.frames)
    source = x[G.kept_start : G.kept_start + G.kept_size]
    return ConvertedFeaturesFrame(
        seq=seq, features=feats, source=source, kept_start=G.kept_start, kept_size=G.kept_size
    )


@pytest.mark.parametrize("kind", ["world", "griffin-lim"])
async def test_renders_the_kept_span(kind):
    voc = VocoderProcessor(sample_rate=SR, kind=kind, lookahead=G.lookahead)
    frame = converted(3)
    out = (await run_pipeline(voc, [frame])).data
    y = out[0].audio
    assert out[0].metadata[SEQ_KEY] == 3 and y.shape == (G.kept_size,) and y.dtype == np.float32
    assert np.isfinite(y).all()
    rms_in, rms_out = np.sqrt(np.mean(frame.source**2)), np.sqrt(np.mean(y.astype(np.float64) ** 2))
    assert 0.2 < rms_out / rms_in < 5.0


async def test_silent_block_loudness_matching_and_bad_setting():
    voc = VocoderProcessor(sample_rate=SR, threaded=False)
    empty = ConvertedFeaturesFrame(seq=0, features=None, kept_size=G.kept_size)
    quiet = converted(1)
    quiet.source = quiet.source * 0.01  # loudness matching must follow the (quiet) input
    stream = [
        empty,
        UpdateSettingsFrame({"rms_mix_rate": 0.0}),
        quiet,
        UpdateSettingsFrame({"rms_mix_rate": 2}),
    ]
    result = await run_pipeline(voc, stream)
    silent, matched = result.data
    assert (silent.audio == 0).all() and silent.num_frames == G.kept_size
    assert np.sqrt(np.mean(matched.audio.astype(np.float64) ** 2)) < 0.05
    assert voc.rms_mix_rate == 0.0 and "rms_mix_rate must be within [0, 1]" in result.errors[0].error
    with pytest.raises(ValueError, match="kind must be one of"):
        VocoderProcessor(sample_rate=SR, kind="hifigan")
