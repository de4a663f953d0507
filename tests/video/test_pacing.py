"""Pictures leave on their presentation time; late pictures are dropped and counted, audio never."""

import asyncio

import numpy as np
import pytest

from apipeline.frames import AudioRawFrame, MetricsFrame, StartInterruptionFrame
from apipeline.frames.video import VideoFrame
from apipeline.pipeline import Pipeline, PipelineParams, PipelineTask
from apipeline.processors.video import TalkingHeadProcessor, VideoPacer
from apipeline.testing import RecordingSink, run_pipeline
from apipeline.video.mouth import MouthShape

MS = 1_000_000


class VirtualClock:
    """Time that moves only when someone waits on it or a renderer spends it."""

    def __init__(self) -> None:
        self.t = 0

    def now_ns(self) -> int:
        return self.t

    async def sleep_until(self, t_ns: int) -> None:
        self.t = max(self.t, t_ns)
        await asyncio.sleep(0)


class SlowRenderer:
    """A renderer that takes ``cost_ms`` of (virtual) time per picture."""

    size = (32, 32)

    def __init__(self, clock: VirtualClock, cost_ms: float) -> None:
        self.clock, self.cost = clock, round(cost_ms * MS)
        self.calls = 0

    def render(self, shape: MouthShape) -> np.ndarray:
        self.calls += 1
        self.clock.t += self.cost
        return np.full((32, 32, 3), shape.index % 256, np.uint8)

    def reset(self) -> None:
        pass


def _audio(n_chunks: int, clock_step_ms: int = 20, sr: int = 16000) -> list[AudioRawFrame]:
    rng = np.random.default_rng(0)
    n = sr * clock_step_ms // 1000
    return [
        AudioRawFrame((rng.standard_normal(n) * 0.1).astype(np.float32), sr, pts=i * clock_step_ms * MS)
        for i in range(n_chunks)
    ]


def _video(i: int, pts: int | None) -> VideoFrame:
    return VideoFrame(np.zeros((16, 16, 3), np.uint8), index=i, fps=25.0, pts=pts)


async def test_pictures_leave_at_pts_plus_latency_and_audio_at_once():
    clock = VirtualClock()
    pacer = VideoPacer(latency_s=0.1, clock=clock)
    released = []
    frames = [_video(i, i * 40 * MS) for i in range(5)]

    orig = pacer.push_frame

    async def spy(frame, direction=None, **kw):
        if isinstance(frame, VideoFrame):
            released.append((frame.index, clock.now_ns()))
        await (orig(frame) if direction is None else orig(frame, direction))

    pacer.push_frame = spy  # type: ignore[method-assign]
    out = await run_pipeline(pacer, frames)
    assert [i for i, _ in released] == list(range(5))
    assert [t for _, t in released] == [(i * 40 + 100) * MS for i in range(5)]
    stats = pacer.statistics()
    assert stats["video_released"] == 5 and stats["video_late_dropped"] == 0
    assert stats["av_offset_ms_p99"] == 0.0
    metrics = [f for f in out.downstream if isinstance(f, MetricsFrame)]
    assert metrics and metrics[-1].data[0]["video_released"] == 5


async def test_a_renderer_slower_than_real_time_loses_pictures_not_audio():
    clock = VirtualClock()
    renderer = SlowRenderer(clock, cost_ms=60.0)  # 60 ms per 40 ms picture
    pacer = VideoPacer(latency_s=0.1, clock=clock)
    audio = _audio(100)  # 2 s
    out = await run_pipeline([TalkingHeadProcessor(renderer, fps=25), pacer], audio)
    assert out.errors == []
    got_audio = [f for f in out.downstream if isinstance(f, AudioRawFrame)]
    assert [f.id for f in got_audio] == [f.id for f in audio]  # every chunk, in order: continuous
    pictures = [f for f in out.downstream if isinstance(f, VideoFrame)]
    stats = pacer.statistics()
    assert renderer.calls == 50
    assert stats["video_late_dropped"] > 0
    assert stats["video_released"] + stats["video_late_dropped"] == 50
    assert len(pictures) == stats["video_released"]
    assert [p.index for p in pictures] == sorted(p.index for p in pictures)


async def test_pictures_that_keep_up_are_all_shown_with_their_audio():
    clock = VirtualClock()
    renderer = SlowRenderer(clock, cost_ms=0.0)
    pacer = VideoPacer(latency_s=0.1, clock=clock)
    audio = _audio(50)
    out = await run_pipeline([TalkingHeadProcessor(renderer, fps=25), pacer], audio)
    pictures = [f for f in out.downstream if isinstance(f, VideoFrame)]
    assert [p.index for p in pictures] == list(range(25))
    # a picture's pts is the entry time of the audio its period starts in, plus the offset inside it
    assert [p.pts for p in pictures] == [i * 40 * MS for i in range(25)]
    assert [p.media_ns for p in pictures] == [i * 40 * MS for i in range(25)]
    assert pacer.statistics()["video_late_dropped"] == 0


class ManualClock:
    """Time that moves only when the test moves it."""

    def __init__(self) -> None:
        self.t = 0
        self.sleeping_until: int | None = None
        self._changed = asyncio.Event()

    def now_ns(self) -> int:
        return self.t

    def advance_to(self, t_ns: int) -> None:
        self.t = t_ns
        self._changed.set()

    async def sleep_until(self, t_ns: int) -> None:
        self.sleeping_until = t_ns
        try:
            while self.t < t_ns:
                self._changed.clear()
                await self._changed.wait()
        finally:
            self.sleeping_until = None


async def test_interruption_drops_queued_pictures_at_once_and_counts_them():
    clock = ManualClock()
    pacer = VideoPacer(latency_s=0.1, clock=clock)
    sink = RecordingSink()
    task = PipelineTask(Pipeline([pacer, sink]), PipelineParams(allow_interruptions=True))
    runner = asyncio.create_task(task.run())
    await task.queue_frames([_video(i, (10_000 + i * 40) * MS) for i in range(3)])
    for _ in range(1000):
        if clock.sleeping_until is not None:
            break
        await asyncio.sleep(0)
    # the release task is asleep until the first picture is due, 10 s from now
    assert clock.sleeping_until == 10_100 * MS and len(pacer._pending) == 3
    await task.queue_frame(StartInterruptionFrame())
    await task.queue_frame(_video(3, 0))
    await task.stop_when_done()
    for _ in range(100):
        if pacer._pending:
            break
        await asyncio.sleep(0)
    clock.advance_to(100 * MS)  # the new picture is due; the dropped ones were due in 10 s
    await asyncio.wait_for(runner, 10)
    shown = [f.index for f in sink.downstream if isinstance(f, VideoFrame)]
    assert shown == [3]
    assert pacer.statistics()["video_interrupted"] == 3


async def test_a_picture_past_its_slot_is_dropped_on_arrival_one_within_it_is_shown():
    clock = VirtualClock()
    clock.t = 130 * MS  # due = pts + 100 ms, tolerance 20 ms (half of 40 ms)
    pacer = VideoPacer(latency_s=0.1, clock=clock)
    out = await run_pipeline(pacer, [_video(0, 0), _video(1, 20 * MS), _video(2, None)])
    shown = [f.index for f in out.downstream if isinstance(f, VideoFrame)]
    assert shown == [1, 2]  # a picture without pts is shown as soon as possible
    assert pacer.statistics()["video_late_dropped"] == 1


def test_bad_pacer_options_are_refused():
    with pytest.raises(ValueError, match="latency_s"):
        VideoPacer(latency_s=-1)
    with pytest.raises(ValueError, match="max_pending"):
        VideoPacer(max_pending=0)
