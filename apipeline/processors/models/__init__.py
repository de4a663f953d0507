"""Model processors: registry services as pipeline stages, and the neural voice-changer graph.

* ``service`` -- :class:`ServiceProcessor` (services readied at start; a failed self-test refuses the
  start with a fatal ``ErrorFrame``) and :class:`ModelServiceProcessor` (any service method per frame).
* ``frames`` -- :class:`VoiceChunkFrame`, one conversion window and what the stages made of it.
* ``voice`` -- :class:`ContentEncoderProcessor` (content || F0), :class:`F0ServiceProcessor`,
  :class:`SvcModelProcessor`, :class:`VocoderServiceProcessor`, :class:`ChunkStitchProcessor` (SOLA).
* ``graph`` -- :func:`neural_voice_changer`, the stages in order.
"""

from __future__ import annotations

from apipeline.processors.models.frames import VoiceChunkFrame as VoiceChunkFrame
from apipeline.processors.models.graph import neural_voice_changer as neural_voice_changer
from apipeline.processors.models.service import ModelServiceProcessor as ModelServiceProcessor
from apipeline.processors.models.service import ServiceProcessor as ServiceProcessor
from apipeline.processors.models.voice import ChunkStitchProcessor as ChunkStitchProcessor
from apipeline.processors.models.voice import ContentEncoderProcessor as ContentEncoderProcessor
from apipeline.processors.models.voice import F0ServiceProcessor as F0ServiceProcessor
from apipeline.processors.models.voice import SvcModelProcessor as SvcModelProcessor
from apipeline.processors.models.voice import VocoderServiceProcessor as VocoderServiceProcessor

__all__ = [
    "ChunkStitchProcessor",
    "ContentEncoderProcessor",
    "F0ServiceProcessor",
    "ModelServiceProcessor",
    "ServiceProcessor",
    "SvcModelProcessor",
    "VocoderServiceProcessor",
    "VoiceChunkFrame",
    "neural_voice_changer",
]
