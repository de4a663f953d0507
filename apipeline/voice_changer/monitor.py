"""Real-time accounting of a block-wise renderer: per-block compute, turnaround and underruns.

:class:`BlockMonitor` sits right after the SOLA stitcher (one frame per block) and reads two metadata
entries the voice-changer stages leave on every block:

* ``compute_ns``: compute spent on the block along its critical path (the F0 and spectral branches
  count as their maximum when they run side by side): the block's share of CPU work.
* ``ready_ns``: when its window was complete (stamped by :class:`~apipeline.voice_changer.gate.BlockGate`).

``turnaround = now - ready_ns`` adds the time the block waited in queues. A block *underruns* when its
turnaround exceeds the block duration: a live output device asking for the block one block after its
input was complete would have found nothing and played silence. That is only meaningful when the
source is paced in real time (``realtime=True``); as-fast-as-possible runs queue every block behind the
others, so they report compute and the real-time factor but no underruns.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from apipeline.frames import AudioRawFrame, Frame, StartFrame
from apipeline.processors.audio.features import COMPUTE_KEY, READY_KEY
from apipeline.processors.frame_processor import FrameDirection, FrameProcessor, monotonic_ns


@dataclass(frozen=True, slots=True)
class RealtimeReport:
    """What a run measured (milliseconds unless named otherwise); ``underruns`` is None when not paced."""

    blocks: int
    block_ms: float
    deadline_ms: float
    latency_ms: float
    compute_p50_ms: float
    compute_p99_ms: float
    compute_max_ms: float
    turnaround_p50_ms: float
    turnaround_p99_ms: float
    underruns: int | None
    audio_s: float
    wall_s: float
    rtf: float
    wall_rtf: float
    cpu_rtf: float
    realtime: bool

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


class BlockMonitor(FrameProcessor):
    """Record per-block compute and turnaround of the audio frames that pass (they pass unchanged).

    Args:
        block_seconds: the block duration (the deadline).
        realtime: whether the source is paced in real time (underruns are counted only then).
        window: how many blocks' measurements are kept (bounded memory on endless streams).
    """

    def __init__(
        self, block_seconds: float, *, realtime: bool = False, window: int = 100_000, name: str | None = None
    ) -> None:
        super().__init__(name=name)
        self.block_seconds = block_seconds
        self.realtime = realtime
        self.compute_ns: deque[int] = deque(maxlen=window)
        self.turnaround_ns: deque[int] = deque(maxlen=window)
        self.blocks = 0
        self.underruns = 0
        self.compute_total_ns = 0
        self._t0_wall = 0.0
        self._t0_cpu = 0.0

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        self._t0_wall = time.perf_counter()
        self._t0_cpu = time.process_time()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, AudioRawFrame) and direction is FrameDirection.DOWNSTREAM:
            meta = frame.metadata
            compute = int(meta.get(COMPUTE_KEY, 0))
            self.compute_ns.append(compute)
            self.compute_total_ns += compute
            self.blocks += 1
            ready = meta.get(READY_KEY)
            if ready is not None:
                turnaround = monotonic_ns() - int(ready)
                self.turnaround_ns.append(turnaround)
                if self.realtime and turnaround > self.block_seconds * 1e9:
                    self.underruns += 1
        await self.push_frame(frame, direction)

    def report(self, latency_seconds: float) -> RealtimeReport:
        """The measurements so far (call after the run; wall and CPU time count from ``StartFrame``)."""
        wall = time.perf_counter() - self._t0_wall if self._t0_wall else 0.0
        cpu = time.process_time() - self._t0_cpu if self._t0_wall else 0.0
        audio_s = self.blocks * self.block_seconds
        comp = np.asarray(self.compute_ns, dtype=np.float64) / 1e6
        turn = np.asarray(self.turnaround_ns, dtype=np.float64) / 1e6

        def pct(a: np.ndarray, q: float) -> float:
            return float(np.percentile(a, q)) if a.size else 0.0

        per_audio = 1.0 / audio_s if audio_s else 0.0
        return RealtimeReport(
            blocks=self.blocks,
            block_ms=1000.0 * self.block_seconds,
            deadline_ms=1000.0 * self.block_seconds,
            latency_ms=1000.0 * latency_seconds,
            compute_p50_ms=pct(comp, 50),
            compute_p99_ms=pct(comp, 99),
            compute_max_ms=float(comp.max()) if comp.size else 0.0,
            turnaround_p50_ms=pct(turn, 50),
            turnaround_p99_ms=pct(turn, 99),
            underruns=self.underruns if self.realtime else None,
            audio_s=audio_s,
            wall_s=wall,
            rtf=self.compute_total_ns / 1e9 * per_audio,
            wall_rtf=wall * per_audio,
            cpu_rtf=cpu * per_audio,
            realtime=self.realtime,
        )
