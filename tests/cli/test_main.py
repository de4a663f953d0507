"""The command line in a subprocess on small files: exit codes, messages, outputs, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[2]
PASSTHROUGH = ROOT / "examples" / "graphs" / "passthrough.yaml"
RESAMPLE = ROOT / "examples" / "graphs" / "resample.yaml"


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "apipeline.cli.main", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        check=False,
    )


def tone(path: Path, seconds: float, rate: int = 16000, channels: int = 1) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    audio = (0.3 * np.sin(2 * np.pi * 330 * t)[:, None].repeat(channels, axis=1) * 32767).astype(np.int16)
    sf.write(path, audio, rate, subtype="PCM_16")
    return audio


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["run"],
        ["convert"],
        ["graph"],
        ["graph", "show"],
        ["graph", "check"],
        ["graph", "schema"],
        ["list"],
        ["bench"],
    ],
)
def test_help_everywhere(command, capsys):
    from apipeline.cli.main import main

    with pytest.raises(SystemExit) as info:
        main([*command, "--help"])
    assert info.value.code == 0 and capsys.readouterr().out.startswith("usage: apipeline")


def test_module_entry_point_works():
    out = cli("--version")
    assert out.returncode == 0 and out.stdout.startswith("apipeline ")


def test_no_command_is_a_usage_error():
    out = cli()
    assert out.returncode == 2 and "usage: apipeline" in out.stderr


def test_run_a_file_with_json_summary(tmp_path):
    src, out = tmp_path / "in.wav", tmp_path / "out.wav"
    tone(src, 0.5, 44100, 2)
    result = cli("run", RESAMPLE, "--input", src, "--output", out, "--set", "rs.out_rate=22050", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["status"] == "ok" and summary["audio_s"] == pytest.approx(0.5, abs=0.01)
    assert summary["algorithmic_latency_ms"] >= 0 and summary["errors"] == []
    info = sf.info(out)
    assert (info.samplerate, info.channels, info.subtype) == (22050, 1, "PCM_16")
    assert abs(info.frames - 11025) <= 2


def test_bad_graph_exits_2_with_every_problem(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "nodes:\n  - {id: src, type: audio.file_sorce}\n  - {id: rs, type: audio.resample, "
        "params: {out_rate: fast}}\n"
    )
    for command in (["run", bad], ["graph", "check", bad]):
        out = cli(*command)
        assert out.returncode == 2
        assert (
            f"{bad}:2: nodes[0].type: unknown processor type 'audio.file_sorce' (did you mean "
            "'audio.file_source'" in out.stderr
        )
        assert (
            f"{bad}:3: nodes[1].params.out_rate: parameter 'out_rate' of 'audio.resample': expected integer, "
            "got string 'fast'" in out.stderr
        )
    out = cli("graph", "check", bad, "--json")
    assert out.returncode == 2 and len(json.loads(out.stdout)["problems"]) == 2


def test_missing_input_and_missing_graph(tmp_path):
    out = cli("run", PASSTHROUGH, "-i", tmp_path / "nope.wav", "-o", tmp_path / "o.wav")
    assert out.returncode == 2 and "nope.wav: no such file" in out.stderr
    out = cli("run", tmp_path / "nope.yaml")
    assert out.returncode == 2 and "no such graph file" in out.stderr


def test_graph_show_check_schema_and_list(tmp_path):
    out = cli("graph", "show", RESAMPLE, "-f", "mermaid")
    assert (
        out.returncode == 0
        and out.stdout.startswith("flowchart LR")
        and 'subgraph g0 ["convert"]' in out.stdout
    )
    out = cli("graph", "show", ROOT / "examples" / "graphs" / "modulespack2_resample.json", "-f", "yaml")
    assert out.returncode == 0 and "type: audio.resample" in out.stdout and "links:" in out.stdout
    out = cli("graph", "check", PASSTHROUGH, "--json")
    assert out.returncode == 0 and json.loads(out.stdout)["ok"] is True
    out = cli("graph", "schema")
    assert out.returncode == 0 and json.loads(out.stdout)["title"] == "apipeline graph"
    out = cli("list", "--json")
    types = {t["type"]: t for t in json.loads(out.stdout)["types"]}
    assert out.returncode == 0 and {"logger", "audio.resample", "audio.file_source"} <= set(types)
    assert [p["name"] for p in types["audio.resample"]["params"]] == ["out_rate", "in_rate", "quality"]
    out = cli("list", "audio.resample")
    assert out.returncode == 0 and "out_rate: int (required)" in out.stdout
    assert cli("list", "nope").returncode == 2


def test_convert_a_folder_with_a_failure(tmp_path):
    in_dir, out_dir = tmp_path / "in", tmp_path / "out"
    (in_dir / "sub").mkdir(parents=True)
    tone(in_dir / "a.wav", 0.3)
    tone(in_dir / "sub" / "b.wav", 0.3, 22050, 2)
    (in_dir / "broken.wav").write_bytes(b"RIFF not really")
    out = cli("convert", RESAMPLE, in_dir, out_dir, "--jobs", "2", "--json", timeout=120)
    assert out.returncode == 1, out.stderr
    summary = json.loads(out.stdout)
    assert (summary["files"], summary["converted"], summary["failed"]) == (3, 2, 1)
    assert summary["failures"][0]["input"].endswith("broken.wav")
    assert "not readable as audio" in summary["failures"][0]["error"]
    assert sf.info(out_dir / "sub" / "b.wav").samplerate == 16000
    assert sf.info(out_dir / "a.wav").channels == 1


def test_ctrl_c_keeps_a_valid_file_up_to_the_stop(tmp_path):
    src, out = tmp_path / "in.wav", tmp_path / "out.wav"
    audio = tone(src, 6.0)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "apipeline.cli.main",
            "run",
            str(PASSTHROUGH),
            "-i",
            str(src),
            "-o",
            str(out),
            "--realtime",
            "--set",
            "sink.flush_every_s=0.1",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while True:  # the run is under way and writing (beside the target, renamed at the end)
        partial = list(tmp_path.glob(".out.partial-*.wav"))
        if partial and partial[0].exists() and partial[0].stat().st_size > 4000:
            break
        assert not out.exists()
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stdout and f"output kept up to the stop in {out}" in stderr
    written, rate = sf.read(out, dtype="int16")
    assert rate == 16000 and 0 < len(written) < len(audio)
    np.testing.assert_array_equal(written, audio[: len(written), 0])
    assert list(tmp_path.glob(".*partial*")) == []


def test_ctrl_c_never_touches_an_existing_output(tmp_path):
    src, out = tmp_path / "in.wav", tmp_path / "out.wav"
    tone(src, 6.0)
    out.write_bytes(b"precious")
    args = ["run", str(PASSTHROUGH), "-i", str(src), "-o", str(out), "--realtime"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "apipeline.cli.main", *args, "--set", "sink.flush_every_s=0.1"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not list(tmp_path.glob(".out.partial-*.wav")):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert "existed and was left unchanged" in stderr
    assert out.read_bytes() == b"precious" and list(tmp_path.glob(".*partial*")) == []


def test_subcommand_modules_plug_in(monkeypatch, tmp_path, capsys):
    from apipeline.cli import main as main_module

    plugin = tmp_path / "apipeline_test_plugin.py"
    plugin.write_text(
        "def add_parser(sub):\n    p = sub.add_parser('hello')\n    p.add_argument('--who', default='x')\n"
        "def run(args):\n    print('hello', args.who)\n    return 3\n"
    )
    broken = tmp_path / "apipeline_test_broken.py"
    broken.write_text("raise RuntimeError('boom')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(
        main_module,
        "_modules",
        lambda: [
            ("apipeline_test_plugin", __import__("apipeline_test_plugin")),
            ("x.apipeline_test_broken", main_module._import("apipeline_test_broken")),
        ],
    )
    assert main_module.main(["hello", "--who", "you"]) == 3
    assert capsys.readouterr().out == "hello you\n"
    assert main_module.main(["apipeline-test-broken"]) == 1
    assert "RuntimeError: boom" in capsys.readouterr().err


def test_bench_runs_scripts_and_prints_a_table(tmp_path):
    bench = tmp_path / "benchmarks"
    bench.mkdir()
    (bench / "fast.py").write_text("import sys\nprint('rows', sys.argv[1:])\n")
    (bench / "failing.py").write_text("raise SystemExit(3)\n")
    out = cli("bench", "--dir", bench, "--list")
    assert out.returncode == 0 and out.stdout.split()[::2] == ["failing", "fast"]
    out = cli("bench", "--dir", bench, "--arg=--quick")
    assert out.returncode == 1
    assert "rows ['--quick']" in out.stdout
    table = out.stdout.split("benchmark", 1)[1]
    assert "fast" in table and "ok" in table and "exit 3" in table
    out = cli("bench", "--dir", bench, "fast", "--json")
    assert out.returncode == 0 and json.loads(out.stdout)[0]["status"] == "ok"
    assert cli("bench", "--dir", bench, "nope").returncode == 2
