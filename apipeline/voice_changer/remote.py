"""The voice changer with its conversion on a model backend (in-process threads or a Ray actor pool).

:func:`build_remote_voice_changer` builds the DAG of
:func:`~apipeline.voice_changer.local.build_local_voice_changer` -- the same front and back
(:mod:`apipeline.voice_changer.dag`) -- with one change: F0, WORLD analysis, conversion and synthesis
of each window run as one call of the stateless
:class:`~apipeline.models.services.world_vc.WorldVcService` through a
:class:`~apipeline.processors.models.remote.RealtimeModelProcessor`::

    front (settings guard, input guard, [resample], pad, re-block, gate)
      -> RealtimeModelProcessor(world_vc.convert)   # on the backend; pipelined, ordered, degrading
      -> SolaProcessor -> back (monitor, [resample], limiter, [up-mix])

Re-blocking, the gate and SOLA stay local: they are cheap and hold the stream's state, so the backend
sees independent windows and one actor pool serves many streams. Live settings (``pitch``...) reach
the calls from the next window on. When a call fails (actor died, pool
saturated, no answer by ``deadline``) the block is degraded -- ``"pass"`` sends the dry input's kept span
to SOLA, ``"silence"`` zeros -- and the output keeps real time; counts are in ``pipeline.stage.stats()``.

Calls are pipelined (``max_in_flight`` per stream, default the backend's, 2 on Ray) except when F0 is
mapped to a target mean: the running log-F0 statistics then travel from each result to the next call,
which needs them in sequence (one in flight).

Synthesis stays WORLD's free-running one here, while the local DAG locks each window's phase to the
previous one's (:mod:`apipeline.processors.audio.vocoder`). The lock would need, for each call, the
excitation phase of the previous window *at the offset SOLA chose for it*: the call for block ``n + 1``
could only leave once block ``n`` came back and was stitched, i.e. one call in flight and SOLA inside
the call's completion. Measured here (speech, 35 ms blocks, paced): the Ray round trip adds ~2.5 ms to a
~10 ms block, so a strictly sequential stream would still fit its 35 ms deadline, but a single late
call would then delay every following block instead of being absorbed by the second slot. So the
remote placement renders :func:`remote_settings`: free-running, with the free-running stitch geometry
when the settings hold the phase-locked default one (a 0.5 ms search cannot align unlocked pulse
trains), and no mirrored F0 tail (the service estimates each window as it is). It gives the samples
of the local DAG run with those settings, on every backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from apipeline.audio.format import AudioFormat
from apipeline.errors import ParameterError
from apipeline.frames import AudioRawFrame, Frame
from apipeline.models import ModelBackend, ModelRegistry
from apipeline.models.backends import backend_from_address, registry_options
from apipeline.models.services.world_vc import WorldVcService, geometry_dict
from apipeline.processors.audio.features import COMPUTE_KEY, GATE_KEY, SEQ_KEY, BlockGeometry, block_metadata
from apipeline.processors.audio.sola import SolaProcessor
from apipeline.processors.models.remote import RealtimeModelProcessor
from apipeline.voice_changer.dag import Front, VoiceChangerPipeline
from apipeline.voice_changer.monitor import BlockMonitor
from apipeline.voice_changer.settings import VoiceChangerSettings

SERVICE = WorldVcService.service_name


def remote_settings(settings: VoiceChangerSettings) -> VoiceChangerSettings:
    """What the remote placement renders for ``settings`` (see the module docstring): free-running
    synthesis (:meth:`VoiceChangerSettings.free_running`) and no mirrored F0 tail (``f0_pad_ms=0``)."""
    return settings.free_running().replace(f0_pad_ms=0.0)


@dataclass(frozen=True, slots=True)
class RemotePlacement:
    """Where and how the conversion runs remotely: the keywords of :func:`build_remote_voice_changer`.

    What ``build_voice_changer(backend=...)``, ``run_file(backend=...)`` and the CLI pass along.
    """

    backend: ModelBackend | str | None = None
    degrade: Literal["pass", "silence"] = "pass"
    max_in_flight: int | None = None
    deadline: float | None = None
    registry: ModelRegistry | None = None

    def options(self) -> dict[str, Any]:
        return {
            "backend": self.backend, "degrade": self.degrade, "max_in_flight": self.max_in_flight,
            "deadline": self.deadline, "registry": self.registry,
        }  # fmt: skip


class WindowCalls:
    """The stream side of ``world_vc.convert``: params from a window, frames from a result or a failure.

    Holds the stream's running log-F0 sums (added from each result, sent with the next call).
    """

    def __init__(self, geometry: BlockGeometry, settings: VoiceChangerSettings) -> None:
        self.geometry = geometry
        self.geometry_params = geometry_dict(geometry)
        self.conversion = {
            "pitch": settings.pitch,
            "formant": settings.formant,
            "target_f0_mean": settings.target_f0_mean,
            "target_f0_range": settings.target_f0_range,
            "rms_mix_rate": settings.rms_mix_rate,
            "f0": settings.f0,
            "f0_options": settings.estimator_options(),
            "vocoder": settings.vocoder,
            "analysis_f0": settings.analysis_f0 if settings.use_parallel() else None,
        }
        self.stats: list[float] | None = [0.0, 0.0, 0] if settings.target_f0_mean is not None else None

    def update(self, changes: dict[str, Any]) -> None:
        """Apply accepted live settings to the calls that follow (the conversion's keys only)."""
        for key in ("pitch", "formant", "target_f0_mean", "target_f0_range"):
            if key in changes:
                self.conversion = {**self.conversion, key: changes[key]}
        if "target_f0_mean" in changes and self.stats is None and changes["target_f0_mean"] is not None:
            self.stats = [0.0, 0.0, 0]

    def params(self, frame: AudioRawFrame) -> dict[str, Any]:
        if frame.metadata.get(GATE_KEY, True):
            audio = np.asarray(frame.audio, dtype=np.float32)
        else:
            audio = np.zeros(0, np.float32)  # gated: no samples travel, silence comes back
        return {
            "audio": audio,
            "sample_rate": frame.sample_rate,
            "geometry": self.geometry_params,
            "conversion": self.conversion,
            "stats": None if self.stats is None else list(self.stats),
        }

    def emit(self, frame: AudioRawFrame, result: dict[str, Any]) -> Frame:
        contribution = result.get("stats")
        if self.stats is not None and contribution is not None:
            self.stats = [a + b for a, b in zip(self.stats, contribution, strict=True)]
        return self._frame(frame, np.asarray(result["audio"], np.float32), int(result.get("compute_ns", 0)))

    def dry(self, frame: Frame) -> Frame:
        """Degrade ``"pass"``: the window's kept span, unconverted."""
        assert isinstance(frame, AudioRawFrame)
        g = self.geometry
        kept = np.asarray(frame.audio, np.float32)[g.kept_start : g.kept_start + g.kept_size]
        return self._frame(frame, np.pad(kept, (0, g.kept_size - kept.shape[0])), 0)

    def silence(self, frame: Frame) -> Frame:
        """Degrade ``"silence"``: zeros of the kept span's length."""
        assert isinstance(frame, AudioRawFrame)
        return self._frame(frame, np.zeros(self.geometry.kept_size, np.float32), 0)

    def _frame(self, frame: AudioRawFrame, audio: np.ndarray, compute_ns: int) -> AudioRawFrame:
        seq = int(frame.metadata.get(SEQ_KEY, 0))
        meta = block_metadata(seq, int(frame.metadata.get(COMPUTE_KEY, 0)) + compute_ns, frame.metadata)
        return AudioRawFrame(audio, frame.sample_rate, 1, pts=frame.pts, metadata=meta)


class RemoteVoiceChangerPipeline(VoiceChangerPipeline):
    """A :class:`VoiceChangerPipeline` whose conversion stage (:attr:`stage`) calls a model service.

    ``registry`` is where the service runs; when the pipeline created it (:attr:`owns_registry`) it is
    closed -- and its backend with it (Ray actors, a Ray instance it started) -- in :meth:`cleanup`, so a
    pipeline task's end releases everything; call :meth:`aclose` when the pipeline never ran.
    """

    def __init__(
        self,
        *args: Any,
        registry: ModelRegistry,
        owns_registry: bool,
        stage: RealtimeModelProcessor,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.registry = registry
        self.owns_registry = owns_registry
        self.stage = stage

    async def aclose(self) -> None:
        """Close the registry (and its backend) if this pipeline owns it; idempotent."""
        if self.owns_registry:
            await self.registry.aclose()

    async def cleanup(self) -> None:
        await super().cleanup()
        await self.aclose()


def build_remote_voice_changer(
    settings: VoiceChangerSettings | None = None,
    *,
    sample_rate: int,
    channels: int = 1,
    realtime: bool = False,
    backend: ModelBackend | str | None = None,
    registry: ModelRegistry | None = None,
    degrade: Literal["pass", "silence"] = "pass",
    max_in_flight: int | None = None,
    deadline: float | None = None,
) -> RemoteVoiceChangerPipeline:
    """The voice changer DAG with its conversion on a model backend (see the module docstring).

    Args:
        settings, sample_rate, channels, realtime: as :func:`~apipeline.voice_changer.build_voice_changer`;
            the pipeline renders (and its ``settings`` hold) :func:`remote_settings` of ``settings``.
        backend: a :class:`ModelBackend`, an address for :func:`backend_from_address` (``"local"`` starts
            Ray here, ``"auto"``, ``"host:port"``, ``"ray://host:port"`` join a cluster) or None (an
            in-process :class:`LocalBackend`). Ignored when ``registry`` is given.
        registry: a registry shared with other streams (not closed by the pipeline); the service is
            registered in it unless it already is.
        degrade: what a block whose call failed becomes: ``"pass"`` (dry) or ``"silence"``.
        max_in_flight: calls outstanding for this stream (default: the backend's, 1 when F0 is mapped).
        deadline: seconds a call may take before its block is degraded (default: twice the block, at
            least 0.1 s).

    Raises ParameterError (settings, degrade) and AudioFormatError (rate, channels), before anything starts.
    """
    s = remote_settings(settings or VoiceChangerSettings())
    if degrade not in ("pass", "silence"):
        raise ParameterError(f"degrade must be 'pass' or 'silence', got {degrade!r}")
    front = Front.build(s, sample_rate, channels)
    rate, g = front.rate, front.geometry
    owns = registry is None
    if registry is None:
        chosen = backend if isinstance(backend, ModelBackend) else backend_from_address(backend)
        limits = registry_options(chosen)  # a Ray pool: its capacity, and Overloaded rather than a queue
        registry = ModelRegistry(
            backend=chosen,
            max_concurrency=limits.get("max_concurrency", getattr(chosen, "max_workers", 1)),
            max_pending=limits.get("max_pending", 64),
        )
    if SERVICE not in registry.services():
        registry.register(WorldVcService)
    calls = WindowCalls(g, s)
    if s.target_f0_mean is not None:
        max_in_flight = 1  # each call needs the statistics the previous result brings
    stage = RealtimeModelProcessor(
        registry,
        SERVICE,
        "convert",
        params_from=calls.params,
        emit=calls.emit,
        degrade=calls.dry if degrade == "pass" else calls.silence,
        max_in_flight=max_in_flight,
        deadline=deadline if deadline is not None else max(0.1, 2.0 * g.block / rate),
        name="convert",
    )
    stage.input_format = stage.output_format = AudioFormat(rate, 1, "float32")
    stage.latency = g.lookahead / rate  # the kept span ends that far before the newest input
    sola = SolaProcessor(g.block, g.crossfade, g.search, sample_rate=rate, fade=s.fade, name="sola")
    monitor = BlockMonitor(g.block / rate, realtime=realtime, name="monitor")
    vc = RemoteVoiceChangerPipeline(
        front, [stage, sola], monitor, registry=registry, owns_registry=owns, stage=stage
    )
    vc.on_settings_change(calls.update)
    return vc
