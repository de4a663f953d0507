"""Audio processors: thin shells that feed :mod:`apipeline.audio` cores with frames.

* :mod:`~apipeline.processors.audio.io`: :class:`AudioFileSource`, :class:`AudioFileSink`,
  :class:`MemoryAudioSource`, :class:`MemoryAudioSink`.
* :mod:`~apipeline.processors.audio.convert`: :class:`ChannelMixer`, :class:`SampleTypeConverter`
  and :func:`check_audio_frame`, the gate every audio processor puts before its core.
* :mod:`~apipeline.processors.audio.resample`: :class:`ResampleProcessor`.
* :mod:`~apipeline.processors.audio.reblock`: :class:`ReblockProcessor`.
* :mod:`~apipeline.processors.audio.vad`: :class:`VADProcessor` (Silero VAD, onnxruntime).
* :mod:`~apipeline.processors.audio.sounddevice_io`: :class:`MicrophoneSource`, :class:`SpeakerSink`
  (optional extra ``live``; ``sounddevice`` is imported when a stream opens).
"""

from apipeline.processors.audio.convert import ChannelMixer as ChannelMixer
from apipeline.processors.audio.convert import SampleTypeConverter as SampleTypeConverter
from apipeline.processors.audio.convert import check_audio_frame as check_audio_frame
from apipeline.processors.audio.io import AudioFileSink as AudioFileSink
from apipeline.processors.audio.io import AudioFileSource as AudioFileSource
from apipeline.processors.audio.io import MemoryAudioSink as MemoryAudioSink
from apipeline.processors.audio.io import MemoryAudioSource as MemoryAudioSource
from apipeline.processors.audio.reblock import ReblockProcessor as ReblockProcessor
from apipeline.processors.audio.resample import ResampleProcessor as ResampleProcessor
from apipeline.processors.audio.sounddevice_io import MicrophoneSource as MicrophoneSource
from apipeline.processors.audio.sounddevice_io import SpeakerSink as SpeakerSink
from apipeline.processors.audio.vad import VADProcessor as VADProcessor

__all__ = [
    "AudioFileSink",
    "AudioFileSource",
    "ChannelMixer",
    "MemoryAudioSink",
    "MemoryAudioSource",
    "MicrophoneSource",
    "ReblockProcessor",
    "ResampleProcessor",
    "SampleTypeConverter",
    "SpeakerSink",
    "VADProcessor",
    "check_audio_frame",
]
