"""The core examples run and print what they promise."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "script, expected",
    [
        ("text_pipeline.py", "DOES IT JOIN THEM?"),
        (
            "parallel_pipeline.py",
            "SyncParallelPipeline: ['a(1)', 'slow(1)', 'c(1)', 'a(2)', 'slow(2)', 'c(2)']",
        ),
        ("interruption.py", "said: ['answer to the interruption']"),
    ],
)
def test_example_runs(script: str, expected: str) -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / script)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert expected in out.stdout


@pytest.mark.parametrize(
    "graph",
    sorted(p.name for p in (ROOT / "examples" / "graphs").iterdir() if p.suffix in (".yaml", ".json")),
)
def test_example_graphs_validate(graph: str) -> None:
    from apipeline.graph import build_pipeline, load_graph

    built = build_pipeline(load_graph(ROOT / "examples" / "graphs" / graph, check_formats=False))
    assert built.processors
