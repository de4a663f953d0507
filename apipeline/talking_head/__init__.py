"""The talking head as an app: a portrait and speech in, a lip-synced video file out.

:func:`render_file` reads the audio in chunks into a :class:`~apipeline.pipeline.PipelineTask` running
``TalkingHeadProcessor → MediaFileSink`` (the same processors a served pipeline uses), writing through
:class:`~apipeline.outputs.AtomicOutput`: everything is checked before any work (image, face, audio,
output path, encoder settings, container/codec fit), a failed run leaves no file and an existing file
untouched. :func:`make_renderer` picks the path: the portrait animator (no weights), or the neural
renderer when a wav2lip-signature model is given.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from apipeline.errors import PipelineError
from apipeline.outputs import AtomicOutput
from apipeline.video.encode import EncoderSettings, check_container, container_format
from apipeline.video.face import Fallback
from apipeline.video.renderer import TalkingHeadRenderer, make_renderer

CHUNK_S = 0.02
#: the portrait shipped with the package (public domain; its origin is in examples/data/README.md)
DEFAULT_PORTRAIT = str(Path(__file__).resolve().parents[1] / "video" / "data" / "portrait.png")


@dataclass(slots=True)
class RenderReport:
    """What :func:`render_file` did."""

    input: str
    output: str
    image: str
    size: tuple[int, int]
    fps: float
    audio_s: float
    video_frames: int
    wall_s: float
    render_fps: float
    face: dict[str, str]
    outcome: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def render_file(
    image: str | os.PathLike[str],
    input: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    settings: EncoderSettings | None = None,
    renderer: TalkingHeadRenderer | None = None,
    size: int | None = None,
    landmarks: str | None = None,
    fallback: Fallback = "error",
    model: str | None = None,
    enhancer: str | None = None,
) -> RenderReport:
    """Render ``output`` (MP4, MOV, MKV or WebM) from a portrait and a speech file."""
    from apipeline.audio.io import AudioFileReader

    settings = settings or EncoderSettings()
    target = AtomicOutput(output, inputs=[image, input])
    check_container(container_format(output), settings)
    if renderer is None:
        renderer = make_renderer(
            image,
            size=size,
            fps=settings.fps,
            landmarks=landmarks,
            fallback=fallback,
            model=model,
            enhancer=enhancer,
        )
    t0 = time.perf_counter()
    with AudioFileReader(input, 1) as probe:
        sample_rate, channels, duration = probe.sample_rate, probe.channels, probe.duration
    with target:
        frames = asyncio.run(_run(input, target.path, renderer, settings, sample_rate, channels))
    wall = time.perf_counter() - t0
    layout = getattr(renderer, "layout", None)
    face = dict(layout.source) if layout is not None else {}
    return RenderReport(
        str(input), str(output), str(image), renderer.size, settings.fps, duration, frames, wall,
        frames / wall if wall > 0 else 0.0, face, target.outcome,
    )  # fmt: skip


async def _run(
    input: str | os.PathLike[str],
    path: str | os.PathLike[str],
    renderer: TalkingHeadRenderer,
    settings: EncoderSettings,
    sample_rate: int,
    channels: int,
) -> int:
    from apipeline.audio.io import AudioFileReader
    from apipeline.frames import AudioRawFrame
    from apipeline.pipeline import Pipeline, PipelineTask
    from apipeline.processors.video import MediaFileSink, TalkingHeadProcessor

    head = TalkingHeadProcessor(renderer, fps=settings.fps)
    w, h = renderer.size
    sink = MediaFileSink(
        path, width=w, height=h, sample_rate=sample_rate, channels=channels, settings=settings
    )
    task = PipelineTask(Pipeline([head, sink]))
    runner = asyncio.create_task(task.run())
    block = max(1, round(CHUNK_S * sample_rate))
    with AudioFileReader(input, block) as reader:
        for chunk in reader:
            await task.queue_frame(
                AudioRawFrame(chunk if channels > 1 else chunk[:, 0], sample_rate, channels)
            )
    await task.stop_when_done()
    await runner
    if task.errors:
        raise PipelineError(f"talking head: {task.errors[0].error}")
    return head.frames_rendered


def speaking_head(
    output: str | os.PathLike[str],
    *,
    image: str | os.PathLike[str] | None = None,
    settings: EncoderSettings | None = None,
    size: int | None = 256,
    inputs: tuple[str | os.PathLike[str], ...] = (),
) -> list[Any]:
    """Processors that put a talking head on whatever audio reaches them and mux it into ``output``.

    Put them after a voice (the chatbot's speech, a voice changer): ``[*bot_processors,
    *speaking_head("answer.mp4")]``. Everything is checked now, before any engine loads: the output path
    (never one of ``inputs``), the container and codecs, the portrait (the bundled one by default) and
    its face.
    """
    from apipeline.outputs import check_output_path
    from apipeline.processors.video import MediaFileSink, TalkingHeadProcessor
    from apipeline.video.renderer import make_renderer

    settings = settings or EncoderSettings()
    check_output_path(output, inputs=inputs)
    check_container(container_format(output), settings)
    portrait = image if image is not None else DEFAULT_PORTRAIT
    renderer = make_renderer(portrait, size=size, fps=settings.fps)
    return [TalkingHeadProcessor(renderer, fps=settings.fps), MediaFileSink(output, settings=settings)]
