from __future__ import annotations

import asyncio
import os
import signal

from apipeline.frames import TextFrame
from apipeline.pipeline import Pipeline, PipelineRunner, PipelineTask
from tests.helpers import Gate


async def test_runner_turns_sigint_into_clean_cancel(no_leftover_tasks):
    gate = Gate()
    task = PipelineTask(Pipeline([gate]))
    await task.queue_frame(TextFrame("stuck"))
    runner = PipelineRunner(handle_sigint=True)
    run = asyncio.create_task(runner.run(task))
    await gate.entered.wait()
    os.kill(os.getpid(), signal.SIGINT)
    await asyncio.wait_for(run, 5)
    assert runner.signalled and task.has_finished()
    no_leftover_tasks()


async def test_runner_runs_to_completion():
    task = PipelineTask(Pipeline([Gate()]))
    await task.stop_when_done()
    await PipelineRunner(handle_sigint=False).run(task)
    assert task.has_finished()
