"""The whole voice changer as one graph node (``voice_changer``), built from plain settings.

:class:`VoiceChangerNode` is a :class:`~apipeline.pipeline.Pipeline` holding the DAG of
:func:`~apipeline.voice_changer.build_voice_changer` (in-process, or with ``ray_address`` on a model
backend) and an :class:`~apipeline.voice_changer.nodes.OutputAligner`, so a file in gives a file out with
the same length, aligned sample for sample. Its parameters are generated from
:meth:`VoiceChangerSettings.schema` (same names, defaults and bounds as the command line; the processing
rate is ``processing_rate``) plus the stream's ``sample_rate`` and ``channels`` and the node's own below.
"""

from __future__ import annotations

import inspect
from typing import Any, Literal

from apipeline.audio.format import AudioFormat
from apipeline.errors import ParameterError
from apipeline.frames import AudioRawFrame, EndFrame, Frame, StartFrame
from apipeline.pipeline import Pipeline
from apipeline.processors.frame_processor import FrameDirection
from apipeline.voice_changer.build import build_voice_changer
from apipeline.voice_changer.dag import VoiceChangerPipeline
from apipeline.voice_changer.nodes import OutputAligner, settings_params, with_signature
from apipeline.voice_changer.settings import VoiceChangerSettings

_RENAMED = {"sample_rate": "processing_rate"}  # the node's sample_rate is the stream's
_OWN = (
    ("channels", int, 1, "the stream's channels (converted as mono, duplicated on output)"),
    ("f0_options", dict[str, Any] | None, None, "estimator keyword arguments"),
    ("realtime", bool, False, "the source is paced in real time (underruns are counted)"),
    ("align", bool, True, "drop the stitch delay and cut the output at the input's length"),
    ("ray_address", str | None, None,
     "run the conversion on a model backend: local (a Ray instance started here), auto, host:port or "
     "ray://host:port; null: the in-process DAG. A graph's backend: ray sets it on nodes that leave it "
     "unset"),
    ("ray_options", dict[str, Any] | None, None,
     "with ray_address, how the model stages are hosted: a graph's ray: keys (serve, replicas, "
     "min_replicas, max_replicas, num_cpus, num_gpus, max_ongoing_requests...); a graph with backend: ray "
     "sets it from its own ray: mapping"),
    ("degrade", Literal["pass", "silence"], "pass",
     "with a backend, what a block whose call failed becomes: pass (dry) or silence"),
)  # fmt: skip


class VoiceChangerNode(Pipeline):
    """The real-time voice changer (F0 + WORLD analysis, conversion, synthesis, SOLA) as one node.

    Keyword arguments: ``sample_rate`` (the stream's), every :meth:`VoiceChangerSettings.schema`
    setting (``sample_rate`` there is ``processing_rate`` here) and the node's own (the signature lists
    them all). Raises ParameterError for a setting out of range, before anything runs.
    """

    def __init__(self, **kwargs: Any) -> None:
        name = kwargs.pop("name", None)
        sample_rate = kwargs.pop("sample_rate")
        own = {key: kwargs.pop(key, default) for key, _, default, _ in _OWN}
        values = {("sample_rate" if k == "processing_rate" else k): v for k, v in kwargs.items()}
        if own["degrade"] not in ("pass", "silence"):
            raise ParameterError(f"degrade must be 'pass' or 'silence', got {own['degrade']!r}")
        settings = VoiceChangerSettings.from_values({**values, "f0_options": own["f0_options"]})
        backend = None
        if own["ray_options"] is not None and own["ray_address"] is None:
            raise ParameterError("ray_options needs ray_address (or a graph with backend: ray)")
        if own["ray_address"] is not None:
            from apipeline.voice_changer.remote import RemotePlacement

            where: Any = own["ray_address"]
            if own["ray_options"]:
                from apipeline.models.backends import (
                    backend_from_address,
                    check_ray_options,
                    ray_backend_options,
                )

                problem = check_ray_options(own["ray_options"])
                if problem is not None:
                    raise ParameterError(f"ray_options: {problem}")
                where = backend_from_address(where, **ray_backend_options(own["ray_options"]))
            backend = RemotePlacement(where, degrade=own["degrade"])
        vc: VoiceChangerPipeline = build_voice_changer(
            settings,
            sample_rate=sample_rate,
            channels=own["channels"],
            realtime=own["realtime"],
            backend=backend,
        )
        align = bool(own["align"])
        self.aligner = OutputAligner(
            vc.align_samples if align else 0, name=f"{name or 'voice_changer'}.align"
        )
        super().__init__([vc, self.aligner], name=name or "voice_changer")
        self.voice_changer = vc
        vc.settings_guard.owner = self.name  # "<node id>.pitch" addresses this node's settings
        self.ray_address = own["ray_address"]
        self.input_format = AudioFormat(sample_rate, own["channels"])
        self.output_format = AudioFormat(sample_rate, own["channels"], "float32")
        self._align = align
        self._samples = 0

    async def receive(self, frame: Frame, direction: FrameDirection) -> None:
        if direction is FrameDirection.DOWNSTREAM:
            if isinstance(frame, StartFrame):
                self._samples = 0
            elif isinstance(frame, AudioRawFrame):
                self._samples += frame.num_frames
            elif isinstance(frame, EndFrame) and self._align:
                self.aligner.set_length(self._samples, self.voice_changer.sample_rate)
        await super().receive(frame, direction)

    async def aclose(self) -> None:
        """Release the model backend of a remote node (a no-op for the in-process DAG)."""
        close = getattr(self.voice_changer, "aclose", None)
        if close is not None:
            await close()


def _signature() -> list[tuple[inspect.Parameter, str]]:
    kw = inspect.Parameter.KEYWORD_ONLY
    params = [(inspect.Parameter("sample_rate", kw, annotation=int), "the stream's sample rate (Hz)")]
    for param, doc in settings_params(tuple(VoiceChangerSettings.schema())):
        params.append((param.replace(name=_RENAMED.get(param.name, param.name)), doc))
    params += [(inspect.Parameter(n, kw, default=d, annotation=a), doc) for n, a, d, doc in _OWN]
    return params


VoiceChangerNode.__doc__ = (
    f"{VoiceChangerNode.__doc__}\n    {with_signature(VoiceChangerNode.__init__, _signature())}"
)
