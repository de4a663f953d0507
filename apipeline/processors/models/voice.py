"""The neural voice-conversion stages: content + F0 features, SVC model, vocoder, SOLA stitch.

Each stage is a thin shell: the numerics live in :mod:`apipeline.models.runners` (called through the
registry, so on the backend's worker threads) and :class:`~apipeline.audio.sola.SolaStitcher`. Windows
come from a :class:`~apipeline.processors.audio.reblock.ReblockProcessor` at 16 kHz; every stage adds
its result to the window's :class:`VoiceChunkFrame`, and the stitcher turns the model output of each
window into exactly one block of output audio, so the output keeps the input's clock.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np

from apipeline.audio.f0 import F0Track
from apipeline.audio.sola import SolaStitcher
from apipeline.errors import AudioFormatError
from apipeline.frames import AudioRawFrame, EndFrame, Frame
from apipeline.models import ModelRegistry
from apipeline.models.runners.features import frame_rms
from apipeline.processors.audio.convert import check_audio_frame
from apipeline.processors.audio.reblock import CONTEXT_KEY, VALID_KEY
from apipeline.processors.models.frames import VoiceChunkFrame
from apipeline.processors.models.service import ServiceProcessor

CONTENT_RATE = 16000


class ContentEncoderProcessor(ServiceProcessor):
    """16 kHz windows (``AudioRawFrame`` from a reblocker) -> :class:`VoiceChunkFrame` with content features.

    With ``f0_service`` the F0 is estimated at the same time (the two calls run concurrently on the
    backend), which is the ``content encoder || F0`` node of the voice-changer graph.
    """

    def __init__(
        self,
        registry: ModelRegistry,
        service: str = "content_encoder",
        *,
        f0_service: str | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(registry, [service] + ([f0_service] if f0_service else []), name=name)
        self.service, self.f0_service = service, f0_service
        self._index = 0

    def accepts(self, frame: Frame) -> bool:
        return isinstance(frame, AudioRawFrame)

    async def handle(self, frame: AudioRawFrame) -> Frame | None:
        audio = check_audio_frame(frame, self.name)
        if frame.sample_rate != CONTENT_RATE or frame.num_channels != 1:
            raise AudioFormatError(
                f"{self.name}: content encoders take 16 kHz mono; got {frame.sample_rate} Hz, "
                f"{frame.num_channels} channel(s) (resample and mix down upstream)"
            )
        x = np.asarray(audio, dtype=np.float32).reshape(-1)
        if audio.dtype == np.int16:
            x = x / 32768.0
        calls: list[Any] = [self.registry.run(self.service, "encode", {"audio": x})]
        if self.f0_service:
            calls.append(
                self.registry.run(self.f0_service, "estimate", {"audio": x, "sample_rate": CONTENT_RATE})
            )
        results = await asyncio.gather(*calls)
        chunk = VoiceChunkFrame(
            audio=x,
            sample_rate=CONTENT_RATE,
            context=int(frame.metadata.get(CONTEXT_KEY, 0)),
            valid=int(frame.metadata.get(VALID_KEY, x.shape[0])),
            index=self._index,
            content=results[0],
            pts=frame.pts,
        )
        self._index += 1
        if self.f0_service:
            chunk.f0, chunk.f0_hop = results[1]["f0"], float(results[1]["hop_seconds"])
        return chunk


class F0ServiceProcessor(ServiceProcessor):
    """Adds the F0 of each :class:`VoiceChunkFrame` (when the content stage did not)."""

    def __init__(self, registry: ModelRegistry, service: str = "f0_fcpe", *, name: str | None = None) -> None:
        super().__init__(registry, [service], name=name)
        self.service = service

    def accepts(self, frame: Frame) -> bool:
        return isinstance(frame, VoiceChunkFrame)

    async def handle(self, frame: VoiceChunkFrame) -> Frame | None:
        result = await self.registry.run(
            self.service, "estimate", {"audio": frame.audio, "sample_rate": frame.sample_rate}
        )
        frame.f0, frame.f0_hop = result["f0"], float(result["hop_seconds"])
        return frame


class SvcModelProcessor(ServiceProcessor):
    """Runs the SVC model on each window: F0 put on the model's frame grid (and shifted by ``pitch``
    semitones), output audio (or mel, for a vocoder stage) covering the window."""

    def __init__(
        self,
        registry: ModelRegistry,
        service: str = "svc",
        *,
        speaker: Any = 0,
        pitch: float = 0.0,
        seed: int = 0,
        name: str | None = None,
    ) -> None:
        super().__init__(registry, [service], name=name)
        self.service, self.speaker, self.pitch, self.seed = service, speaker, pitch, seed
        self.model: dict[str, Any] = {}

    def accepts(self, frame: Frame) -> bool:
        return isinstance(frame, VoiceChunkFrame)

    async def on_ready(self) -> None:
        # Asked through the service, not read off a local object, so a remote backend works the same.
        self.model = await self.registry.run(self.service, "describe", {})

    async def handle(self, frame: VoiceChunkFrame) -> Frame | None:
        if frame.content is None or frame.f0 is None:
            raise AudioFormatError(
                f"{self.name}: {frame.name} lacks content or F0 (put a content encoder and "
                f"an F0 stage upstream)"
            )
        rate, hop = self.model["sample_rate"], self.model["hop"]
        frames = -(-round(frame.duration * rate) // hop)
        f0 = np.asarray(frame.f0, dtype=np.float64)
        track = F0Track(f0, f0 > 0, frame.f0_hop).resample(hop / rate, frames)
        model_f0 = (track.f0_hz * 2.0 ** (self.pitch / 12.0)).astype(np.float32)
        params: dict[str, Any] = {
            "content": frame.content,
            "f0": model_f0,
            "speaker": self.speaker,
            "seed": self.seed + frame.index,
        }
        if self.model["takes_vol"]:
            params["vol"] = frame_rms(frame.audio, max(1, round(frame.sample_rate * hop / rate)), frames)
        out = await self.registry.run(self.service, "convert", params)
        frame.model_f0 = model_f0
        if self.model["outputs_mel"]:
            frame.mel = out
        else:
            frame.output, frame.output_rate = out, rate
        return frame


class VocoderServiceProcessor(ServiceProcessor):
    """Turns each window's mel (and model-grid F0) into audio; windows that already have audio pass."""

    def __init__(self, registry: ModelRegistry, service: str = "vocoder", *, name: str | None = None) -> None:
        super().__init__(registry, [service], name=name)
        self.service = service
        self.model: dict[str, Any] = {}

    def accepts(self, frame: Frame) -> bool:
        return isinstance(frame, VoiceChunkFrame) and frame.mel is not None

    async def on_ready(self) -> None:
        self.model = await self.registry.run(self.service, "describe", {})

    async def handle(self, frame: VoiceChunkFrame) -> Frame | None:
        frame.output = await self.registry.run(
            self.service, "synthesize", {"mel": frame.mel, "f0": frame.model_f0}
        )
        frame.output_rate = self.model["sample_rate"]
        return frame


class ChunkStitchProcessor(ServiceProcessor):
    """SOLA-stitches each window's model output into exactly one block of output audio.

    Per window the newest ``block + crossfade + search`` output samples (ending where the window's input
    ends) go to :class:`SolaStitcher`, which returns ``block`` samples; the last window's zero padding is
    cut, so the total output is the input duration at ``output_rate`` (delayed by the stitch latency).
    """

    def __init__(
        self, *, crossfade_ms: float = 40.0, search_ms: float = 10.0, name: str | None = None
    ) -> None:
        super().__init__(None, [], name=name)
        self.crossfade_ms, self.search_ms = crossfade_ms, search_ms
        self._sola: SolaStitcher | None = None
        self._rate: int | None = None

    def accepts(self, frame: Frame) -> bool:
        return isinstance(frame, VoiceChunkFrame)

    async def handle(self, frame: VoiceChunkFrame) -> Frame | None:
        if frame.output is None or frame.output_rate is None:
            raise AudioFormatError(
                f"{self.name}: {frame.name} has no output audio (no SVC/vocoder stage ran)"
            )
        rate = frame.output_rate
        block = frame.block * rate // frame.sample_rate
        if block * frame.sample_rate != frame.block * rate:
            raise AudioFormatError(
                f"{self.name}: a block of {frame.block} samples at {frame.sample_rate} Hz is not a "
                f"whole number of samples at {rate} Hz; use a block that is a multiple of 10 ms"
            )
        if self._sola is None or self._rate != rate:
            crossfade = min(block, round(self.crossfade_ms * rate / 1000))
            self._sola = SolaStitcher(block, crossfade, round(self.search_ms * rate / 1000))
            self._rate = rate
        sola = self._sola
        end = frame.audio.shape[0] * rate // frame.sample_rate
        start = end - sola.input_size
        if start < 0 or end > frame.output.shape[0]:
            raise AudioFormatError(
                f"{self.name}: window output of {frame.output.shape[0]} samples cannot give "
                f"{sola.input_size} ending at {end}: make the context >= crossfade + search"
            )
        out = sola.process(np.ascontiguousarray(frame.output[start:end], dtype=np.float32))
        keep = frame.valid * rate // frame.sample_rate
        return AudioRawFrame(out[:keep].astype(np.float32), rate, 1, pts=frame.pts)

    async def stop(self, frame: EndFrame) -> None:
        await super().stop(frame)
        self._sola = None
