"""Graph-file nodes for video: the talking head with its renderer built from plain parameters."""

from __future__ import annotations

from typing import Any, Literal

from apipeline.processors.video.talking_head import TalkingHeadProcessor


class TalkingHeadNode(TalkingHeadProcessor):
    """``video.talking_head``: a talking head from a portrait file (and optional lip-sync models).

    Args:
        image: the portrait.
        size: longest side of the pictures (None: the image's own).
        fps: pictures per second.
        landmarks: a landmark file instead of face detection.
        fallback: when no face is found, ``error`` or ``center``.
        model: a wav2lip-signature ONNX model (None: animate the portrait without weights).
        enhancer: a GFPGAN-signature ONNX model run after the lip-sync model.
        seed: seeds the blinks.
    """

    def __init__(
        self,
        image: str,
        size: int | None = None,
        fps: float = 25.0,
        landmarks: str | None = None,
        fallback: Literal["error", "center"] = "error",
        model: str | None = None,
        enhancer: str | None = None,
        seed: int = 0,
        **kwargs: Any,
    ) -> None:
        from apipeline.video.renderer import make_renderer

        renderer = make_renderer(
            image,
            size=size,
            fps=fps,
            landmarks=landmarks,
            fallback=fallback,
            model=model,
            enhancer=enhancer,
            seed=seed,
        )
        super().__init__(renderer, fps=fps, **kwargs)
