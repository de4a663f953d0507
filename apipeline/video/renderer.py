"""Talking-head renderers: a picture for each mouth shape.

A renderer is anything with ``render(shape) -> (h, w, 3) uint8`` and ``reset()`` (called on an
interruption), plus ``size`` ``(width, height)``; one that reads the audio itself also has
``feed(samples, sample_rate)``, called with every chunk before the pictures it completes are drawn.
:class:`PortraitRenderer` animates a still portrait with no model weights;
:class:`~apipeline.video.wav2lip.NeuralRenderer` runs a wav2lip-style model.
"""

from __future__ import annotations

import os
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from apipeline.errors import ConfigurationError
from apipeline.video.face import FaceLayout, Fallback, load_landmarks, locate_face
from apipeline.video.image import check_size, read_image, to_rgb
from apipeline.video.mouth import MouthShape
from apipeline.video.portrait import BlinkSchedule, PortraitAnimator


class TalkingHeadRenderer(Protocol):
    """What :class:`~apipeline.processors.video.TalkingHeadProcessor` drives."""

    size: tuple[int, int]

    def render(self, shape: MouthShape) -> NDArray[np.uint8]: ...

    def reset(self) -> None: ...


def fit_size(width: int, height: int, longest: int | None) -> tuple[int, int]:
    """The even-sided size of an image scaled so its longest side is ``longest`` (None: as is)."""
    if longest is not None:
        scale = longest / max(width, height)
        width, height = round(width * scale), round(height * scale)
    width, height = width - width % 2, height - height % 2
    check_size(width, height, what="output picture")
    return width, height


class PortraitRenderer:
    """A still portrait whose mouth follows the audio and whose eyes blink (no weights needed).

    Args:
        image: the portrait, any layout :func:`~apipeline.video.image.to_rgb` accepts.
        size: longest side of the output (even); ``None`` keeps the image's size (made even).
        landmarks: a landmark file instead of face detection.
        fallback: what to do when no face is found (see :func:`~apipeline.video.face.locate_face`).
        seed: seeds the blink schedule, so renders are reproducible.
        fps: the video frame rate (blinks are timed in frames).
    """

    def __init__(
        self,
        image: NDArray[np.generic],
        *,
        size: int | None = None,
        landmarks: str | None = None,
        fallback: Fallback = "error",
        seed: int = 0,
        fps: float = 25.0,
    ) -> None:
        import cv2

        rgb = to_rgb(image)
        h, w = rgb.shape[:2]
        layout: FaceLayout = (
            load_landmarks(landmarks, w, h) if landmarks else locate_face(rgb, fallback=fallback)
        )
        self.size = fit_size(w, h, size)
        if self.size != (w, h):
            interp = cv2.INTER_AREA if self.size[0] < w else cv2.INTER_CUBIC
            rgb = np.asarray(cv2.resize(rgb, self.size, interpolation=interp), dtype=np.uint8)
            layout = layout.scaled(self.size[0] / w, self.size[1] / h)
        self.layout = layout
        self.fps = fps
        self._seed = seed
        self._animator = PortraitAnimator(rgb, layout)
        self._blinks = BlinkSchedule(fps, seed)

    def render(self, shape: MouthShape) -> NDArray[np.uint8]:
        return self._animator.render(shape.opening, shape.width, self._blinks.closure(shape.index))

    def reset(self) -> None:
        """Nothing to forget: the picture depends only on the shape and the frame index."""


def make_renderer(
    image_path: str | os.PathLike[str],
    *,
    size: int | None = None,
    fps: float = 25.0,
    landmarks: str | None = None,
    fallback: Fallback = "error",
    model: str | None = None,
    enhancer: str | None = None,
    seed: int = 0,
) -> TalkingHeadRenderer:
    """The portrait renderer, or the neural one when ``model`` (a wav2lip-signature ONNX file) is given."""
    image = read_image(image_path)
    if model is None:
        if enhancer is not None:
            raise ConfigurationError("an enhancer needs a lip-sync model (--model)")
        return PortraitRenderer(image, size=size, landmarks=landmarks, fallback=fallback, seed=seed, fps=fps)
    from apipeline.video.wav2lip import NeuralRenderer

    return NeuralRenderer(
        image, model, enhancer=enhancer, size=size, landmarks=landmarks, fallback=fallback, fps=fps
    )
