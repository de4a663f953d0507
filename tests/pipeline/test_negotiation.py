"""Format negotiation on pipelines built in code: errors, every problem, inserted converters, latency."""

from __future__ import annotations

import numpy as np
import pytest

from apipeline.audio.format import AudioFormat
from apipeline.errors import LinkError
from apipeline.frames import AudioRawFrame
from apipeline.graph.build import insert_converters
from apipeline.pipeline import ParallelPipeline, Pipeline, PipelineParams, PipelineTask
from apipeline.pipeline.negotiation import (
    check_links,
    find_link_problems,
    latency_path,
    pipeline_latency,
)
from apipeline.processors.audio import ChannelMixer, ResampleProcessor
from apipeline.testing import run_processor
from tests.graph.conftest import Makes48k, Needs16k, Pass


def test_mismatch_names_both_processors_and_formats():
    with pytest.raises(LinkError) as info:
        check_links(Pipeline([Makes48k(name="mic"), Pass(name="p"), Needs16k(name="asr")]))
    assert str(info.value) == (
        "cannot link mic -> asr: mic produces 48000 Hz, 2 ch, float32, asr accepts "
        "16000 Hz, 1 ch, float32 (mismatch in sample_rate, channels)"
    )


def test_task_checks_links_at_start():
    task = PipelineTask(Pipeline([Makes48k(), Needs16k()]), PipelineParams())
    with pytest.raises(LinkError):
        import asyncio

        asyncio.run(task.run())


def test_every_problem_is_found_and_known_fields_pass_through():
    root = Pipeline(
        [
            Makes48k(name="m"),
            ChannelMixer(1, name="mono"),
            Needs16k(name="a"),
            ParallelPipeline([Needs16k(name="b")], [Pass(name="c")]),
        ]
    )
    problems = find_link_problems(root)
    assert len(problems) == 2
    assert "m produces 48000 Hz, 2 ch" not in problems[0]
    assert problems[0].startswith("cannot link mono -> a: mono produces 48000 Hz, 1 ch, float32")
    assert problems[1].startswith("cannot link mono -> b")


async def test_inserted_converters_fix_a_pipeline_and_audio_flows():
    root = Pipeline([Needs16k(name="asr")])
    fixed, inserted = insert_converters(root, AudioFormat(48000, 2, "int16"))
    assert [p.name for p in inserted] == [
        "input->asr.channel_mixer",
        "input->asr.resample",
        "input->asr.sample_type",
    ]
    assert check_links(fixed, AudioFormat(48000, 2, "int16")) == AudioFormat(16000, 1, "float32")
    frames = [AudioRawFrame(np.zeros((960, 2), np.int16), 48000, 2) for _ in range(5)]
    out = await run_processor(fixed, frames)
    assert {(f.sample_rate, f.num_channels, f.audio.dtype.name) for f in out} == {(16000, 1, "float32")}
    assert 1590 <= sum(f.num_frames for f in out) <= 1600


def test_converters_inside_parallel_branches_rebuild_the_branch():
    root = Pipeline(
        [Makes48k(name="m"), ParallelPipeline([Needs16k(name="a")], [Pass(name="p")], name="par")]
    )
    fixed, inserted = insert_converters(root)
    par = fixed.processors()[1]
    assert isinstance(par, ParallelPipeline) and par.name == "par"
    assert [p.name for p in par.branches[0].processors()] == ["m->a.channel_mixer", "m->a.resample", "a"]
    assert len(inserted) == 2


def test_the_pipeline_core_makes_converters_with_the_factory_it_is_given():
    # negotiation cannot import the converters (they are audio processors): the caller passes a factory
    from apipeline.pipeline import negotiation

    made: list[tuple[str, dict, str]] = []

    def make(type_name, params, name):
        made.append((type_name, params, name))
        return Pass(name=name)

    root = Pipeline([Makes48k(name="m"), Needs16k(name="a")])
    _, inserted = negotiation.insert_converters(root, make=make)
    assert (
        [name for _, _, name in made] == [p.name for p in inserted] == ["m->a.channel_mixer", "m->a.resample"]
    )
    assert made[1][:2] == ("audio.resample", {"out_rate": 16000, "in_rate": 48000})


def test_latency_sums_the_slowest_path():
    rs = ResampleProcessor(16000, in_rate=48000, name="rs")
    root = Pipeline([Makes48k(name="m"), rs, ParallelPipeline([Needs16k(name="slow")], [Pass(name="fast")])])
    assert latency_path(root) == [("m", 0.005), ("rs", rs.latency), ("slow", 0.020)]
    assert pipeline_latency(root) == pytest.approx(0.025 + rs.latency)
