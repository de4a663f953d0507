"""The whole voice changer as one graph node (``voice_changer``), built from plain settings.

:class:`VoiceChangerNode` is a :class:`~apipeline.pipeline.Pipeline` holding the DAG of
:func:`~apipeline.apps.voice_changer.build_voice_changer` -- or, with ``ray_address``, of
:func:`~apipeline.apps.voice_changer_remote.build_remote_voice_changer` -- and an
:class:`~apipeline.apps.voice_changer_nodes.OutputAligner`, so a file in gives a file out with the same
length, aligned sample for sample. Its parameters are :class:`VoiceChangerSettings` fields (the
processing rate is ``processing_rate``) plus the stream's ``sample_rate`` and ``channels``.
"""

from __future__ import annotations

from typing import Any, Literal

from apipeline.apps.voice_changer import VoiceChangerPipeline, VoiceChangerSettings, build_voice_changer
from apipeline.apps.voice_changer_nodes import OutputAligner
from apipeline.audio.format import AudioFormat
from apipeline.frames import AudioRawFrame, EndFrame, Frame, StartFrame
from apipeline.pipeline import Pipeline
from apipeline.processors.frame_processor import FrameDirection


class VoiceChangerNode(Pipeline):
    """The real-time voice changer (F0 + WORLD analysis, conversion, synthesis, SOLA) as one node.

    Args:
        sample_rate: the stream's rate (16..48 kHz, or any with ``processing_rate``).
        channels: the stream's channels (converted as mono, duplicated on output).
        pitch: shift in semitones.
        formant: envelope warp ratio (>1 = smaller vocal tract).
        f0: estimator: dio, harvest, fcpe, crepe (crepe-tiny, crepe-full).
        block_ms, crossfade_ms, search_ms, context_ms, lookahead_ms, warmup_ms, frame_ms: the block
            geometry (latency = block + crossfade + search + look-ahead).
        sola: stitch blocks with SOLA (off: plain concatenation, for comparison).
        fade: crossfade shape.
        phase_lock: lock each window's pulse train to the previous one's (WORLD; free-running with
            ``ray_address``, see :mod:`apipeline.apps.voice_changer_remote`).
        f0_pad_ms: mirrored tail for each window's F0 estimate (0: off).
        processing_rate: rate the conversion runs at (null: the stream's own).
        resample_quality: soxr quality of the resamplers (when ``processing_rate`` is set).
        silence_db: level gate (dBFS; null: off).
        vad: run Silero VAD (speaking frames in band).
        vad_gate: render non-speech blocks silent.
        rms_mix_rate: loudness matching, 1 = off.
        target_f0_mean: map F0 to this mean (Hz); null: off.
        target_f0_range: target log-F0 spread (semitones).
        vocoder: world or griffin-lim.
        f0_options: estimator keyword arguments.
        realtime: the source is paced in real time (underruns are counted).
        align: drop the stitch delay and cut the output at the input's length.
        ray_address: run the conversion on a model backend: local (a Ray instance started here),
            auto, host:port or ray://host:port; null: the in-process DAG. A graph's ``backend: ray``
            sets it on nodes that leave it unset.
        degrade: with a backend, what a block whose call failed becomes: pass (dry) or silence.
    """

    def __init__(
        self,
        *,
        sample_rate: int,
        channels: int = 1,
        pitch: float = 0.0,
        formant: float = 1.0,
        f0: str = "dio",
        block_ms: float = 35.0,
        crossfade_ms: float = 14.5,
        search_ms: float = 0.5,
        context_ms: float = 110.0,
        lookahead_ms: float = 10.0,
        warmup_ms: float = 20.0,
        frame_ms: float = 5.0,
        sola: bool = True,
        fade: str = "sin2",
        phase_lock: bool = True,
        f0_pad_ms: float = 50.0,
        processing_rate: int | None = None,
        resample_quality: str = "LQ",
        silence_db: float | None = -60.0,
        vad: bool = True,
        vad_gate: bool = False,
        rms_mix_rate: float = 1.0,
        target_f0_mean: float | None = None,
        target_f0_range: float | None = None,
        vocoder: str = "world",
        f0_options: dict[str, Any] | None = None,
        realtime: bool = False,
        align: bool = True,
        ray_address: str | None = None,
        degrade: Literal["pass", "silence"] = "pass",
        name: str | None = None,
    ) -> None:
        settings = VoiceChangerSettings(
            pitch=pitch,
            formant=formant,
            f0=f0,
            block_ms=block_ms,
            crossfade_ms=crossfade_ms,
            search_ms=search_ms,
            context_ms=context_ms,
            lookahead_ms=lookahead_ms,
            warmup_ms=warmup_ms,
            frame_ms=frame_ms,
            sola=sola,
            fade=fade,
            phase_lock=phase_lock,
            f0_pad_ms=f0_pad_ms,
            sample_rate=processing_rate,
            resample_quality=resample_quality,
            silence_db=silence_db,
            vad=vad,
            vad_gate=vad_gate,
            rms_mix_rate=rms_mix_rate,
            target_f0_mean=target_f0_mean,
            target_f0_range=target_f0_range,
            vocoder=vocoder,
            f0_options=dict(f0_options or {}),
        )
        vc: VoiceChangerPipeline
        if ray_address is None:
            vc = build_voice_changer(settings, sample_rate=sample_rate, channels=channels, realtime=realtime)
        else:
            from apipeline.apps.voice_changer_remote import build_remote_voice_changer

            vc = build_remote_voice_changer(
                settings,
                sample_rate=sample_rate,
                channels=channels,
                realtime=realtime,
                backend=ray_address,
                degrade=degrade,
            )
        self.aligner = OutputAligner(
            vc.align_samples if align else 0, name=f"{name or 'voice_changer'}.align"
        )
        super().__init__([vc, self.aligner], name=name or "voice_changer")
        self.voice_changer = vc
        self.ray_address = ray_address
        self.input_format = AudioFormat(sample_rate, channels)
        self.output_format = AudioFormat(sample_rate, channels, "float32")
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
