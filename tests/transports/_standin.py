"""A stand-in pipeline for transport tests: exact, so ordering and mixing show up sample for sample."""

from __future__ import annotations

import asyncio

import numpy as np

from apipeline.frames import AudioRawFrame, Frame
from apipeline.params import Param, ParamSchema
from apipeline.pipeline.pipeline import Pipeline
from apipeline.processors import AsyncFrameProcessor, FrameDirection, FrameProcessor
from apipeline.transports import CallableFactory, SessionSpec


class Gain(FrameProcessor):
    """Multiplies float32 audio by ``gain`` (a setting: ``UpdateSettingsFrame({"gain": 2})``)."""

    settings_schema = ParamSchema([Param("gain", float, 1.0, minimum=0, maximum=100, live=True)])

    def __init__(self, gain: float = 1.0, *, sample_rate: int | None = None, name: str | None = None) -> None:
        super().__init__(name=name)
        self.gain = gain
        self.sample_rate = sample_rate

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, AudioRawFrame) and direction is FrameDirection.DOWNSTREAM:
            if self.sample_rate is not None and frame.sample_rate != self.sample_rate:
                raise ValueError(f"expected {self.sample_rate} Hz, got {frame.sample_rate}")
            audio = np.asarray(frame.audio, dtype=np.float32) * np.float32(self.gain)
            await self.push_frame(AudioRawFrame(audio, frame.sample_rate, frame.num_channels))
            return
        await self.push_frame(frame, direction)


class Hold(AsyncFrameProcessor):
    """Waits on ``gate`` before each audio frame (an async stage whose pace a test controls)."""

    def __init__(self, gate: asyncio.Event, **kw) -> None:
        super().__init__(**kw)
        self.gate = gate

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, AudioRawFrame):
            await self.gate.wait()
        await self.push_frame(frame, direction)


def gain_factory(*, needs_audio_format: bool = True) -> CallableFactory:
    def build(spec: SessionSpec) -> Pipeline:
        if spec.sample_rate is not None and spec.sample_rate < 8000:
            raise ValueError(f"sample rate {spec.sample_rate} Hz is below 8000 Hz")
        gain = spec.settings.get("gain", 1.0)
        return Pipeline([Gain(gain, sample_rate=spec.sample_rate), AsyncPass()])

    def check(settings: dict) -> dict:
        unknown = set(settings) - {"gain"}
        if unknown:
            raise ValueError(f"unknown settings {sorted(unknown)}")
        return settings

    return CallableFactory(
        build, needs_audio_format=needs_audio_format, check=check, schema=Gain.settings_schema
    )


class AsyncPass(AsyncFrameProcessor):
    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)


def chunks(signal: np.ndarray, size: int, rate: int = 16000) -> list[AudioRawFrame]:
    return [AudioRawFrame(signal[i : i + size], sample_rate=rate) for i in range(0, len(signal), size)]
