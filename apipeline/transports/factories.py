"""Pipeline factories for the servers: the voice changer, a graph file, or any callable.

* :class:`VoiceChangerFactory`: what ``apipeline serve`` serves with no graph. Needs the session's sample
  rate (from the query string or the first ``AudioRawFrame``); query settings are
  ``VoiceChangerSettings`` fields (``pitch``, ``formant``, ``f0``...), checked at the handshake.
* :class:`GraphFactory`: a graph file, validated once at start-up and built afresh per session; query
  settings reach its processors as an ``UpdateSettingsFrame`` right after ``StartFrame`` (``param`` for every
  processor that has it, ``node.param`` for one).
* :class:`CallableFactory`: wraps ``build(spec) -> FrameProcessor`` (tests, embedding applications).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np

from apipeline.errors import ParameterError
from apipeline.frames import AudioRawFrame, Frame, StartFrame, UpdateSettingsFrame
from apipeline.params import ParamSchema, pipeline_schema
from apipeline.pipeline.pipeline import Pipeline
from apipeline.processors.frame_processor import FrameDirection, FrameProcessor
from apipeline.transports.session import SessionSpec


class CallableFactory:
    """A factory from a function; ``check`` validates settings (default: accept them as they are).

    ``schema``: the session parameters (handshake and mid-stream); without one, handshake settings go
    to ``check`` as typed by :func:`~apipeline.transports.session.parse_value` and mid-stream settings
    are left to the processors.
    """

    def __init__(
        self,
        build: Callable[[SessionSpec], FrameProcessor],
        *,
        needs_audio_format: bool = False,
        check: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        warm_up: Callable[[], Awaitable[None]] | None = None,
        schema: ParamSchema | None = None,
    ) -> None:
        self._build = build
        self.settings_schema = schema
        self.needs_audio_format = needs_audio_format
        self._check = check
        self._warm_up = warm_up

    def check_settings(self, settings: dict[str, Any]) -> dict[str, Any]:
        return self._check(settings) if self._check is not None else settings

    def build(self, spec: SessionSpec) -> FrameProcessor:
        return self._build(spec)

    async def warm_up(self) -> None:
        if self._warm_up is not None:
            await self._warm_up()


class SettingsInjector(FrameProcessor):
    """Pushes one ``UpdateSettingsFrame`` right after ``StartFrame`` (the session's query settings)."""

    def __init__(self, settings: dict[str, Any], *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.settings = dict(settings)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if isinstance(frame, StartFrame) and self.settings:
            await self.push_frame(UpdateSettingsFrame(dict(self.settings)))


class _AudioCounter(FrameProcessor):
    """Counts the audio samples that reach the end of a warm-up run, and passes every frame on."""

    def __init__(self, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.samples = 0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, AudioRawFrame):
            self.samples += len(frame.audio)
        await self.push_frame(frame, direction)


class GraphFactory:
    """Serves a graph file: validated now (raises GraphError), built per session.

    Session settings are the live parameters its processors declare (``settings_schema``), un-prefixed
    (every processor that declares it) or ``node.param``; a graph whose processors declare none takes
    no settings.
    """

    needs_audio_format = False

    def __init__(self, path: str | Path) -> None:
        from apipeline.graph import build_pipeline, load_graph

        self.path = Path(path)
        self.graph = load_graph(self.path)
        self.settings_schema = pipeline_schema(build_pipeline(self.graph).pipeline)

    def check_settings(self, settings: dict[str, Any]) -> dict[str, Any]:
        return self.settings_schema.check(settings, live=True)

    def build(self, spec: SessionSpec) -> FrameProcessor:
        from apipeline.graph import build_pipeline

        root = build_pipeline(self.graph).pipeline
        if not spec.settings:
            return root
        return Pipeline([SettingsInjector(spec.settings, name=f"{spec.session_id}.settings"), root])

    async def warm_up(self) -> None:
        self.build(SessionSpec("warm-up"))


class MadeFrom:
    """The pts rule for a served voice changer: each output carries the ``pts`` (server arrival) of the
    input chunk that completed its block, the input it was made from.

    The voice changer's block framer stamps each block with the media time of its *first* sample on the
    first chunk's clock (``pts0 + index * block``), not with the arrival of the chunk that completed it.
    Mapped back to a client timestamp by arrival time, that picked the chunk holding the block's first
    sample, so a served session's latency read-out (the server's ``apipeline_latency_seconds``, the
    client's ``now - pts``) also counted the wait for the rest of the block to arrive (up to one block,
    35 ms by default) on top of the queueing and compute it is meant to show.

    ``entry`` (before the voice changer) records, per input chunk, the media time at which its last sample
    ends (``pts0`` plus the samples so far) and its arrival; ``exit`` (after it) restamps each output block
    with the arrival of the first chunk whose samples reach the block's end (``pts + block``): exact
    whatever runs asynchronously inside (the analysis and the vocoder have their own queues). Outputs past
    the last chunk (the flush at ``EndFrame``) take the last chunk's arrival. Bounded: only the newest
    ``capacity`` chunks are kept.
    """

    def __init__(self, name: str, block_s: float, *, capacity: int = 4096) -> None:
        self.block_ns = round(block_s * 1e9)
        self.capacity = capacity
        self.pts0: int | None = None
        self.samples = 0
        self.ends: list[float] = []  # media end of each chunk, ns on the pts0 clock
        self.arrivals: list[int] = []
        self.entry = _MadeFromEntry(self, name=f"{name}.made_from_in")
        self.exit = _MadeFromExit(self, name=f"{name}.made_from_out")

    def around(self, inner: FrameProcessor) -> Pipeline:
        return Pipeline([self.entry, inner, self.exit])

    def record(self, frame: AudioRawFrame) -> None:
        if frame.pts is None:
            return
        if self.pts0 is None:
            self.pts0 = frame.pts
        self.samples += frame.num_frames
        self.ends.append(self.pts0 + self.samples * 1e9 / frame.sample_rate)
        self.arrivals.append(frame.pts)
        if len(self.ends) > 2 * self.capacity:
            del self.ends[: self.capacity], self.arrivals[: self.capacity]

    def made_from(self, block_pts: int) -> int | None:
        """The arrival of the chunk that completed the block starting at media time ``block_pts``."""
        if not self.arrivals:
            return None
        i = bisect_left(self.ends, block_pts + self.block_ns - 5e5)  # rounding of the block: 0.5 ms
        return self.arrivals[min(i, len(self.arrivals) - 1)]


class _MadeFromEntry(FrameProcessor):
    """Records each input chunk for :class:`MadeFrom`; with ``block`` set, also hands the voice changer its
    audio a block at a time (see :class:`BlockCoalescer`)."""

    def __init__(self, rule: MadeFrom, *, name: str) -> None:
        super().__init__(name=name)
        self.rule = rule
        self.coalescer: BlockCoalescer | None = None

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction is not FrameDirection.DOWNSTREAM:
            await self.push_frame(frame, direction)
            return
        if isinstance(frame, AudioRawFrame):
            self.rule.record(frame)
        coalescer = self.coalescer
        if coalescer is None:
            await self.push_frame(frame, direction)
            return
        for out in coalescer.push(frame):
            await self.push_frame(out, direction)


class BlockCoalescer:
    """Holds a served voice changer's input chunks until they complete its next block, then passes them on
    as one frame.

    A client sends 20 ms chunks (50 messages a second); the voice changer works in blocks (35 ms by
    default) and its front (settings guard, input guard, padder, block framer) handled every chunk, at
    ~15-20 % of a served session's CPU. Its block framer emits block ``k`` once ``(k + 1) * block`` samples
    have arrived (no resampling: the stream runs at the processing rate), so passing on the held chunks
    exactly when their total crosses a multiple of ``block`` hands over the same samples in the same order
    no later than the framer could use them: no added latency, the same blocks.

    Only plain chunks are held: the stream's rate and channels, non-empty, no metadata, finite, one dtype.
    Anything else (a non-audio frame, a malformed or non-finite chunk the input guard must see on its own)
    first releases what is held, then passes alone, so nothing is reordered and every error names the
    chunk it is about. The merged frame keeps its first chunk's ``pts`` (the framer's clock starts there,
    as :class:`MadeFrom` assumes).
    """

    def __init__(self, block: int, sample_rate: int, channels: int) -> None:
        if block < 1:
            raise ParameterError(f"block must be >= 1 sample, got {block}")
        self.block = block
        self.sample_rate = sample_rate
        self.channels = channels
        self.total = 0  # samples of plain chunks seen
        self.held: list[AudioRawFrame] = []
        self.held_samples = 0

    def _plain(self, frame: AudioRawFrame) -> bool:
        audio = frame.audio
        if (
            frame.sample_rate != self.sample_rate
            or frame.num_channels != self.channels
            or frame.metadata
            or not isinstance(audio, np.ndarray)
            or audio.shape[0] == 0
            or (self.channels == 1) != (audio.ndim == 1)
        ):
            return False
        if self.held and audio.dtype != self.held[0].audio.dtype:  # type: ignore[union-attr]
            return False
        return audio.dtype.kind != "f" or bool(np.isfinite(audio).all())

    def release(self) -> list[AudioRawFrame]:
        """What is held, as one frame (nothing when nothing is held)."""
        held, self.held = self.held, []
        self.held_samples = 0
        if len(held) <= 1:
            return held
        first = held[0]
        audio = np.concatenate([f.audio for f in held])  # type: ignore[misc]
        return [AudioRawFrame(audio, first.sample_rate, first.num_channels, pts=first.pts)]

    def push(self, frame: Frame) -> list[Frame]:
        """The frames to pass on now, in order."""
        if not isinstance(frame, AudioRawFrame) or not self._plain(frame):
            if (
                isinstance(frame, AudioRawFrame)
                and frame.sample_rate == self.sample_rate
                and frame.num_channels == self.channels
            ):
                self.total += frame.num_frames  # the input guard passes it on: the framer counts it
            return [*self.release(), frame]
        before = self.total
        self.total += frame.num_frames
        self.held.append(frame)
        self.held_samples += frame.num_frames
        if self.total // self.block > before // self.block:
            return list(self.release())
        return []


class _MadeFromExit(FrameProcessor):
    def __init__(self, rule: MadeFrom, *, name: str) -> None:
        super().__init__(name=name)
        self.rule = rule

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if (
            isinstance(frame, AudioRawFrame)
            and direction is FrameDirection.DOWNSTREAM
            and frame.pts is not None
        ):
            arrival = self.rule.made_from(frame.pts)
            if arrival is not None:
                frame.pts = arrival
        await self.push_frame(frame, direction)


class VoiceChangerFactory:
    """Serves the streaming voice changer (``apipeline.voice_changer``), one per session."""

    needs_audio_format = True
    #: the process's first build creates the VAD's onnxruntime session (~0.1 s, GIL released), and every
    #: build allocates the DAG: off the event loop
    build_in_thread = True

    def __init__(self, placement: Any = None, **defaults: Any) -> None:
        """``placement``: an ``apipeline.voice_changer.RemotePlacement`` to run the per-block
        conversion on a model backend shared by every session (``None``: in-process). ``defaults``: any
        ``VoiceChangerSettings`` field (the operator's choice, checked by the voice changer itself);
        clients may then change what :data:`settings_schema` allows, within its bounds."""
        from apipeline.transports.voice_changer_params import voice_changer_schema

        self.defaults = defaults
        self.placement = placement
        self.settings_schema: ParamSchema = voice_changer_schema()
        self._checked({})  # bad defaults fail now, not at the first session

    def check_settings(self, settings: dict[str, Any]) -> dict[str, Any]:
        """Refuse what a client may not set (ParameterError: unknown names, wrong types, out of the
        bounds that keep a session real-time), then the voice changer's own cross-field checks."""
        from apipeline.transports.voice_changer_params import GEOMETRY, check_session_cost

        settings = self.settings_schema.check(settings)
        self._checked(settings)
        if any(k in settings for k in GEOMETRY):  # the operator's own defaults are the operator's call
            merged = {**self.settings_schema.defaults(), **self.defaults, **settings}
            check_session_cost({k: float(merged[k]) for k in GEOMETRY})
        return settings

    def _checked(self, settings: dict[str, Any]) -> None:
        from apipeline.voice_changer import VoiceChangerSettings

        merged = VoiceChangerSettings(**{**self.defaults, **settings})
        merged.validate()  # its range checks
        merged.geometry(16000)  # and the block geometry's (e.g. a crossfade longer than the block)

    def build(self, spec: SessionSpec) -> FrameProcessor:
        from apipeline.voice_changer import VoiceChangerSettings, build_voice_changer

        if spec.sample_rate is None:
            raise ValueError("the voice changer needs the session's sample rate")
        settings = VoiceChangerSettings(**{**self.defaults, **spec.settings})
        vc = build_voice_changer(
            settings, sample_rate=spec.sample_rate, channels=spec.num_channels or 1, backend=self.placement
        )
        g = vc.geometry
        rule = MadeFrom(spec.session_id, g.block / g.sample_rate)
        if g.sample_rate == spec.sample_rate:  # blocks at the stream's rate: chunks can be merged to them
            rule.entry.coalescer = BlockCoalescer(g.block, spec.sample_rate, spec.num_channels or 1)
        return rule.around(vc)

    async def warm_up(self) -> None:
        """Build one pipeline and push 0.3 s of a tone through it (imports and first calls are slow)."""
        from apipeline.pipeline.task import PipelineTask

        rate = 16000
        t = np.arange(int(0.3 * rate)) / rate
        tone = (0.3 * np.sin(2 * np.pi * 150 * t)).astype(np.float32)
        counter = _AudioCounter(name="warm-up.counter")
        task = PipelineTask(Pipeline([self.build(SessionSpec("warm-up", rate, 1)), counter]), name="warm-up")
        await task.queue_frame(AudioRawFrame(tone, sample_rate=rate))
        await task.stop_when_done()
        await task.run()
        if counter.samples == 0:
            raise RuntimeError("the voice changer produced nothing from 0.3 s of a tone")


def app_info(factory: Any) -> dict[str, Any]:
    """What ``GET /info`` answers: which app this server runs (``app``) and its session parameters.

    A factory may say it itself (``app_info() -> dict``, e.g. the chatbot's); otherwise ``app`` is
    ``"voice-changer"``, ``"graph"`` or ``"custom"`` and ``params`` its ``settings_schema`` as JSON Schema.
    """
    own = getattr(factory, "app_info", None)
    if callable(own):
        return dict(own())
    if isinstance(factory, VoiceChangerFactory):
        app = "voice-changer"
    elif isinstance(factory, GraphFactory):
        app = "graph"
    else:
        app = "custom"
    schema = getattr(factory, "settings_schema", None)
    return {"app": app, "params": schema.json_schema() if isinstance(schema, ParamSchema) else None}
