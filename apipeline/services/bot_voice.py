"""The bot speaking through the voice changer: TTS → the voice changer's DAG → the bot's output.

:func:`bot_voice_changer` builds the same DAG ``apipeline voice-changer`` runs
(:func:`apipeline.voice_changer.build_voice_changer`) for the TTS's rate, mono, behind a
:class:`SpeechTail`. The voice changer converts in blocks and holds back its latency (crossfade,
look-ahead, the block in progress), so the end of an answer would wait for the next answer's audio to
push it out; :class:`SpeechTail` pushes that much silence after the last audio of each answer (before
its ``TTSStoppedFrame``), so every answer leaves whole and the bot stops speaking when its words end.

The voice changer's own Silero VAD is switched off here (its speaking events describe the *user*
elsewhere in a chatbot); barge-in reaches its queues as any ``StartInterruptionFrame`` does.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from apipeline.errors import ParameterError
from apipeline.frames import AudioRawFrame, Frame, StartInterruptionFrame, TTSAudioRawFrame, TTSStoppedFrame
from apipeline.pipeline.pipeline import Pipeline
from apipeline.processors.frame_processor import FrameDirection, FrameProcessor


class SpeechTail(FrameProcessor):
    """Push ``tail_s`` of silence after each answer's last audio (before its ``TTSStoppedFrame``).

    The silence goes out only after an answer that had audio and was not interrupted, at the rate and
    sample type of that audio, in frames of at most ``frame_s``.
    """

    def __init__(self, tail_s: float, *, frame_s: float = 0.02, name: str | None = None) -> None:
        super().__init__(name=name)
        if not tail_s >= 0:
            raise ParameterError(f"tail_s must be >= 0, got {tail_s}")
        self.tail_s = tail_s
        self.frame_s = frame_s
        self._last: AudioRawFrame | None = None

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction is FrameDirection.DOWNSTREAM:
            if isinstance(frame, AudioRawFrame):
                self._last = frame
            elif isinstance(frame, StartInterruptionFrame):
                self._last = None
            elif isinstance(frame, TTSStoppedFrame) and self._last is not None:
                await self._flush(self._last)
                self._last = None
        await self.push_frame(frame, direction)

    async def _flush(self, like: AudioRawFrame) -> None:
        rate = like.sample_rate
        total = round(self.tail_s * rate)
        step = max(1, round(self.frame_s * rate))
        dtype = like.audio.dtype if isinstance(like.audio, np.ndarray) else np.dtype(np.int16)
        rid = like.response_id if isinstance(like, TTSAudioRawFrame) else None
        for start in range(0, total, step):
            n = min(step, total - start)
            await self.push_frame(TTSAudioRawFrame(np.zeros(n, dtype), rate, 1, response_id=rid))


def bot_voice_changer(settings: Any, *, sample_rate: int) -> Pipeline:
    """``SpeechTail`` + the voice changer's DAG for the bot's voice (``settings``: a
    ``VoiceChangerSettings``; its ``vad`` is turned off). Raises ValueError for bad settings."""
    from apipeline.voice_changer import build_voice_changer

    settings = settings.replace(vad=False, vad_gate=False)
    settings.validate()
    vc = build_voice_changer(settings, sample_rate=sample_rate, channels=1)
    # what the converter holds back: its declared latency plus one block still being filled
    tail_s = vc.latency_seconds + vc.geometry.block / vc.geometry.sample_rate
    return Pipeline([SpeechTail(tail_s, name="bot_voice.tail"), vc], name="bot_voice")
