"""``PipelineTask.event_handler`` is typed: mypy keeps a decorated handler's signature and refuses
something that is not a handler (it was ``-> Any``, which let both through unseen)."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

USER_SCRIPT = textwrap.dedent(
    """
    from apipeline.frames import ErrorFrame
    from apipeline.pipeline.task import PipelineTask


    def attach(task: PipelineTask) -> None:
        @task.event_handler("on_pipeline_error")
        async def on_error(t: PipelineTask, frame: ErrorFrame) -> None:
            pass

        reveal_type(on_error)
        task.event_handler("on_pipeline_started")(lambda t, arg: None)
        task.event_handler("on_pipeline_finished")(42)
    """
)


def test_mypy_sees_the_decorated_handler_and_refuses_a_non_handler(tmp_path):
    (tmp_path / "user.py").write_text(USER_SCRIPT)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "--cache-dir", os.devnull, "user.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report = out.stdout + out.stderr
    revealed = [line for line in report.splitlines() if "Revealed type" in line]
    assert len(revealed) == 1, report
    assert "PipelineTask" in revealed[0] and "ErrorFrame" in revealed[0], report
    errors = [line for line in report.splitlines() if ": error:" in line]
    assert len(errors) == 1 and "user.py:13:" in errors[0], report
