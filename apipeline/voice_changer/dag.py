"""What the local and the remote voice-changer DAGs share: their front, their back and the pipeline class.

Both DAGs are ``front -> conversion -> back``::

    front:  SettingsGuard -> InputGuard (mono float32, NaN -> silence, input gain / AGC)
              -> [Resample in -> processing rate] -> StreamPadder -> Reblock [context | block]
              -> BlockGate (seq, adaptive/fixed level gate, VAD, ready stamp)
    conversion: the local stages (:mod:`apipeline.voice_changer.local`) or one model-service call per
              window (:mod:`apipeline.voice_changer.remote`), each ending in SOLA
    back:   BlockMonitor -> [Resample out -> input rate] -> [SideRestore: + each channel's side] -> Limiter

:class:`Front` and :func:`back` build them from one :class:`VoiceChangerSettings`, so the two builders
cannot drift apart; neither builder imports the other (:func:`apipeline.voice_changer.build_voice_changer`
picks one).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from apipeline.errors import AudioFormatError, ParameterError
from apipeline.frames import Frame, UpdateSettingsFrame
from apipeline.pipeline import Pipeline, pipeline_latency
from apipeline.processors.audio.features import BlockGeometry
from apipeline.processors.audio.reblock import ReblockProcessor
from apipeline.processors.audio.resample import ResampleProcessor
from apipeline.processors.frame_processor import FrameDirection, FrameProcessor
from apipeline.voice_changer.gate import BlockGate, InputGuard, Limiter, SideRestore, StreamPadder
from apipeline.voice_changer.monitor import BlockMonitor, RealtimeReport
from apipeline.voice_changer.settings import VoiceChangerSettings, processing_rate


class SettingsGuard(FrameProcessor):
    """The DAG's door for mid-stream ``UpdateSettingsFrame``: only valid, live settings get in.

    Keys are :meth:`VoiceChangerSettings.schema` names, bare (``pitch``) or addressed to the voice
    changer or one of its stages (``voice_changer.pitch``, ``svc.pitch``); keys addressed to processors
    outside the DAG pass untouched. The whole update is checked first: an unknown or misspelled name
    (with the closest suggestion), a value of the wrong type, NaN, out of bounds, or a setting that is
    fixed at start refuses the frame as a whole (an ``ErrorFrame``; every value stays as it was).
    Accepted values go on converted (``"3"`` -> ``3.0`` is not done: frames carry typed values).
    """

    def __init__(
        self,
        stages: Callable[[], set[str]],
        on_change: Callable[[dict[str, Any]], None],
        *,
        owner: str = "voice_changer",
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self._stages = stages
        self._on_change = on_change
        self.owner = owner

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if direction is FrameDirection.DOWNSTREAM and isinstance(frame, UpdateSettingsFrame):
            await self.push_frame(self.check(frame))
            return
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)

    def check(self, frame: UpdateSettingsFrame) -> UpdateSettingsFrame:
        """The frame to pass on (values converted), or raise ParameterError (the frame is dropped)."""
        stages = self._stages() | {self.owner}
        mine: dict[str, Any] = {}
        passed: dict[str, Any] = {}
        if not isinstance(frame.settings, dict):
            raise ParameterError(f"settings must be a mapping, got {type(frame.settings).__name__}")
        for key, value in frame.settings.items():
            node, dot, param = str(key).rpartition(".")
            if dot and node not in stages:
                passed[key] = value
            else:
                mine[param] = value
        checked = VoiceChangerSettings.schema().check(mine, live=True)
        if checked:
            self._on_change(checked)
        return UpdateSettingsFrame({**passed, **checked}, metadata=frame.metadata)


@dataclass
class Front:
    """The shared front of both DAGs (see the module docstring) for one stream."""

    settings: VoiceChangerSettings
    sample_rate: int
    channels: int
    rate: int
    geometry: BlockGeometry
    guard: InputGuard
    gate: BlockGate
    processors: list[FrameProcessor]

    @classmethod
    def build(cls, settings: VoiceChangerSettings, sample_rate: int, channels: int) -> Front:
        """Validate and build; raises ParameterError (settings), AudioFormatError (rate, channels)."""
        settings.validate()
        if channels < 1:
            raise AudioFormatError(f"voice changer: channels must be >= 1, got {channels}")
        rate = processing_rate(settings, sample_rate)
        g = settings.geometry(rate)
        guard = InputGuard(
            sample_rate, channels, input_gain_db=settings.input_gain_db, agc=settings.agc, name="input_guard"
        )
        procs: list[FrameProcessor] = [guard]
        if rate != sample_rate:
            procs.append(
                ResampleProcessor(
                    rate, in_rate=sample_rate, quality=settings.resample_quality, name="resample_in"
                )
            )
        gate = BlockGate(
            g,
            mode=settings.gate,
            silence_db=settings.silence_db,
            margin_db=settings.gate_margin_db,
            vad=settings.vad,
            vad_gate=settings.vad_gate,
            name="gate",
        )
        procs += [
            StreamPadder(g.block, g.latency_samples - g.block, name="pad"),
            ReblockProcessor(g.ms(g.block), g.ms(g.context), sample_rate=rate, name="reblock"),
            gate,
        ]
        return cls(settings, sample_rate, channels, rate, g, guard, gate, procs)


def back(front: Front, monitor: BlockMonitor, delay: int) -> list[FrameProcessor]:
    """The shared back: monitor, resampler back to the stream's rate, side restore, limiter.

    ``delay`` (samples at the stream's rate) is the output's nominal delay, by which the side channels
    are delayed to line up with the converted mid.
    """
    s = front.settings
    procs: list[FrameProcessor] = [monitor]
    if front.rate != front.sample_rate:
        procs.append(
            ResampleProcessor(
                front.sample_rate, in_rate=front.rate, quality=s.resample_quality, name="resample_out"
            )
        )
    if front.guard.side is not None:
        procs.append(SideRestore(front.guard.side, delay, name="side_restore"))
    procs.append(Limiter(enabled=s.limiter, name="limiter"))
    return procs


class VoiceChangerPipeline(Pipeline):
    """The voice changer DAG (a :class:`Pipeline`) with handles on its geometry and its monitor.

    ``latency_seconds`` is the declared algorithmic latency (:func:`pipeline_latency`); ``align_samples``
    (at the stream's rate) is the nominal delay of the output behind the input, crossfade + look-ahead +
    half the search (SOLA's offset varies the delay within ``crossfade + lookahead .. + search``).
    ``settings`` follows the live changes an ``UpdateSettingsFrame`` made.
    """

    def __init__(
        self,
        front: Front,
        conversion: list[FrameProcessor],
        monitor: BlockMonitor,
        *,
        settings: VoiceChangerSettings | None = None,
        name: str | None = None,
    ) -> None:
        name = name or "voice_changer"
        self.settings = settings or front.settings
        self.settings_guard = SettingsGuard(
            self._stage_names, self._settings_changed, owner=name, name="settings"
        )
        g = front.geometry
        align = round((g.crossfade + g.lookahead + g.search // 2) * front.sample_rate / g.sample_rate)
        procs = [self.settings_guard, *front.processors, *conversion, *back(front, monitor, align)]
        super().__init__(procs, name=name)
        self.geometry = g
        self.monitor = monitor
        self.guard = front.guard
        self.gate = front.gate
        self.sample_rate = front.sample_rate
        self.channels = front.channels
        self.parallel = self.settings.use_parallel()
        self.latency_seconds = pipeline_latency(self)
        self.align_samples = align
        self._listeners: list[Callable[[dict[str, Any]], None]] = []

    def _stage_names(self) -> set[str]:
        names: set[str] = set()
        todo = list(self.processors())
        while todo:
            p = todo.pop()
            names.add(p.name)
            inner = getattr(p, "processors", None)
            if callable(inner):
                todo.extend(inner())
        return names

    def on_settings_change(self, listener: Callable[[dict[str, Any]], None]) -> None:
        """Call ``listener(changes)`` for every accepted live change (before the stages see it)."""
        self._listeners.append(listener)

    def _settings_changed(self, changes: dict[str, Any]) -> None:
        self.settings = self.settings.replace(**changes)
        for listener in self._listeners:
            listener(changes)

    def report(self) -> RealtimeReport:
        """The monitor's :class:`~apipeline.voice_changer.monitor.RealtimeReport` for the run so far."""
        return self.monitor.report(self.latency_seconds)
