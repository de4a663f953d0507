"""The processor types apipeline ships, by graph name.

Core processors are registered as classes (they are light); audio and model processors by import path,
imported the first time a graph or ``apipeline list`` asks for them, so ``import apipeline.graph`` pulls
neither numpy-heavy DSP modules nor torch. A lazy entry whose module does not exist (yet) or fails to
import shows up in :meth:`~apipeline.graph.registry.Registry.broken` instead of breaking the others.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from apipeline.graph.registry import Registry

# graph name -> "module:Class"; the audio and model processors live in their own subpackages.
LAZY_TYPES: dict[str, str] = {
    "audio.file_source": "apipeline.processors.audio.io:AudioFileSource",
    "audio.file_sink": "apipeline.processors.audio.io:AudioFileSink",
    "audio.microphone": "apipeline.processors.audio.sounddevice_io:MicrophoneSource",
    "audio.speaker": "apipeline.processors.audio.sounddevice_io:SpeakerSink",
    "audio.resample": "apipeline.processors.audio.resample:ResampleProcessor",
    "audio.channel_mixer": "apipeline.processors.audio.convert:ChannelMixer",
    "audio.sample_type": "apipeline.processors.audio.convert:SampleTypeConverter",
    "audio.reblock": "apipeline.processors.audio.reblock:ReblockProcessor",
    "audio.vad": "apipeline.processors.audio.vad:VADProcessor",
    "audio.f0": "apipeline.processors.audio.f0:F0Processor",
    # the voice changer's stages with millisecond geometry parameters (apipeline.voice_changer.nodes)
    "audio.world_analysis": "apipeline.voice_changer.nodes:WorldAnalysisNode",
    "voice_changer.f0": "apipeline.voice_changer.nodes:F0Node",
    "audio.svc": "apipeline.processors.audio.svc:VoiceConversionProcessor",
    "audio.vocoder": "apipeline.voice_changer.nodes:VocoderNode",
    "audio.sola": "apipeline.voice_changer.nodes:SolaNode",
    "voice_changer": "apipeline.voice_changer.node:VoiceChangerNode",
    "voice_changer.input_guard": "apipeline.voice_changer.gate:InputGuard",
    "voice_changer.pad": "apipeline.voice_changer.nodes:StreamEndPadder",
    "voice_changer.reblock": "apipeline.voice_changer.nodes:ReblockNode",
    "voice_changer.gate": "apipeline.voice_changer.nodes:BlockGateNode",
    "voice_changer.monitor": "apipeline.voice_changer.monitor:BlockMonitor",
    "voice_changer.align": "apipeline.voice_changer.nodes:AlignNode",
    "voice_changer.limiter": "apipeline.voice_changer.gate:Limiter",
    # video: the talking head, pacing on presentation time, muxing to a file (apipeline.processors.video)
    "video.talking_head": "apipeline.processors.video.nodes:TalkingHeadNode",
    "video.pacer": "apipeline.processors.video.pacer:VideoPacer",
    "video.file_sink": "apipeline.processors.video.sink:MediaFileSink",
    "video.mp4_stream": "apipeline.processors.video.stream:Mp4StreamEncoder",
    # model-service stages take a live ModelRegistry: listed, but built in code (see apipeline list)
    "models.content_encoder": "apipeline.processors.models.voice:ContentEncoderProcessor",
    "models.f0": "apipeline.processors.models.voice:F0ServiceProcessor",
    "models.svc": "apipeline.processors.models.voice:SvcModelProcessor",
    "models.vocoder": "apipeline.processors.models.voice:VocoderServiceProcessor",
    "models.chunk_stitch": "apipeline.processors.models.voice:ChunkStitchProcessor",
}


def register_builtins(registry: Registry) -> None:
    """Register the core processors (classes) and the audio/model processors (import paths)."""
    from apipeline.processors.aggregators import GatedAggregator, HoldFramesAggregator, SentenceAggregator
    from apipeline.processors.filters import FrameFilter, FunctionFilter
    from apipeline.processors.logger import FrameLogger
    from apipeline.processors.output import OutputFrameProcessor

    registry.register("logger", FrameLogger)
    registry.register("filter", FrameFilter)
    registry.register("function_filter", FunctionFilter)
    registry.register("sentence_aggregator", SentenceAggregator)
    registry.register("gated_aggregator", GatedAggregator)
    registry.register("hold_frames", HoldFramesAggregator)
    registry.register("output_callback", OutputFrameProcessor)
    for name, target in LAZY_TYPES.items():
        registry.register_lazy(name, target)
