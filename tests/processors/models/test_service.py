"""Service processors: calls per frame, and a refused start when a service fails its self-test."""

from __future__ import annotations

import numpy as np
import pytest

from apipeline.errors import ServiceStateError
from apipeline.frames import AudioRawFrame, TextFrame
from apipeline.models import MachineResources, ModelRegistry, ServiceState
from apipeline.processors import FrameDirection
from apipeline.processors.models import ContentEncoderProcessor, ModelServiceProcessor
from apipeline.testing import run_pipeline, run_processor
from tests.models._services import Worker

MACHINE = MachineResources(cpu_count=2, available_memory=8 * 2**30, gpus=())


async def test_model_service_processor_calls_per_frame_and_passes_others():
    async with ModelRegistry(machine=MACHINE) as reg:
        reg.register(Worker())
        proc = ModelServiceProcessor(
            reg,
            "worker",
            "work",
            frame_types=(TextFrame,),
            params_from=lambda f: {"x": int(f.text)},
            emit=lambda f, r: TextFrame(str(r)),
        )
        out = await run_processor(
            proc, [TextFrame("2"), AudioRawFrame(np.zeros(4, np.float32), 16000, 1), TextFrame("5")]
        )
        assert [getattr(f, "text", "audio") for f in out] == ["4", "audio", "10"]


async def test_failed_self_test_refuses_start_with_a_fatal_error():
    async with ModelRegistry(machine=MACHINE) as reg:
        reg.register(Worker(test_ok=False))
        proc = ModelServiceProcessor(
            reg,
            "worker",
            "work",
            frame_types=(TextFrame,),
            params_from=lambda f: {"x": 1},
            emit=lambda f, r: TextFrame(str(r)),
        )
        result = await run_pipeline(proc, [TextFrame("1")])
        assert result.data == [] and not proc.started
        (error,) = result.errors
        assert "setup() failed: SelfTestError" in error.error and "failed its self-test" in error.error
        assert reg.state("worker") is ServiceState.UNUSABLE


async def test_without_a_task_the_start_frame_is_refused_with_a_fatal_error():
    from apipeline.frames import StartFrame
    from apipeline.testing import RecordingSink

    async with ModelRegistry(machine=MACHINE) as reg:
        reg.register(Worker(test_ok=False))
        upstream = RecordingSink()
        proc = ModelServiceProcessor(
            reg,
            "worker",
            "work",
            frame_types=(TextFrame,),
            params_from=lambda f: {"x": 1},
            emit=lambda f, r: TextFrame(str(r)),
        )
        downstream = RecordingSink()
        upstream.link(proc).link(downstream)
        await downstream.receive(StartFrame(), FrameDirection.DOWNSTREAM)
        await proc.receive(StartFrame(), FrameDirection.DOWNSTREAM)
        await proc.receive(TextFrame("1"), FrameDirection.DOWNSTREAM)
        assert len(downstream.downstream) == 1  # only the StartFrame sent to it directly
        (error,) = upstream.upstream
        assert error.fatal and "start refused: SelfTestError" in error.error


async def test_construction_refusals():
    async with ModelRegistry(machine=MACHINE) as reg:
        reg.register(Worker())
        with pytest.raises(ServiceStateError, match="no service 'ghost'"):
            ContentEncoderProcessor(reg, "ghost")
        with pytest.raises(ValueError, match="has no method 'nope'"):
            ModelServiceProcessor(
                reg, "worker", "nope", frame_types=(TextFrame,), params_from=dict, emit=print
            )
