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

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np

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


class VoiceChangerFactory:
    """Serves the streaming voice changer (``apipeline.voice_changer``), one per session."""

    needs_audio_format = True

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
        return build_voice_changer(
            settings, sample_rate=spec.sample_rate, channels=spec.num_channels or 1, backend=self.placement
        )

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
