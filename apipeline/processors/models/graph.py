"""The neural voice-changer graph, assembled from the model stages:

``audio -> resample 16 kHz -> reblock [context | block] -> (content encoder || F0) -> SVC model
-> vocoder (for mel-output models) -> SOLA crossfade -> out``.
"""

from __future__ import annotations

from typing import Any

from apipeline.errors import ParameterError
from apipeline.models import ModelRegistry
from apipeline.processors.audio.reblock import ReblockProcessor
from apipeline.processors.audio.resample import ResampleProcessor
from apipeline.processors.frame_processor import FrameProcessor
from apipeline.processors.models.voice import (
    CONTENT_RATE,
    ChunkStitchProcessor,
    ContentEncoderProcessor,
    SvcModelProcessor,
    VocoderServiceProcessor,
)


def neural_voice_changer(
    registry: ModelRegistry,
    *,
    content_service: str = "content_encoder",
    f0_service: str = "f0_fcpe",
    svc_service: str = "svc",
    vocoder_service: str | None = None,
    block_ms: float = 250.0,
    context_ms: float = 500.0,
    crossfade_ms: float = 40.0,
    search_ms: float = 10.0,
    speaker: Any = 0,
    pitch: float = 0.0,
    seed: int = 0,
) -> list[FrameProcessor]:
    """The processors of the graph, in order, for services already registered in ``registry``.

    ``block_ms`` must be a multiple of 10 ms (so a block is a whole number of samples at 16 kHz and at
    the model's rate) and ``context_ms`` at least ``crossfade_ms + search_ms``. Latency: block +
    crossfade + search (+ the resampler's hold-back); the context costs compute only.
    """
    if round(block_ms * 100) % 1000:
        raise ParameterError(f"block_ms must be a multiple of 10 ms, got {block_ms}")
    if context_ms < crossfade_ms + search_ms:
        raise ParameterError(
            f"context_ms ({context_ms}) must be >= crossfade_ms + search_ms ({crossfade_ms + search_ms})"
        )
    stages: list[FrameProcessor] = [
        ResampleProcessor(CONTENT_RATE),
        ReblockProcessor(block_ms, context_ms, sample_rate=CONTENT_RATE),
        ContentEncoderProcessor(registry, content_service, f0_service=f0_service),
        SvcModelProcessor(registry, svc_service, speaker=speaker, pitch=pitch, seed=seed),
    ]
    if vocoder_service is not None:
        stages.append(VocoderServiceProcessor(registry, vocoder_service))
    stages.append(ChunkStitchProcessor(crossfade_ms=crossfade_ms, search_ms=search_ms))
    return stages
