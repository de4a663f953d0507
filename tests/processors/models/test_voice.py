"""Voice stages: format refusals become ErrorFrames naming the problem."""

from __future__ import annotations

import numpy as np

from apipeline.frames import AudioRawFrame
from apipeline.models import MachineResources, ModelRegistry
from apipeline.models.services import ContentEncoderService
from apipeline.processors.models import ChunkStitchProcessor, ContentEncoderProcessor, VoiceChunkFrame
from apipeline.testing import run_pipeline
from tests.models.conftest import tiny_models  # noqa: F401  (session fixture)

MACHINE = MachineResources(cpu_count=2, available_memory=8 * 2**30, gpus=())


async def test_content_encoder_refuses_other_rates(tiny_models):  # noqa: F811
    async with ModelRegistry(machine=MACHINE) as reg:
        reg.register(ContentEncoderService(tiny_models["content_encoder"]))
        proc = ContentEncoderProcessor(reg)
        good = AudioRawFrame(np.zeros(3200, np.float32), 16000, 1)
        result = await run_pipeline(proc, [AudioRawFrame(np.zeros(4410, np.float32), 44100, 1), good])
        assert [type(f) for f in result.data] == [VoiceChunkFrame]
        assert result.data[0].content.shape == (9, 256)
        assert any("take 16 kHz mono; got 44100 Hz" in e.error for e in result.errors)


async def test_stitcher_needs_output_and_enough_context():
    stitch = ChunkStitchProcessor(crossfade_ms=40, search_ms=10)
    no_output = VoiceChunkFrame(audio=np.zeros(3200, np.float32), context=0, valid=3200)
    short_context = VoiceChunkFrame(
        audio=np.zeros(3200, np.float32),
        context=0,
        valid=3200,
        output=np.zeros(8820, np.float32),
        output_rate=44100,
    )
    result = await run_pipeline(stitch, [no_output, short_context])
    messages = " | ".join(e.error for e in result.errors)
    assert "has no output audio" in messages and "make the context >= crossfade + search" in messages
