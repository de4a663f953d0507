"""What flows through a pipeline.

* :mod:`~apipeline.frames.base`: :class:`Frame` and the families :class:`SystemFrame` (out of band),
  :class:`ControlFrame` (in band, ordered with data), :class:`DataFrame` (payload, interruptible)
  and :class:`AppFrame` (base for application payloads).
* :mod:`~apipeline.frames.system`: cancel, error, stop-task, interruption and metrics frames.
* :mod:`~apipeline.frames.control`: start, end, sync, notify, settings and voice-activity frames.
* :mod:`~apipeline.frames.data`: text, raw audio and raw image frames.
* :mod:`~apipeline.frames.format`: :class:`~apipeline.frames.format.AudioFormat`, the caps of a link
  (also importable from :mod:`apipeline.audio.format`).
* :mod:`~apipeline.frames.video`: :class:`VideoFrame`, an RGB picture with its presentation time
  (importable from here; not in ``__all__``, which lists the frames every serializer carries: pictures
  leave a server encoded, as fragmented MP4, not frame by frame).
* :mod:`~apipeline.frames.conversation`: transcripts, LLM turns, speech synthesis, who is speaking
  (importable from here; not in ``__all__`` yet: they have no wire form until the served chatbot
  needs one, and ``__all__`` lists the frames every serializer carries).
"""

from apipeline.frames.base import AppFrame as AppFrame
from apipeline.frames.base import ControlFrame as ControlFrame
from apipeline.frames.base import DataFrame as DataFrame
from apipeline.frames.base import Frame as Frame
from apipeline.frames.base import SystemFrame as SystemFrame
from apipeline.frames.control import EndFrame as EndFrame
from apipeline.frames.control import StartFrame as StartFrame
from apipeline.frames.control import SyncFrame as SyncFrame
from apipeline.frames.control import SyncNotifyFrame as SyncNotifyFrame
from apipeline.frames.control import UpdateSettingsFrame as UpdateSettingsFrame
from apipeline.frames.control import UserStartedSpeakingFrame as UserStartedSpeakingFrame
from apipeline.frames.control import UserStoppedSpeakingFrame as UserStoppedSpeakingFrame
from apipeline.frames.conversation import BotStartedSpeakingFrame as BotStartedSpeakingFrame
from apipeline.frames.conversation import BotStoppedSpeakingFrame as BotStoppedSpeakingFrame
from apipeline.frames.conversation import InterimTranscriptionFrame as InterimTranscriptionFrame
from apipeline.frames.conversation import LLMContextFrame as LLMContextFrame
from apipeline.frames.conversation import LLMFullResponseEndFrame as LLMFullResponseEndFrame
from apipeline.frames.conversation import LLMFullResponseStartFrame as LLMFullResponseStartFrame
from apipeline.frames.conversation import LLMMessagesFrame as LLMMessagesFrame
from apipeline.frames.conversation import LLMTextFrame as LLMTextFrame
from apipeline.frames.conversation import TranscriptionFrame as TranscriptionFrame
from apipeline.frames.conversation import TTSAudioRawFrame as TTSAudioRawFrame
from apipeline.frames.conversation import TTSSpeakFrame as TTSSpeakFrame
from apipeline.frames.conversation import TTSStartedFrame as TTSStartedFrame
from apipeline.frames.conversation import TTSStoppedFrame as TTSStoppedFrame
from apipeline.frames.conversation import TTSTextFrame as TTSTextFrame
from apipeline.frames.data import AudioRawFrame as AudioRawFrame
from apipeline.frames.data import ImageRawFrame as ImageRawFrame
from apipeline.frames.data import TextFrame as TextFrame
from apipeline.frames.system import CancelFrame as CancelFrame
from apipeline.frames.system import ErrorFrame as ErrorFrame
from apipeline.frames.system import InterruptionFrame as InterruptionFrame
from apipeline.frames.system import MetricsFrame as MetricsFrame
from apipeline.frames.system import StartInterruptionFrame as StartInterruptionFrame
from apipeline.frames.system import StopInterruptionFrame as StopInterruptionFrame
from apipeline.frames.system import StopTaskFrame as StopTaskFrame
from apipeline.frames.video import VideoFrame as VideoFrame

__all__ = [
    "AppFrame",
    "AudioRawFrame",
    "CancelFrame",
    "ControlFrame",
    "DataFrame",
    "EndFrame",
    "ErrorFrame",
    "Frame",
    "ImageRawFrame",
    "InterruptionFrame",
    "MetricsFrame",
    "StartFrame",
    "StartInterruptionFrame",
    "StopInterruptionFrame",
    "StopTaskFrame",
    "SyncFrame",
    "SyncNotifyFrame",
    "SystemFrame",
    "TextFrame",
    "UpdateSettingsFrame",
    "UserStartedSpeakingFrame",
    "UserStoppedSpeakingFrame",
]
