from __future__ import annotations

import logging

from apipeline.frames import EndFrame, ImageRawFrame, SyncNotifyFrame, TextFrame, UpdateSettingsFrame
from apipeline.pipeline import PipelineParams
from apipeline.processors import (
    FrameFilter,
    FrameLogger,
    FunctionFilter,
    GatedAggregator,
    HoldFramesAggregator,
    OutputFrameProcessor,
    SentenceAggregator,
)
from apipeline.testing import run_processor
from tests.helpers import Suffix


async def test_frame_filter_keeps_types_and_never_drops_lifecycle():
    out = await run_processor(
        FrameFilter(ImageRawFrame), [TextFrame("a"), ImageRawFrame(b"", (0, 0))], include_control=True
    )
    names = [type(f).__name__ for f in out]
    assert names == ["StartFrame", "ImageRawFrame", "EndFrame"]


async def test_function_filter_sync_and_async():
    async def keep_async(frame):
        return frame.text != "b"

    for fn in (lambda f: f.text != "b", keep_async):
        out = await run_processor(FunctionFilter(fn), [TextFrame("a"), TextFrame("b"), TextFrame("c")])
        assert [f.text for f in out] == ["a", "c"]


async def test_sentence_aggregator_joins_and_flushes_at_end():
    frames = [TextFrame("Hello"), TextFrame(" world."), TextFrame(" 你好。"), TextFrame(" tail")]
    out = await run_processor(SentenceAggregator(), frames, include_control=True)
    assert [f.text for f in out if isinstance(f, TextFrame)] == ["Hello world.", "你好。", "tail"]
    assert isinstance(out[-1], EndFrame)


async def test_gated_aggregator_holds_until_open():
    agg = GatedAggregator(
        gate_open_fn=lambda f: isinstance(f, TextFrame) and f.text == "open",
        gate_close_fn=lambda f: isinstance(f, TextFrame) and f.text == "close",
        start_open=False,
    )
    out = await run_processor(agg, [TextFrame(t) for t in ["a", "b", "open", "c", "close", "d"]])
    assert [f.text for f in out] == ["open", "a", "b", "c", "close", "d"]


async def test_hold_frames_aggregator_releases_on_notify():
    agg = HoldFramesAggregator((TextFrame,))
    out = await run_processor(
        agg, [TextFrame("a"), TextFrame("b"), SyncNotifyFrame(), TextFrame("c")], include_control=True
    )
    names = [f.text if isinstance(f, TextFrame) else type(f).__name__ for f in out]
    assert names == ["StartFrame", "SyncNotifyFrame", "a", "b", "c", "EndFrame"]


async def test_output_frame_processor_sync_and_async_callbacks():
    got: list[str] = []

    async def acb(frame):
        got.append("async:" + frame.text)

    out = await run_processor(
        [OutputFrameProcessor(lambda f: got.append(f.text)), OutputFrameProcessor(acb)], [TextFrame("x")]
    )
    assert got == ["x", "async:x"] and [f.text for f in out] == ["x"]


async def test_frame_logger_logs_and_passes(caplog):
    with caplog.at_level(logging.INFO, logger="apipeline.frames"):
        out = await run_processor(FrameLogger("T"), [TextFrame("x")])
    assert [f.text for f in out] == ["x"]
    assert any("T -> TextFrame#" in r.message for r in caplog.records)


async def test_update_settings_frame_in_band():
    s = Suffix("-1", name="suf")
    out = await run_processor(s, [TextFrame("a"), UpdateSettingsFrame({"suf.suffix": "-2"}), TextFrame("b")])
    assert [f.text for f in out] == ["a-1", "b-2"]


async def test_update_settings_unknown_key_is_an_error():
    from apipeline.testing import run_pipeline

    r = await run_pipeline(
        [Suffix("-1", name="suf")], [UpdateSettingsFrame({"suf.nope": 1})], params=PipelineParams()
    )
    assert r.errors and "unknown setting 'nope'" in r.errors[0].error
