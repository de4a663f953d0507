"""The smaller command-line defects of the house issue, each pinned by a test."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.test_main import PASSTHROUGH, ROOT, cli

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


def test_bench_passes_each_script_its_declared_arguments(tmp_path):
    # compare_frameworks.py needs --framework: it declares it, so a bare `apipeline bench` can succeed
    small = ["--frames", "50", "--paced-frames", "3", "--repeats", "1", "--warmup-frames", "5"]
    small += ["--chains", "1", "--no-parallel"]
    out = cli("bench", "compare_frameworks", "--json", *(f"--arg={a}" for a in small), timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert json.loads(out.stdout)[0]["status"] == "ok"
    folder = tmp_path / "benchmarks"
    folder.mkdir()
    (folder / "needs.py").write_text(
        "# apipeline-bench-args: --who 'the world'\n"
        "import sys\nassert sys.argv[1:3] == ['--who', 'the world']\n"
    )
    out = cli("bench", "--dir", folder)
    assert out.returncode == 0, out.stdout + out.stderr


def test_did_you_mean_for_unknown_types_options_and_commands():
    out = cli("list", "audio.resampel")
    assert (
        out.returncode == 2
        and "unknown type(s): audio.resampel (did you mean 'audio.resample'?)" in out.stderr
    )
    out = cli("list", "--jsn")
    assert out.returncode == 2 and "unrecognized arguments: --jsn (did you mean '--json'?)" in out.stderr
    out = cli("run", PASSTHROUGH, "--realtme")
    assert out.returncode == 2 and "(did you mean '--realtime'?)" in out.stderr
    out = cli("rn", "x")
    assert (
        out.returncode == 2 and "invalid choice: 'rn'" in out.stderr and "did you mean 'run'?" in out.stderr
    )
    out = cli("graph", "chek", "x")
    assert out.returncode == 2 and "did you mean 'check'?" in out.stderr


@pytest.mark.parametrize(
    "command", [[], ["run"], ["convert"], ["graph"], ["graph", "show"], ["list"], ["bench"]]
)
def test_help_has_no_raw_markup(command):
    out = cli(*command, "--help")
    assert out.returncode == 0
    assert "``" not in out.stdout and ":mod:" not in out.stdout and ":class:" not in out.stdout, out.stdout


def test_mypy_finds_apipeline_from_a_user_script_in_the_installed_venv(tmp_path):
    # scripts/setup.sh installs the checkout in editable "compat" mode: a path entry, not an import hook
    # that type checkers cannot follow (mypy then said 'Cannot find implementation ... "apipeline"')
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    probe = subprocess.run(
        [sys.executable, "-c", "import apipeline"], cwd=tmp_path, env=env, capture_output=True, check=False
    )
    if probe.returncode != 0:
        pytest.skip("apipeline is not installed in this interpreter (only on PYTHONPATH)")
    (tmp_path / "user.py").write_text(
        "from apipeline.frames import TextFrame\n\ntext: str = TextFrame('hi').text\n"
    )
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "user.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_verbose_is_accepted_before_and_after_the_subcommand(tmp_path):
    from apipeline.cli.main import build_parser

    parser = build_parser()
    g = str(GRAPHS / "vad_branches.yaml")
    for args, level in (
        (["-v", "graph", "check", g], 1),
        (["graph", "check", g, "-vv"], 2),
        (["run", g, "-v"], 1),
        (["graph", "check", g], 0),
    ):
        assert parser.parse_args(args).verbose == level, args
    out = cli("run", g, "-o", tmp_path / "o.wav", "--no-progress", "-v")
    assert out.returncode == 0 and "UserStartedSpeakingFrame" in out.stderr, out.stderr
