import numpy as np

from apipeline.frames import AudioRawFrame
from apipeline.pipeline import pipeline_latency
from apipeline.processors.audio.features import SEQ_KEY, SolaOffsetFrame
from apipeline.processors.audio.sola import SolaProcessor
from apipeline.testing import RecordingSink, run_pipeline

SR = 16000


async def test_exact_block_out_per_frame_and_continuity():
    sola = SolaProcessor(320, 80, 120, sample_rate=SR)
    assert sola.input_size == 520 and pipeline_latency(sola) == 200 / SR
    t = np.arange(20 * 320 + 520) / SR
    signal = np.sin(2 * np.pi * 200 * t).astype(np.float32)
    # each window continues the previous tail exactly: the stitch must reproduce the signal
    frames = [
        AudioRawFrame(signal[i * 320 : i * 320 + 520].copy(), SR, 1, metadata={"i": i}) for i in range(20)
    ]
    out = (await run_pipeline(sola, frames)).data
    assert [f.num_frames for f in out] == [320] * 20 and [f.metadata["i"] for f in out] == list(range(20))
    y = np.concatenate([f.audio for f in out])
    np.testing.assert_allclose(y[320:], signal[320 : 20 * 320], atol=1e-5)
    assert sola.blocks_stitched == 20


async def test_wrong_length_is_an_error_and_keeps_the_tail():
    sola = SolaProcessor(320, 80, 0, sample_rate=SR)
    x = np.ones(400, np.float32)
    frames = [
        AudioRawFrame(x, SR, 1),
        AudioRawFrame(np.ones(399, np.float32), SR, 1),
        AudioRawFrame(x, SR, 1),
    ]
    result = await run_pipeline(sola, frames)
    assert len(result.errors) == 1 and "expects 400 samples per frame" in result.errors[0].error
    assert [f.num_frames for f in result.data] == [320, 320]
    np.testing.assert_allclose(result.data[1].audio, 1.0, atol=1e-6)


async def test_report_offset_answers_each_block_upstream():
    sola = SolaProcessor(320, 80, 40, sample_rate=SR, report_offset=True)
    before = RecordingSink()  # what SOLA sends upstream reaches the processor before it
    t = np.arange(6 * 320 + 440) / SR
    signal = np.sin(2 * np.pi * 170 * t).astype(np.float32)
    frames = [
        AudioRawFrame(signal[i * 313 : i * 313 + 440].copy(), SR, 1, metadata={SEQ_KEY: 10 + i})
        for i in range(5)
    ]
    result = await run_pipeline([before, sola], frames)
    answers = [f for f in before.upstream if isinstance(f, SolaOffsetFrame)]
    assert [a.seq for a in answers] == [10, 11, 12, 13, 14] and len(result.data) == 5
    for a in answers:
        assert 0 <= a.offset <= 40 and a.anchor == a.offset + 40 and a.advance == 320
    assert [a.offset for a in answers] == [0, 7, 14, 21, 28]  # each window 7 samples earlier: SOLA follows
    quiet = RecordingSink()
    await run_pipeline([quiet, SolaProcessor(320, 80, 40, sample_rate=SR)], frames)
    assert not any(isinstance(f, SolaOffsetFrame) for f in quiet.upstream)  # off by default
