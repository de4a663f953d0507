"""A model stage that keeps real time when its service is remote, shared, slow or briefly gone.

:class:`RealtimeModelProcessor` calls ``service.method`` for each chunk (an ``AudioRawFrame`` by default)
through the registry, whatever its backend. Per stream (one processor is one stream):

* **pipelined, bounded**: up to ``max_in_flight`` calls outstanding (default: the backend's
  ``max_in_flight_per_stream``, else 1); the next chunk waits for a slot, which is the backpressure;
* **in order**: results are pushed in the order the chunks came, each as soon as it and every earlier
  one is done; control frames (``EndFrame``...) wait until the chunks before them are out;
* **degraded, never lost**: a chunk whose call fails (``RemoteError`` when a worker died,
  ``Overloaded`` when every worker is full, no answer within ``deadline``, or an error of the service)
  is replaced by its dry input (``degrade="pass"``) or silence of the same length (``"silence"``), so
  every chunk gives exactly one output chunk and the output keeps the input's clock. A non-fatal
  ``ErrorFrame`` goes upstream when an outage starts (and for every error of the service itself); the
  stream recovers by itself with the first call that succeeds. Counts are in :meth:`stats` and in a
  ``MetricsFrame`` before ``EndFrame``. A lost backend (:class:`~apipeline.errors.BackendLost`: the
  cluster's head died) does not come back by itself: one fatal ``ErrorFrame`` ends the run.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from apipeline.errors import BackendLost, DefinitionError, Overloaded, ParameterError, RemoteError
from apipeline.frames import AudioRawFrame, CancelFrame, EndFrame, Frame, MetricsFrame, SystemFrame
from apipeline.models import ModelRegistry
from apipeline.processors.frame_processor import FrameDirection, FrameProcessor
from apipeline.processors.models.service import ServiceProcessor

Degrade = Literal["pass", "silence"] | Callable[[Frame], Frame]
#: how long a cancel waits for in-flight remote calls to acknowledge it before abandoning them
_SHUTDOWN_WAIT_S = 1.0


@dataclass(frozen=True, slots=True)
class RealtimeStats:
    """Counts of one stream; ``recoveries`` are seconds from an outage's first degraded chunk to the
    first chunk processed again."""

    chunks: int
    processed: int
    degraded: int
    remote_errors: int
    overloaded: int
    late: int
    failed: int
    outages: int
    recoveries: tuple[float, ...]


def audio_params(frame: AudioRawFrame) -> dict[str, Any]:
    """``{"audio": float32 samples}`` (int16 scaled to [-1, 1))."""
    audio = np.asarray(frame.audio)  # frames store ndarrays (PCM16 bytes are converted on creation)
    if audio.dtype == np.int16:
        return {"audio": audio.astype(np.float32) / 32768.0}
    return {"audio": np.asarray(audio, dtype=np.float32)}


def audio_result(frame: AudioRawFrame, result: Any) -> Frame:
    """The service's samples as audio at the chunk's rate and channel count."""
    return AudioRawFrame(np.asarray(result, dtype=np.float32), frame.sample_rate, frame.num_channels)


def pass_through(frame: Frame) -> Frame:
    """The dry chunk (as float32 audio, like a processed one)."""
    if isinstance(frame, AudioRawFrame):
        return audio_result(frame, audio_params(frame)["audio"])
    return frame


def silence(frame: Frame) -> Frame:
    """Zeros of the chunk's length, rate and channels."""
    if not isinstance(frame, AudioRawFrame):
        raise DefinitionError(f"silence degradation needs AudioRawFrame chunks, got {frame.name}")
    return AudioRawFrame(
        np.zeros(np.asarray(frame.audio).shape, np.float32), frame.sample_rate, frame.num_channels
    )


class RealtimeModelProcessor(ServiceProcessor):
    """Pipelined, ordered, degrading calls of one service method per chunk (see the module docstring).

    Args:
        registry, service, method: what to call (readied in ``start``; a refused start is fatal).
        frame_types: the chunks this processor consumes; other frames pass in order.
        params_from: chunk -> the call's params (default: :func:`audio_params`).
        emit: (chunk, result) -> the frame to push (default: :func:`audio_result`).
        degrade: ``"pass"``, ``"silence"`` or chunk -> frame, for chunks whose call failed.
        max_in_flight: calls outstanding per stream (default from the backend, else 1).
        deadline: seconds a call may take before its chunk is degraded (default: twice the chunk's
            duration for audio, at least 50 ms; 1 s for other frames).
    """

    def __init__(
        self,
        registry: ModelRegistry,
        service: str,
        method: str,
        *,
        frame_types: tuple[type[Frame], ...] = (AudioRawFrame,),
        params_from: Callable[[Any], dict[str, Any]] = audio_params,
        emit: Callable[[Any, Any], Frame] = audio_result,
        degrade: Degrade = "pass",
        max_in_flight: int | None = None,
        deadline: float | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(registry, [service], name=name)
        if max_in_flight is None:
            max_in_flight = int(getattr(registry.backend, "max_in_flight_per_stream", 1))
        if max_in_flight < 1 or (deadline is not None and deadline <= 0):
            raise ParameterError(
                f"max_in_flight must be >= 1 and deadline > 0, got {max_in_flight}, {deadline}"
            )
        if degrade == "pass":
            self._degrade: Callable[[Frame], Frame] = pass_through
        elif degrade == "silence":
            self._degrade = silence
        elif callable(degrade):
            self._degrade = degrade
        else:
            raise ParameterError(f"degrade must be 'pass', 'silence' or a function, got {degrade!r}")
        self.service, self.method = service, method
        self.frame_types, self.params_from, self.emit = frame_types, params_from, emit
        self.max_in_flight, self.deadline = max_in_flight, deadline
        self._slots = asyncio.Semaphore(max_in_flight)
        self._window: collections.deque[tuple[Frame, asyncio.Task[tuple[Frame, BaseException | None]]]] = (
            collections.deque()
        )
        self._wake = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._emitter: asyncio.Task[None] | None = None
        self._counts = collections.Counter[str]()
        self._outage_since: float | None = None
        self._outage_cause_known = False  # the outage's report named its cause (not only "no answer")
        self._recoveries: collections.deque[float] = collections.deque(maxlen=64)
        self._fatal: asyncio.Future[None] | None = None

    def stats(self) -> RealtimeStats:
        c = self._counts
        return RealtimeStats(
            c["chunks"], c["processed"], c["degraded"], c["remote"], c["overloaded"], c["late"],
            c["failed"], c["outages"], tuple(self._recoveries),
        )  # fmt: skip

    # ---- frame flow --------------------------------------------------------------------------------
    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await FrameProcessor.process_frame(self, frame, direction)
        if self.refused is not None:
            return
        if isinstance(frame, CancelFrame):
            await self._shutdown()
        elif direction is FrameDirection.DOWNSTREAM and isinstance(frame, self.frame_types):
            await self._submit(frame)
            return
        elif direction is FrameDirection.DOWNSTREAM and not isinstance(frame, SystemFrame):
            await self._drained.wait()  # in-band frames stay behind the chunks before them
            if isinstance(frame, EndFrame) and self._counts["degraded"]:
                await self.push_frame(MetricsFrame([{"processor": self.name, **self._metrics()}]))
        await self.push_frame(frame, direction)

    def _metrics(self) -> dict[str, Any]:
        keys = ("chunks", "processed", "degraded", "remote", "overloaded", "late", "failed", "outages")
        return {k: self._counts[k] for k in keys}

    async def _submit(self, frame: Frame) -> None:
        await self._slots.acquire()
        self._counts["chunks"] += 1
        task = asyncio.ensure_future(self._call(frame))
        self._window.append((frame, task))
        self._drained.clear()
        self._wake.set()
        if self._emitter is None:
            self._emitter = asyncio.ensure_future(self._emit_in_order())

    async def _call(self, frame: Frame) -> tuple[Frame, BaseException | None]:
        deadline = self.deadline
        if deadline is None:
            deadline = max(0.05, 2.0 * frame.duration) if isinstance(frame, AudioRawFrame) else 1.0
        try:
            result = await asyncio.wait_for(
                self.registry.run(self.service, self.method, self.params_from(frame)), deadline
            )
            out = self.emit(frame, result)
        except Exception as exc:
            return self._degrade(frame), exc
        return out, None

    async def _emit_in_order(self) -> None:
        window = self._window
        while True:
            while not window:
                self._drained.set()
                self._wake.clear()
                await self._wake.wait()
            frame, task = window[0]
            out, error = await task
            window.popleft()
            self._slots.release()
            out.pts = frame.pts
            await self._account(error)
            await self.push_frame(out, FrameDirection.DOWNSTREAM)

    async def _account(self, error: BaseException | None) -> None:
        c = self._counts
        if error is None:
            c["processed"] += 1
            if self._outage_since is not None:
                self._recoveries.append(time.monotonic() - self._outage_since)
                self._outage_since = None
            return
        c["degraded"] += 1
        if isinstance(error, BackendLost):  # nothing comes back by itself: the stream ends
            c["remote"] += 1
            if not c["lost"]:
                c["lost"] += 1
                # Not awaited here: the task's cancel (which a fatal error starts) waits for the
                # CancelFrame to pass this processor, and that needs this emitter to free slots.
                self._fatal = asyncio.ensure_future(self.push_error(f"{self.name}: {error}", fatal=True))
            return
        if isinstance(error, RemoteError):
            c["remote"] += 1
        elif isinstance(error, Overloaded):
            c["overloaded"] += 1
        elif isinstance(error, TimeoutError):
            c["late"] += 1
        else:
            c["failed"] += 1  # the service itself raised: reported every time, it will not heal alone
            await self.push_error(f"{self.name}: chunk degraded: {type(error).__name__}: {error}")
            return
        if self._outage_since is None:
            self._outage_since = time.monotonic()
            c["outages"] += 1
            self._outage_cause_known = not isinstance(error, TimeoutError)
            reason = "no answer in time" if isinstance(error, TimeoutError) else f"{error}"
            await self.push_error(
                f"{self.name}: {self.service}.{self.method} unavailable ({type(error).__name__}: {reason}); "
                f"degrading chunks until it answers again"
            )
        elif not self._outage_cause_known and not isinstance(error, TimeoutError):
            # the outage began with chunks past their deadline; now the backend says why (e.g. a replica
            # died): reported once, so the cause is not lost to whichever came first
            self._outage_cause_known = True
            await self.push_error(
                f"{self.name}: {self.service}.{self.method} still unavailable, cause: "
                f"{type(error).__name__}: {error}"
            )

    # ---- shutdown ----------------------------------------------------------------------------------
    async def _shutdown(self) -> None:
        tasks: list[asyncio.Task[Any]] = [t for _, t in self._window]
        if self._emitter is not None:
            tasks.append(self._emitter)
        self._emitter = None
        for t in tasks:
            t.cancel()
        if tasks:
            # Bounded: a remote call whose cluster is gone may take long to notice its cancellation
            # (seen with a killed Ray head); it is abandoned rather than holding the CancelFrame.
            _, pending = await asyncio.wait(tasks, timeout=_SHUTDOWN_WAIT_S)
            if pending:
                logging.getLogger("apipeline").warning(
                    "%s: %d remote call(s) still cancelling after %.1f s; abandoned",
                    self.name, len(pending), _SHUTDOWN_WAIT_S,
                )  # fmt: skip
        for _ in self._window:
            self._slots.release()
        self._window.clear()
        self._drained.set()

    async def cleanup(self) -> None:
        await self._shutdown()
        await super().cleanup()
