"""One served session, whatever the transport: read the prelude, build the pipeline, run it, decide the end.

A :class:`ServerSession` owns one :class:`~apipeline.pipeline.task.PipelineTask` running
``TransportInput -> pipeline -> TransportOutput`` over a
:class:`~apipeline.transports.channel.MessageChannel`.
Its :meth:`ServerSession.run` returns a :class:`SessionOutcome` (close code, reason, whether the server
should close the connection) and never leaves a task behind: every way a session ends — ``EndFrame``
drained, client gone, undecodable or refused message, stalled client, fatal pipeline error, server
shutdown — funnels through one place, where the task is cancelled (if still running) and awaited.

When the factory needs the audio format and the query string did not give it, the session first reads
the client's messages up to its first ``AudioRawFrame`` (at most ``max_prelude_frames``), so the pipeline is
built for the rate and channels the client actually sends.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from apipeline.errors import (
    ApipelineError,
    ConfigurationError,
    SerializationError,
    SessionRefused,
    TransportClosed,
    TransportError,
)
from apipeline.frames import AudioRawFrame, EndFrame, ErrorFrame, Frame, MetricsFrame
from apipeline.pipeline.pipeline import Pipeline
from apipeline.pipeline.task import PipelineParams, PipelineTask
from apipeline.processors.frame_queue import OverflowPolicy
from apipeline.serializers import FrameSerializer, ProtobufFrameSerializer
from apipeline.transports.channel import MessageChannel
from apipeline.transports.processors import ClientClock, SettingsRefused, TransportInput, TransportOutput
from apipeline.transports.session import (
    CloseCode,
    PipelineFactory,
    SessionQuery,
    SessionSpec,
    live_settings_check,
)
from apipeline.transports.stats import ServerStats

logger = logging.getLogger("apipeline.transports")


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """Per-session limits and policies (the server's options)."""

    queue_size: int = 64
    overflow: OverflowPolicy = "block"
    send_timeout: float = 10.0
    enable_metrics: bool = True
    max_prelude_frames: int = 64
    #: bytes a session may send before its first audio frame (while the format is unknown)
    max_prelude_bytes: int = 256 * 1024
    end_timeout: float = 30.0
    error_send_timeout: float = 1.0
    #: seconds without a message from the client before the session is closed (1008); None: never
    idle_timeout: float | None = 20.0
    #: the client's audio is paced to this multiple of real time after a burst allowance; None: unpaced
    input_rate: float | None = 1.5
    input_burst_s: float = 3.0
    #: longer audio frames are cut into pieces this long, so one large message cannot hold the loop
    max_chunk_s: float | None = 0.1

    def __post_init__(self) -> None:
        for name in ("queue_size", "max_prelude_frames", "max_prelude_bytes"):
            if getattr(self, name) < 1:
                raise ConfigurationError(f"SessionConfig.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("send_timeout", "end_timeout", "idle_timeout", "input_rate", "max_chunk_s"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigurationError(f"SessionConfig.{name} must be > 0 (or None), got {value}")


@dataclass(frozen=True, slots=True)
class SessionOutcome:
    """How a session ended: the close code, a reason, and whether the server must close the connection
    (``False`` when the peer is already gone)."""

    code: int
    reason: str
    server_closes: bool

    @property
    def label(self) -> str:
        """A short, bounded label for metrics."""
        if not self.server_closes:
            return {1009: "too_big", 1011: "keepalive_timeout"}.get(self.code, "client_gone")
        labels: dict[int, str] = {
            CloseCode.NORMAL: "ok",
            CloseCode.GOING_AWAY: "shutdown",
            CloseCode.PROTOCOL_ERROR: "protocol_error",
            CloseCode.POLICY_VIOLATION: "policy_violation",
            CloseCode.MESSAGE_TOO_BIG: "too_big",
        }
        return labels.get(self.code, "error")


class ServerSession:
    """Runs one client session over ``channel`` with a pipeline from ``factory``."""

    def __init__(
        self,
        channel: MessageChannel,
        factory: PipelineFactory,
        query: SessionQuery,
        *,
        transport: str,
        stats: ServerStats,
        config: SessionConfig | None = None,
        serializer: FrameSerializer | None = None,
    ) -> None:
        self.channel = channel
        self.factory = factory
        self.query = query
        self.transport = transport
        self.stats = stats
        self.config = config or SessionConfig()
        self.serializer: FrameSerializer = serializer or ProtobufFrameSerializer()  # type: ignore[assignment]
        self.session_id = uuid.uuid4().hex[:12]
        self.task: PipelineTask | None = None
        #: the session's transport processors, once built (statistics: ``output.queue.statistics()``)
        self.input: TransportInput | None = None
        self.output: TransportOutput | None = None
        self.failure: TransportError | None = None
        #: the send queue's statistics, kept when the session is released
        self.send_queue_stats: Any = None
        self._root: Pipeline | None = None
        self._prelude: asyncio.Task[list[Frame]] | None = None
        self._end_sent = False

    async def run(self) -> SessionOutcome:
        """Serve the session to its end; returns how it ended (never raises for client behaviour)."""
        key, counters = self.stats.session_started(self.transport)
        outcome = SessionOutcome(CloseCode.INTERNAL_ERROR, "session did not finish", True)
        try:
            outcome = await self._serve(key, counters)
        finally:
            self.stats.session_ended(key, outcome.label)
            self._release()
        return outcome

    def _release(self) -> None:
        """Break every reference cycle of the finished session, so it is freed now, by reference counting.

        A pipeline is a web of cycles (neighbours link both ways, processors hold bound methods of the
        session and the task, frames in queues point at their processors): left to the cycle collector,
        every finished session's processors, queues and buffers would stay allocated until a full
        collection, which then pauses every open session. Nothing runs on a finished session, so each
        object's attributes are dropped; what callers may still read (the outcome, the send queue's
        statistics) is kept on the session.
        """
        task, root = self.task, self._root
        if self.output is not None:
            self.send_queue_stats = self.output.queue.statistics()
        self.task = self.input = self.output = None
        self._root = None
        self._prelude = None
        objects: list[object] = [] if root is None else list(root.walk())
        if task is not None:
            objects.append(task)
        for obj in objects:
            try:
                vars(obj).clear()
            except TypeError:  # no __dict__ (slots): nothing of ours to break
                pass

    async def shutdown(self, reason: str = "server shutting down") -> None:
        """End the session now (close 1001): cancels its task or the prelude read."""
        await self._on_failure(SessionRefused(CloseCode.GOING_AWAY, reason))

    # -- the session ---------------------------------------------------------------------------------

    async def _serve(self, key: int, counters: object) -> SessionOutcome:
        cfg = self.config
        clock = ClientClock()
        inp = TransportInput(
            self.channel,
            self.serializer,
            sample_rate=self.query.sample_rate,
            num_channels=self.query.num_channels,
            on_failure=self._on_failure,
            counters=counters,  # type: ignore[arg-type]
            check_settings=live_settings_check(self.factory),
            idle_timeout=cfg.idle_timeout,
            input_rate=cfg.input_rate,
            input_burst_s=cfg.input_burst_s,
            max_chunk_s=cfg.max_chunk_s,
            clock=clock,
            name="transport_input",
        )
        if self.factory.needs_audio_format and inp.sample_rate is None:
            self._prelude = asyncio.get_running_loop().create_task(
                self._read_prelude(inp), name=f"session-{self.session_id}.prelude"
            )
            try:
                pending = await self._prelude
            except asyncio.CancelledError:
                if self.failure is None:
                    raise
                pending = []
            finally:
                self._prelude = None
            if self.failure is not None or (pending and isinstance(pending[-1], EndFrame)):
                return await self._finish()
            inp._initial = pending
        try:
            spec = SessionSpec(self.session_id, inp.sample_rate, inp.num_channels, dict(self.query.settings))
            user = self.factory.build(spec)
        except (ApipelineError, ValueError, TypeError) as exc:
            self.failure = SessionRefused(CloseCode.POLICY_VIOLATION, f"cannot serve this session: {exc}")
            return await self._finish()
        out = TransportOutput(
            self.channel,
            self.serializer,
            queue_size=cfg.queue_size,
            overflow=cfg.overflow,
            send_timeout=cfg.send_timeout,
            on_failure=self._on_failure,
            counters=counters,  # type: ignore[arg-type]
            clock=clock,
            name="transport_output",
        )
        params = PipelineParams(
            enable_metrics=cfg.enable_metrics,
            end_timeout=cfg.end_timeout,
            # a factory whose pipelines obey barge-in says so (the chatbot)
            allow_interruptions=bool(getattr(self.factory, "allow_interruptions", False)),
        )
        self._root = root = Pipeline([inp, user, out])
        task = PipelineTask(root, params, name=f"session-{self.session_id}")

        @task.event_handler("on_pipeline_error")
        async def _forward_error(_: PipelineTask, error: ErrorFrame) -> None:
            if not error.fatal:
                await out.send_error(ErrorFrame(error.error, processor=error.processor))

        @task.event_handler("on_metrics")
        def _metrics(_: PipelineTask, frame: MetricsFrame) -> None:
            self.stats.observe_metrics(key, frame.data)

        self.task, self.input, self.output = task, inp, out
        if self.failure is not None:  # shutdown arrived while building
            await task.cancel(str(self.failure))
        try:
            await task.run()
        except ApipelineError as exc:  # e.g. a LinkError: the pipeline cannot take this session's format
            self.failure = self.failure or SessionRefused(CloseCode.POLICY_VIOLATION, str(exc))
        self._end_sent = out.end_sent
        if self.failure is None and not self._end_sent:
            errors = "; ".join(e.error for e in task.errors[-3:]) or "the task ended without EndFrame"
            self.failure = SessionRefused(CloseCode.INTERNAL_ERROR, f"pipeline failed: {errors}")
        return await self._finish()

    async def _read_prelude(self, inp: TransportInput) -> list[Frame]:
        """Messages up to and including the first audio frame (or EndFrame), checked like the rest."""
        pending: list[Frame] = []
        size = 0
        while len(pending) < self.config.max_prelude_frames:
            try:
                message = await inp.recv()
            except (TransportClosed, SessionRefused) as exc:
                self.failure = exc
                return pending
            if message is None:
                pending.append(EndFrame())
                return pending
            inp.counters.frames_in += 1
            try:
                frame = self.serializer.deserialize(message)
                verdict = inp.admit(frame)
            except SerializationError as exc:
                self.failure = SessionRefused(CloseCode.PROTOCOL_ERROR, f"undecodable message: {exc}")
                return pending
            except SessionRefused as exc:
                self.failure = exc
                return pending
            except SettingsRefused as exc:
                inp.refused.append(str(exc))
                continue
            if verdict is not None:  # EndFrame or CancelFrame before any audio: nothing to serve
                pending.append(EndFrame())
                return pending
            pending.append(frame)
            if isinstance(frame, AudioRawFrame):
                return pending
            size += len(message)  # what is held before the first audio (itself bounded per message)
            if size > self.config.max_prelude_bytes:
                self.failure = SessionRefused(
                    CloseCode.POLICY_VIOLATION,
                    f"more than {self.config.max_prelude_bytes} bytes before the first AudioRawFrame (the "
                    "session's format is unknown until then: send audio, or give ?sample_rate=&channels=)",
                )
                return pending
        self.failure = SessionRefused(
            CloseCode.POLICY_VIOLATION,
            f"no AudioRawFrame among the first {self.config.max_prelude_frames} messages: the session's "
            "sample rate is unknown (send audio, or give ?sample_rate=...&channels=...)",
        )
        return pending

    async def _on_failure(self, error: TransportError) -> None:
        if self.failure is None:
            self.failure = error
        if self.task is not None:
            await self.task.cancel(str(error))
        elif self._prelude is not None and not self._prelude.done():
            self._prelude.cancel()

    async def _finish(self) -> SessionOutcome:
        failure = self.failure
        if failure is None:
            if (
                not self._end_sent
            ):  # ended before any audio: answer EndFrame so the client is not left waiting
                await self._send_direct(EndFrame())
            return SessionOutcome(CloseCode.NORMAL, "end of stream", True)
        if isinstance(failure, TransportClosed):
            if failure.reason == "client sent CancelFrame":
                return SessionOutcome(CloseCode.NORMAL, "cancelled by the client", True)
            return SessionOutcome(failure.code, f"client went away: {failure}", False)
        code = failure.code if isinstance(failure, SessionRefused) else int(CloseCode.INTERNAL_ERROR)
        reason = failure.reason if isinstance(failure, SessionRefused) else str(failure)
        await self._send_direct(ErrorFrame(reason, fatal=True, processor="server"))
        return SessionOutcome(code, reason, True)

    async def _send_direct(self, frame: Frame) -> None:
        """Send one frame outside the (now stopped) send queue; best effort, bounded."""
        try:
            await asyncio.wait_for(
                self.channel.send(self.serializer.serialize(frame)), self.config.error_send_timeout
            )
        except (TransportError, asyncio.TimeoutError, TimeoutError):
            pass
