"""Live I/O against fake PortAudio streams: the callbacks run on a real second thread, as with PortAudio."""

import asyncio
import threading

import numpy as np

from apipeline.frames import AudioRawFrame, Frame
from apipeline.pipeline.pipeline import Pipeline
from apipeline.pipeline.task import PipelineTask
from apipeline.processors.audio import MemoryAudioSource, MicrophoneSource, SpeakerSink
from apipeline.processors.frame_processor import FrameDirection
from apipeline.testing import RecordingSink, run_pipeline


class FakeInputStream:
    """Delivers the given blocks to the callback from its own thread once started."""

    def __init__(self, blocks: list[np.ndarray], **kwargs) -> None:
        self.kwargs = kwargs
        self.blocks = blocks
        self.closed = False
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        for b in self.blocks:
            self.kwargs["callback"](b.reshape(-1, self.kwargs["channels"]), len(b), None, 0)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._thread.join()

    def close(self) -> None:
        self.closed = True


class CountingSink(RecordingSink):
    def __init__(self, wanted: int) -> None:
        super().__init__()
        self.wanted = wanted
        self.done = asyncio.Event()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if len([f for f in self.downstream if isinstance(f, AudioRawFrame)]) >= self.wanted:
            self.done.set()


async def test_microphone_delivers_blocks_in_order():
    rng = np.random.default_rng(0)
    blocks = [rng.uniform(-0.5, 0.5, 320).astype(np.float32) for _ in range(10)]
    streams: list[FakeInputStream] = []

    def factory(**kw):
        streams.append(FakeInputStream(blocks, **kw))
        return streams[-1]

    mic = MicrophoneSource(sample_rate=16000, block_ms=20, stream_factory=factory)
    sink = CountingSink(10)
    task = PipelineTask(Pipeline([mic, sink]))
    runner = asyncio.create_task(task.run())
    await asyncio.wait_for(sink.done.wait(), 10)
    await task.stop_when_done()
    await asyncio.wait_for(runner, 10)
    audio = [f for f in sink.downstream if isinstance(f, AudioRawFrame)]
    np.testing.assert_array_equal(np.concatenate([f.audio for f in audio]), np.concatenate(blocks))
    assert streams[0].kwargs["blocksize"] == 320 and streams[0].kwargs["samplerate"] == 16000
    assert streams[0].closed and mic.statistics().blocks == 10 and mic.statistics().dropped == 0
    assert all(f.pts is not None for f in audio)


def test_microphone_drops_oldest_when_pipeline_lags():
    mic = MicrophoneSource(max_buffered=3, stream_factory=lambda **kw: None)
    for i in range(5):
        mic._deliver(np.full((4, 1), i, np.float32), i, 0)
    assert mic.statistics().dropped == 2
    assert [int(b[0][0, 0]) for b in mic._buffer] == [2, 3, 4]


class FakeOutputStream:
    """Pulls blocks through the callback on its own thread, 10x faster than real time."""

    def __init__(self, **kwargs) -> None:
        self.kwargs = kwargs
        self.played: list[np.ndarray] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        n, ch = self.kwargs["blocksize"], self.kwargs["channels"]
        while not self._stop.wait(n / self.kwargs["samplerate"] / 10):
            out = np.empty((n, ch), np.float32)
            self.kwargs["callback"](out, n, None, 0)
            self.played.append(out.copy())

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def close(self) -> None:
        pass


async def test_speaker_plays_everything_in_order_with_bounded_buffer():
    x = (0.1 + 0.05 * np.random.default_rng(1).standard_normal(8000)).astype(np.float32)
    x[np.abs(x) < 1e-3] = 0.2  # no exact zeros, so silence inserted by underruns can be told apart
    streams: list[FakeOutputStream] = []

    def factory(**kw):
        streams.append(FakeOutputStream(**kw))
        return streams[-1]

    speaker = SpeakerSink(sample_rate=16000, block_ms=10, buffer_ms=40, stream_factory=factory)
    result = await run_pipeline([MemoryAudioSource(x, 16000, block_ms=25), speaker], [], end=False)
    assert not result.errors
    played = np.concatenate(streams[0].played)[:, 0]
    np.testing.assert_array_equal(played[played != 0], x)
    assert speaker.buffered_frames == 0
    assert speaker.latency == 0.04


async def test_speaker_refuses_wrong_rate():
    speaker = SpeakerSink(sample_rate=16000, stream_factory=lambda **kw: FakeOutputStream(**kw))
    result = await run_pipeline(speaker, [AudioRawFrame(np.zeros(100, np.float32), 48000, 1)])
    assert len(result.errors) == 1 and "expects 16000 Hz audio, got 48000 Hz" in result.errors[0].error
