"""The voice changer's warm-up runs a real pipeline (no test helpers) and fails when nothing comes out."""

import asyncio

import pytest

from apipeline.frames import AudioRawFrame, Frame
from apipeline.processors import FrameDirection, FrameProcessor
from apipeline.transports import VoiceChangerFactory


class DropAudio(FrameProcessor):
    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if not isinstance(frame, AudioRawFrame):
            await self.push_frame(frame, direction)


async def test_voice_changer_warm_up_converts_a_tone():
    await asyncio.wait_for(VoiceChangerFactory().warm_up(), 120)


async def test_warm_up_that_produces_nothing_fails(monkeypatch):
    factory = VoiceChangerFactory()
    monkeypatch.setattr(factory, "build", lambda spec: DropAudio())
    with pytest.raises(RuntimeError, match="produced nothing"):
        await asyncio.wait_for(factory.warm_up(), 60)
