"""The smaller command-line defects of the house issue, each pinned by a test."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from tests.cli.test_main import ROOT, cli

GRAPHS = ROOT / "examples" / "graphs"


@pytest.mark.parametrize("name", ["resample.yaml", "vad_branches.yaml"])
def test_graph_check_reports_the_latency_run_reports(name):
    out = cli("graph", "check", GRAPHS / name, "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    # speech.wav is 22.05 kHz: soxr HQ 22.05 -> 16 kHz holds back 40.1 ms, known before the run
    assert report["algorithmic_latency_ms"] == pytest.approx(40.1, abs=0.5)
    assert [x["processor"] for x in report["latency_path"]] == ["rs"]


def test_node_instead_of_nodes_gets_one_clear_problem_with_a_suggestion(tmp_path):
    for text in (
        "name: x\nnode:\n  - {id: src, type: audio.file_source}\nlinks: []\n",
        "node:\n  - {id: src, type: audio.file_source}\n",
    ):
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        out = cli("graph", "check", bad, "--json")
        assert out.returncode == 2
        problems = json.loads(out.stdout)["problems"]
        assert len(problems) == 1, problems
        assert "unknown key 'node' (did you mean 'nodes'" in problems[0]  # the closest first


def test_top_level_keys_are_the_shipped_schema_s():
    from apipeline.graph.loader import TOP_KEYS

    schema = json.loads((ROOT / "apipeline" / "graph" / "graph.schema.json").read_text())
    assert set(TOP_KEYS) == set(schema["properties"])


def test_modulespack2_files_are_still_recognised():
    out = cli("graph", "check", GRAPHS / "modulespack2_resample.json")
    assert out.returncode == 0, out.stderr


def header_command(graph: Path) -> list[str]:
    """The command a graph file's header shows (a comment line starting with 'apipeline')."""
    for line in graph.read_text().splitlines():
        text = line.lstrip("# ").strip()
        if line.startswith("#") and text.startswith("apipeline "):
            return shlex.split(text)[1:]
    raise AssertionError(f"{graph} shows no command")


def test_vad_branches_header_command_logs_the_vad_events(tmp_path):
    args = [
        a.replace("/tmp/vad.wav", str(tmp_path / "vad.wav"))
        for a in header_command(GRAPHS / "vad_branches.yaml")
    ]
    out = cli(*args)
    assert out.returncode == 0, out.stderr
    assert "UserStartedSpeakingFrame" in out.stderr and "UserStoppedSpeakingFrame" in out.stderr
    assert (tmp_path / "vad.wav").exists()


@pytest.mark.parametrize(
    "graph", sorted(p.name for p in GRAPHS.glob("*.yaml") if "voice_changer" not in p.name)
)
def test_every_example_graph_header_command_parses(graph):
    from apipeline.cli.main import build_parser

    build_parser().parse_args(header_command(GRAPHS / graph))
