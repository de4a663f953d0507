"""The served voice changer's input is handed over a block at a time (BlockCoalescer), with nothing late,
lost or reordered, and the converted output unchanged."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apipeline.errors import ParameterError
from apipeline.frames import AudioRawFrame, EndFrame, Frame, TextFrame
from apipeline.pipeline.pipeline import Pipeline
from apipeline.pipeline.task import PipelineTask
from apipeline.processors import FrameDirection, FrameProcessor
from apipeline.transports import SessionSpec
from apipeline.transports.factories import BlockCoalescer, VoiceChangerFactory

RATE = 22050


def _chunk(n: int, start: int, *, dtype: str = "int16", bad: bool = False) -> AudioRawFrame:
    x = np.arange(start, start + n) % 30000
    audio = x.astype(np.int16) if dtype == "int16" else (x / 32768).astype(np.float32)
    if bad:
        audio[n // 2] = np.nan
    return AudioRawFrame(audio, sample_rate=RATE, pts=start)


@settings(max_examples=200, deadline=None)
@given(
    block=st.integers(1, 900),
    events=st.lists(
        st.one_of(
            st.integers(1, 2000),  # a plain chunk of that many samples
            st.sampled_from(["text", "nan", "other_rate", "float"]),
        ),
        max_size=40,
    ),
)
def test_nothing_is_late_lost_or_reordered(block: int, events: list) -> None:
    c = BlockCoalescer(block, RATE, 1)
    sent: list[Frame] = []  # what a pass-through would forward, in order
    out: list[Frame] = []
    framer = 0  # samples the voice changer's block framer has received (frames at the stream's format)
    total = 0
    pos = 0
    for e in events:
        if isinstance(e, int):
            f: Frame = _chunk(e, pos)
            pos += e
        elif e == "text":
            f = TextFrame("x")
        elif e == "nan":
            f = _chunk(7, pos, dtype="float32", bad=True)
            pos += 7
        elif e == "float":
            f = _chunk(5, pos, dtype="float32")
            pos += 5
        else:
            f = AudioRawFrame(np.zeros(9, np.int16), sample_rate=16000)
        sent.append(f)
        if isinstance(f, AudioRawFrame) and f.sample_rate == RATE:
            total += f.num_frames
        for g in c.push(f):
            out.append(g)
            if isinstance(g, AudioRawFrame) and g.sample_rate == RATE:
                framer += g.num_frames
        # never later than the framer could use it: every completed block has all its samples
        assert framer >= total // block * block
    out += c.release()

    # the same frames in the same order, plain audio runs merged: compare the flattened streams
    def flat(frames: list[Frame]) -> list[object]:
        items: list[object] = []
        for f in frames:
            if isinstance(f, AudioRawFrame) and f.sample_rate == RATE:
                items += [(f.audio.dtype.str, float(v)) for v in np.nan_to_num(f.audio, nan=-9.0)]
            else:
                items.append(id(f))
        return items

    assert flat(out) == flat(sent)


def test_a_chunk_the_guard_must_see_alone_is_not_merged() -> None:
    c = BlockCoalescer(1000, RATE, 1)
    assert c.push(_chunk(300, 0)) == []
    bad = _chunk(300, 300, dtype="float32", bad=True)
    out = c.push(bad)
    assert len(out) == 2 and out[1] is bad and out[0].num_frames == 300
    end = EndFrame()
    assert c.push(_chunk(100, 600)) == []
    assert c.push(end)[-1] is end


class _Collect(FrameProcessor):
    def __init__(self) -> None:
        super().__init__(name="collect")
        self.audio: list[np.ndarray] = []
        self.pts: list[int | None] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, AudioRawFrame):
            self.audio.append(np.asarray(frame.audio))
            self.pts.append(frame.pts)
        await self.push_frame(frame, direction)


async def _serve(audio: np.ndarray, coalesce: bool) -> _Collect:
    factory = VoiceChangerFactory()
    built = factory.build(SessionSpec("s", RATE, 1, {"pitch": 4.0, "formant": 1.1}))
    entry = built._processors[0]  # type: ignore[attr-defined]
    assert entry.coalescer is not None  # the stream runs at the processing rate
    if not coalesce:
        entry.coalescer = None
    sink = _Collect()
    task = PipelineTask(Pipeline([built, sink]), name="t")
    n = RATE // 50
    for i in range(0, len(audio) - n + 1, n):
        await task.queue_frame(AudioRawFrame(audio[i : i + n], sample_rate=RATE, pts=1_000_000 * i))
    await task.stop_when_done()
    await task.run()
    return sink


async def test_served_output_is_unchanged() -> None:
    """The same samples and the same pts (the chunk that completed each block) with and without merging."""
    t = np.arange(int(1.5 * RATE)) / RATE
    rng = np.random.default_rng(3)
    voice = 0.3 * np.sin(2 * np.pi * 140 * t * (1 + 0.1 * np.sin(3 * t))) + 0.01 * rng.standard_normal(len(t))
    audio = (voice * 32767).astype(np.int16)
    merged, plain = await _serve(audio, True), await _serve(audio, False)
    assert len(merged.audio) == len(plain.audio) > 30
    np.testing.assert_array_equal(np.concatenate(merged.audio), np.concatenate(plain.audio))
    assert merged.pts == plain.pts


def test_a_block_under_one_sample_is_refused() -> None:
    with pytest.raises(ParameterError, match="block must be >= 1"):
        BlockCoalescer(0, RATE, 1)
