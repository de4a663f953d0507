"""Transport processors: wire messages in, frames through the pipeline, wire messages out.

:class:`TransportInput` is the first processor of a served pipeline: its reader task receives messages
from a :class:`~apipeline.transports.channel.MessageChannel`, decodes them with the serializer and pushes
the frames downstream. It enforces the wire contract on what a client may send: data frames, settings,
interruptions, ``EndFrame`` (end of the input stream: the task then drains and ends) and ``CancelFrame``.
The first ``AudioRawFrame`` fixes the session's sample rate and channel count; a later frame that
declares another is refused rather than fed to a pipeline built for the first.

:class:`TransportOutput` is the last: it puts data frames (and, at the end, ``EndFrame``) into a bounded
send queue drained by its sender task. The queue's declared policy decides what a slow client costs:

* ``"drop_oldest"`` (the default, for real-time audio): when full, the oldest queued data frame is
  dropped and counted; control frames (``EndFrame``) and errors are never dropped. Latency stays bounded.
* ``"block"``: the pipeline waits for room, so backpressure travels back to the reader and the client.

Either way memory is bounded by the queue capacity, and a client that takes nothing for ``send_timeout``
seconds is refused (close 1008), which ends its session.

Failures (undecodable message, refused frame, client gone, stalled client) go to ``on_failure``; the
session runner records them and cancels the task. Used alone, a failure pushes ``CancelFrame`` upstream.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from bisect import bisect_right
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

from apipeline.errors import (
    ApipelineError,
    SerializationError,
    SessionRefused,
    TransportClosed,
    TransportError,
)
from apipeline.frames import (
    AudioRawFrame,
    CancelFrame,
    DataFrame,
    EndFrame,
    ErrorFrame,
    Frame,
    StartFrame,
    StartInterruptionFrame,
    StopInterruptionFrame,
    SyncFrame,
    UpdateSettingsFrame,
)
from apipeline.processors.frame_processor import FrameDirection, FrameProcessor
from apipeline.processors.frame_queue import FrameQueue, OverflowPolicy
from apipeline.processors.io import InputProcessor
from apipeline.serializers import FrameSerializer, ProtobufFrameSerializer
from apipeline.transports.channel import Message, MessageChannel
from apipeline.transports.session import CloseCode
from apipeline.transports.stats import SessionCounters

logger = logging.getLogger("apipeline.transports")

FailureHandler = Callable[[TransportError], Awaitable[None]]

#: Control and system frames a client may send besides data frames.
CLIENT_CONTROL = (UpdateSettingsFrame, SyncFrame, StartInterruptionFrame, StopInterruptionFrame)


class ClientClock:
    """The client's timestamps of the frames it sent, by the server's arrival time that replaced them.

    A client frame's ``pts`` is on the client's clock; inside the server every frame's ``pts`` is the
    server's monotonic arrival time (so latency metrics and the pipeline's own timing use one clock).
    :class:`TransportInput` records ``arrival -> client pts``; :class:`TransportOutput` sends each output
    with the client timestamp of the newest input that had arrived by the output's ``pts`` (the input
    it was made from, under the core's pts rule), so ``now - pts`` on the client is a true round trip.
    Bounded: only the newest ``capacity`` inputs are remembered.
    """

    def __init__(self, capacity: int = 4096) -> None:
        self.capacity = capacity
        self._arrivals: list[int] = []
        self._client: list[int] = []

    def record(self, arrival_ns: int, client_pts: int) -> None:
        self._arrivals.append(arrival_ns)
        self._client.append(client_pts)
        if len(self._arrivals) > 2 * self.capacity:
            del self._arrivals[: self.capacity], self._client[: self.capacity]

    def client_pts(self, server_pts: int) -> int | None:
        """The client timestamp of the newest input that arrived at or before ``server_pts``."""
        i = bisect_right(self._arrivals, server_pts) - 1
        return self._client[i] if i >= 0 else None


class SettingsRefused(ApipelineError):
    """A client's ``UpdateSettingsFrame`` that does not fit the session's schema (nothing is applied)."""


async def _within(seconds: float, awaitable: Awaitable[None]) -> None:
    """Await with a deadline; ``asyncio.timeout`` where it exists (no extra task per message)."""
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(seconds):
            await awaitable
    else:  # pragma: no cover - Python 3.10
        await asyncio.wait_for(awaitable, seconds)


class TransportInput(InputProcessor):
    """Decodes messages from ``channel`` into frames and pushes them downstream.

    Args:
        channel: where messages come from.
        serializer: the wire format (default :class:`ProtobufFrameSerializer`).
        initial: frames already received (e.g. read before the pipeline could be built), pushed first.
        sample_rate, num_channels: the session's audio format, or ``None`` to take the first frame's.
        on_failure: called once with the error that ends the session (default: cancel the task).
        counters: per-session counters to update (frames, audio seconds).
        check_settings: checks each client ``UpdateSettingsFrame``'s settings as a whole (returns them
            converted, raises for anything refused). A refused frame is dropped, so nothing changes, and
            the reason goes upstream as a non-fatal ``ErrorFrame`` (the server sends it to the client).
        idle_timeout: seconds without a message from the client before the session is refused (1008);
            ``None``: wait for ever.
        input_rate, input_burst_s: pacing of the client's audio: at most ``input_burst_s`` seconds of
            audio ahead of ``input_rate`` times real time since the first frame; beyond that the reader
            stops reading (TCP pushes back on the client) until real time catches up. ``None``: no limit.
        max_chunk_s: audio frames longer than this are cut into pieces of at most this length, each
            paced on its own, and the reader yields to the other sessions between pieces, so one large
            message cannot hold the event loop for its whole length.
        clock: a :class:`ClientClock` shared with the :class:`TransportOutput`: each data frame's
            ``pts`` becomes its server arrival time and the client's is kept there.
    """

    def __init__(
        self,
        channel: MessageChannel,
        serializer: FrameSerializer | None = None,
        *,
        initial: Iterable[Frame] = (),
        sample_rate: int | None = None,
        num_channels: int | None = None,
        on_failure: FailureHandler | None = None,
        counters: SessionCounters | None = None,
        check_settings: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        idle_timeout: float | None = None,
        input_rate: float | None = None,
        input_burst_s: float = 3.0,
        max_chunk_s: float | None = None,
        clock: ClientClock | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(stop_at_eof=True, name=name)
        self.channel = channel
        self.serializer = serializer or ProtobufFrameSerializer()
        self._initial = list(initial)
        self.sample_rate = sample_rate
        self.num_channels = num_channels
        self._on_failure = on_failure
        self.counters = counters or SessionCounters()
        self.check_settings = check_settings
        self.idle_timeout = idle_timeout
        self.input_rate = input_rate
        self.input_burst_s = input_burst_s
        self.max_chunk_s = max_chunk_s
        #: where client timestamps are kept (``None``: frames keep the client's ``pts``)
        self.clock = clock
        self.failure: TransportError | None = None
        self._t0: float | None = None
        self._audio_s = 0.0
        #: reasons for settings refused before the pipeline ran (reported once it runs)
        self.refused: list[str] = []

    async def frames(self) -> AsyncIterator[Frame]:
        initial, self._initial = self._initial, []
        refused, self.refused = self.refused, []
        for reason in refused:
            await self.push_error(reason)
        for frame in initial:
            if isinstance(frame, AudioRawFrame):
                for piece in self._pieces(frame):
                    await self._pace(piece.duration)
                    yield piece
            else:
                yield frame
        decode = self.serializer.deserialize
        counters = self.counters
        while True:
            try:
                message = await self.recv()
            except (TransportClosed, SessionRefused) as exc:
                await self._fail(exc)
            else:
                if message is None:
                    return  # orderly end of the client's stream: same as EndFrame
                counters.frames_in += 1
                try:
                    frame = decode(message)
                    verdict = self.admit(frame)
                except SerializationError as exc:
                    await self._fail(SessionRefused(CloseCode.PROTOCOL_ERROR, f"undecodable message: {exc}"))
                except SessionRefused as exc:
                    await self._fail(exc)
                except SettingsRefused as exc:
                    await self.push_error(str(exc))
                    continue
                else:
                    if verdict is None:
                        if isinstance(frame, AudioRawFrame):
                            for piece in self._pieces(frame):
                                await self._pace(piece.duration)
                                yield piece
                        else:
                            yield frame
                        continue
                    if verdict is EndFrame:
                        return
                    await self._fail(TransportClosed(CloseCode.NORMAL, "client sent CancelFrame"))
            # A failure: the task is being cancelled. Returning would end the stream as if the client had
            # sent EndFrame (StopTaskFrame, then EndFrame to the client); wait for the cancel instead.
            await asyncio.get_running_loop().create_future()

    async def recv(self) -> Message | None:
        """The client's next message, within ``idle_timeout`` (else SessionRefused 1008)."""
        if self.idle_timeout is None:
            return await self.channel.recv()
        try:
            return await asyncio.wait_for(self.channel.recv(), self.idle_timeout)
        except (asyncio.TimeoutError, TimeoutError):
            raise SessionRefused(
                CloseCode.POLICY_VIOLATION,
                f"idle: no message from the client for {self.idle_timeout:g} s",
            ) from None

    def _pieces(self, frame: AudioRawFrame) -> list[AudioRawFrame]:
        limit = self.max_chunk_s
        if limit is None or frame.duration <= limit:
            return [frame]
        step = max(1, int(limit * frame.sample_rate))
        audio = frame.audio
        pieces = []
        for i in range(0, frame.num_frames, step):
            piece = AudioRawFrame(audio[i : i + step], frame.sample_rate, frame.num_channels)
            piece.pts = frame.pts
            piece.metadata.update(frame.metadata)
            pieces.append(piece)
        return pieces

    async def _pace(self, duration: float) -> None:
        """Hold the reader while the client is more than the burst allowance ahead of its rate; yield
        to the other sessions either way (a burst of buffered messages never runs back to back)."""
        rate = self.input_rate
        if rate is None:
            await asyncio.sleep(0)
            return
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        self._audio_s += duration
        ahead = self._audio_s - self.input_burst_s - rate * (now - self._t0)
        await asyncio.sleep(ahead / rate if ahead > 0 else 0)

    def admit(self, frame: Frame) -> type[Frame] | None:
        """Check one client frame against the contract: ``EndFrame``/``CancelFrame`` for those two,
        ``None`` for a frame to push on; raises SessionRefused (1008) for anything else."""
        if self.clock is not None and isinstance(frame, DataFrame):
            arrival = time.monotonic_ns()
            if frame.pts is not None:
                self.clock.record(arrival, frame.pts)
            frame.pts = arrival
        if isinstance(frame, AudioRawFrame):
            if self.sample_rate is None:
                self.sample_rate, self.num_channels = frame.sample_rate, frame.num_channels
            elif frame.sample_rate != self.sample_rate or frame.num_channels != self.num_channels:
                raise SessionRefused(
                    CloseCode.POLICY_VIOLATION,
                    f"{frame.name} is {frame.sample_rate} Hz, {frame.num_channels} ch but this session runs "
                    f"at {self.sample_rate} Hz, {self.num_channels} ch (fixed by its first audio frame or "
                    "the query string); open a new session for another format",
                )
            self.counters.audio_seconds_in += frame.duration
            return None
        if isinstance(frame, UpdateSettingsFrame) and self.check_settings is not None:
            try:
                frame.settings = self.check_settings(dict(frame.settings))
            except (ApipelineError, ValueError, TypeError) as exc:
                raise SettingsRefused(f"UpdateSettingsFrame refused, nothing changed: {exc}") from None
            return None
        if isinstance(frame, DataFrame) or isinstance(frame, CLIENT_CONTROL):
            return None
        if isinstance(frame, EndFrame):
            return EndFrame
        if isinstance(frame, CancelFrame):
            return CancelFrame
        raise SessionRefused(
            CloseCode.POLICY_VIOLATION,
            f"{type(frame).__name__} is not accepted from a client (send data frames, "
            "UpdateSettingsFrame, interruptions, EndFrame or CancelFrame)",
        )

    async def _fail(self, error: TransportError) -> None:
        if self.failure is None:
            self.failure = error
        if self._on_failure is not None:
            await self._on_failure(error)
        else:
            await self.push_frame(CancelFrame(), FrameDirection.UPSTREAM)


class TransportOutput(FrameProcessor):
    """Encodes downstream data frames and ``EndFrame`` into messages sent on ``channel``.

    Args:
        channel: where messages go.
        serializer: the wire format (default :class:`ProtobufFrameSerializer`).
        queue_size: capacity of the send queue, in frames.
        overflow: ``"drop_oldest"`` or ``"block"`` (see the module docstring).
        send_timeout: seconds one message may wait for the client before the session is refused.
        on_failure, counters: as for :class:`TransportInput`.
    """

    def __init__(
        self,
        channel: MessageChannel,
        serializer: FrameSerializer | None = None,
        *,
        queue_size: int = 64,
        overflow: OverflowPolicy = "drop_oldest",
        send_timeout: float = 10.0,
        on_failure: FailureHandler | None = None,
        counters: SessionCounters | None = None,
        clock: ClientClock | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self.clock = clock
        self.channel = channel
        self.serializer = serializer or ProtobufFrameSerializer()
        self.queue = FrameQueue(queue_size, overflow)
        self.send_timeout = send_timeout
        self._on_failure = on_failure
        self.counters = counters or SessionCounters()
        self.failure: TransportError | None = None
        #: True once EndFrame went out: the client has received everything
        self.end_sent = False
        self._sender: asyncio.Task[None] | None = None
        self._sender_done = asyncio.Event()
        self._stopped = False

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        self._sender = asyncio.get_running_loop().create_task(self._send_loop(), name=f"{self.name}.sender")

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction is FrameDirection.DOWNSTREAM:
            if isinstance(frame, DataFrame):
                await self._enqueue(frame)
                return
            if isinstance(frame, EndFrame):
                await self._enqueue(frame)
                if self._sender is not None:
                    await self._sender_done.wait()  # everything before it, and it, has been sent
            elif isinstance(frame, CancelFrame):
                await self._stop_sender()
        await self.push_frame(frame, direction)

    async def send_error(self, error: ErrorFrame) -> None:
        """Queue an ``ErrorFrame`` for the client (skipped only if the session ended, or, before the
        sender has started, if the queue is full: the error may come before ``StartFrame`` reaches here)."""
        if self._stopped or (self._sender is not None and self._sender.done()):
            return
        if not self.queue.try_put(error, FrameDirection.DOWNSTREAM) and self._sender is not None:
            await self._enqueue(error)

    async def _enqueue(self, frame: Frame) -> None:
        queue = self.queue
        if queue.try_put(frame, FrameDirection.DOWNSTREAM):
            return
        drops = queue.drops
        await queue.put(frame, FrameDirection.DOWNSTREAM)
        if queue.drops != drops:
            self.counters.drops += queue.drops - drops

    async def _send_loop(self) -> None:
        queue, channel, encode, counters = self.queue, self.channel, self.serializer.serialize, self.counters
        clock = self.clock
        try:
            while True:
                frame, _ = await queue.get()
                if clock is not None and isinstance(frame, DataFrame) and frame.pts is not None:
                    counters.observe_latency((time.monotonic_ns() - frame.pts) / 1e9)
                    frame.pts = clock.client_pts(frame.pts)  # on the wire: the client's own timestamp
                try:
                    message = encode(frame)
                except SerializationError as exc:
                    await self.push_error(f"{self.name}: cannot send {frame.name} to the client: {exc}")
                    continue
                try:
                    await _within(self.send_timeout, channel.send(message))
                except (TimeoutError, asyncio.TimeoutError):
                    await self._fail(
                        SessionRefused(
                            CloseCode.POLICY_VIOLATION,
                            f"client stopped reading: a message waited {self.send_timeout} s to be sent",
                        )
                    )
                    return
                except TransportClosed as exc:
                    await self._fail(exc)
                    return
                counters.frames_out += 1
                if isinstance(frame, EndFrame):
                    self.end_sent = True
                    return
        finally:
            self._sender_done.set()

    async def _fail(self, error: TransportError) -> None:
        if self.failure is None:
            self.failure = error
        if self._on_failure is not None:
            await self._on_failure(error)
        else:
            await self.push_frame(CancelFrame(), FrameDirection.UPSTREAM)

    async def _stop_sender(self) -> None:
        self._stopped = True
        task, self._sender = self._sender, None
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        self.queue.clear()

    async def cleanup(self) -> None:
        await self._stop_sender()
        await super().cleanup()
