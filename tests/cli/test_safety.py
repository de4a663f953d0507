"""Data safety of the command line: inputs are never destroyed, outputs are checked before any work,
written beside and renamed into place, and a batch isolates its files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import soundfile as sf

from apipeline.frames import AudioRawFrame, Frame
from apipeline.processors.frame_processor import FrameDirection, FrameProcessor
from tests.cli.test_main import PASSTHROUGH, RESAMPLE, ROOT, cli, tone


def _partials(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if ".partial-" in p.name or ".probe-" in p.name]


def test_run_refuses_an_output_that_is_the_input_also_through_a_link(tmp_path):
    src = tmp_path / "x.wav"
    audio = tone(src, 0.5)
    link = tmp_path / "link.wav"
    link.symlink_to(src)
    for out in (src, link):
        result = cli("run", PASSTHROUGH, "-i", src, "-o", out)
        assert result.returncode == 2, result.stderr
        assert "is the input" in result.stderr and result.stderr.count("\n") <= 2, result.stderr
        np.testing.assert_array_equal(sf.read(src, dtype="int16")[0], audio[:, 0])
    assert _partials(tmp_path) == []


def test_run_checks_an_unwritable_output_before_work_and_says_it_once(tmp_path):
    src = tmp_path / "x.wav"
    tone(src, 2.0)
    for out in (tmp_path / "missing_dir" / "x.wav", Path("/proc/nope.wav")):
        result = cli("run", PASSTHROUGH, "-i", src, "-o", out, "--json")
        assert result.returncode == 2, result.stderr
        assert result.stdout == ""  # nothing ran: no summary
        assert result.stderr.count("error") == 1, result.stderr
    assert not (tmp_path / "missing_dir").exists()


class FailAfter(FrameProcessor):
    """Passes ``n`` audio frames on, then raises: a run that fails after its sink began writing."""

    def __init__(self, n: int = 10, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.n = n

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, AudioRawFrame):
            self.n -= 1
            if self.n < 0:
                raise RuntimeError("broken on purpose")
        await self.push_frame(frame, direction)


def test_a_failed_run_leaves_an_existing_output_untouched_and_no_temporary(tmp_path, capsys):
    from apipeline.cli.main import main
    from apipeline.graph.registry import default_registry, register_processor

    if "test.fail_after" not in default_registry():
        register_processor("test.fail_after", FailAfter)
    graph = tmp_path / "g.yaml"
    graph.write_text(
        "bind: {input: src.path, output: sink.path}\n"
        "nodes:\n  - {id: src, type: audio.file_source, params: {path: x.wav}}\n"
        "  - {id: fail, type: test.fail_after, params: {n: 10}}\n"
        "  - {id: sink, type: audio.file_sink, params: {path: y.wav, flush_every_s: 0.01}}\n"
    )
    src, out, fresh = tmp_path / "in.wav", tmp_path / "out.wav", tmp_path / "fresh.wav"
    tone(src, 2.0)
    out.write_bytes(b"precious")
    for target in (out, fresh):
        assert main(["run", str(graph), "-i", str(src), "-o", str(target), "--no-progress"]) == 1
        assert "broken on purpose" in capsys.readouterr().err
    assert out.read_bytes() == b"precious"
    assert not fresh.exists()  # a failed run leaves no output
    assert _partials(tmp_path) == []


def test_a_successful_run_replaces_the_output_atomically(tmp_path):
    src, out = tmp_path / "in.wav", tmp_path / "out.wav"
    audio = tone(src, 0.5)
    out.write_bytes(b"old")
    result = cli("run", PASSTHROUGH, "-i", src, "-o", out, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["outputs"]["sink"]["path"] == str(out)
    np.testing.assert_array_equal(sf.read(out, dtype="int16")[0], audio[:, 0])
    assert _partials(tmp_path) == []


def test_convert_into_its_own_input_folder_is_refused_and_inputs_survive(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    originals = {name: tone(d / name, 0.4) for name in ("a.wav", "b.wav")}
    result = cli("convert", PASSTHROUGH, d, d, "--jobs", "1")
    assert result.returncode == 2, result.stderr
    assert "is the input" in result.stderr
    for name, audio in originals.items():
        np.testing.assert_array_equal(sf.read(d / name, dtype="int16")[0], audio[:, 0])
    assert _partials(tmp_path) == []


def test_convert_isolates_a_bad_file_that_sorts_first(tmp_path):
    in_dir, out_dir = tmp_path / "in", tmp_path / "out"
    in_dir.mkdir()
    (in_dir / "0_broken.wav").write_bytes(b"RIFF not really")
    tone(in_dir / "a.wav", 0.3)
    tone(in_dir / "b.wav", 0.3, 22050)
    result = cli("convert", RESAMPLE, in_dir, out_dir, "--jobs", "1", timeout=120)
    assert result.returncode == 1, result.stderr
    assert "converted 2/3" in result.stdout and "1 failed" in result.stdout
    assert "FAILED" in result.stdout and "0_broken.wav" in result.stdout
    assert sf.info(out_dir / "a.wav").samplerate == 16000 and sf.info(out_dir / "b.wav").samplerate == 16000
    assert not (out_dir / "0_broken.wav").exists()
    assert _partials(tmp_path) == []


def test_convert_validates_the_graph_once_before_reading_an_input(tmp_path):
    in_dir = tmp_path / "in"
    in_dir.mkdir()
    (in_dir / "a.wav").write_bytes(b"RIFF not really")
    bad = tmp_path / "bad.yaml"
    text = (ROOT / "examples/graphs/passthrough.yaml").read_text()
    bad.write_text(text.replace("block_ms: 20", "block_ms: x"))
    result = cli("convert", bad, in_dir, tmp_path / "out", "--jobs", "1")
    assert result.returncode == 2
    assert "block_ms" in result.stderr and "not readable" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_convert_refuses_unwritable_output_folders_before_work(tmp_path):
    in_dir = tmp_path / "in"
    in_dir.mkdir()
    tone(in_dir / "a.wav", 0.3)
    for out_dir in (tmp_path / "missing" / "out", Path("/proc/nope")):
        result = cli("convert", PASSTHROUGH, in_dir, out_dir, "--jobs", "1")
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr and result.stderr.count("error") == 1, result.stderr
    assert not (tmp_path / "missing").exists()


def test_graph_show_and_schema_write_through_the_same_rule(tmp_path):
    result = cli("graph", "show", PASSTHROUGH, "-o", tmp_path / "missing" / "g.dot")
    assert result.returncode == 2 and "does not exist" in result.stderr
    result = cli("graph", "schema", "-o", "/proc/nope.json")
    assert result.returncode == 2 and "not writable" in result.stderr
    result = cli("graph", "show", PASSTHROUGH, "-o", PASSTHROUGH)
    assert result.returncode == 2 and "is the input" in result.stderr
    assert PASSTHROUGH.read_text().startswith("# The smallest")
    out = tmp_path / "g.dot"
    assert cli("graph", "show", PASSTHROUGH, "-o", out).returncode == 0
    assert out.read_text().startswith("digraph") and _partials(tmp_path) == []


def test_output_equal_input_refused_even_with_cwd_relative_paths(tmp_path):
    src = tmp_path / "x.wav"
    tone(src, 0.2)
    rel = os.path.relpath(src, ROOT)
    result = cli("run", PASSTHROUGH, "-i", src, "-o", rel)
    assert result.returncode == 2 and "is the input" in result.stderr


def test_convert_into_a_folder_inside_the_input_folder_skips_its_own_outputs(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    tone(d / "a.wav", 0.3)
    for _ in range(2):  # the second run must not take the first run's outputs as inputs
        result = cli("convert", PASSTHROUGH, d, d / "out", "--jobs", "1", "--json")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["files"] == 1
    assert sorted(p.relative_to(d).as_posix() for p in d.rglob("*.wav")) == ["a.wav", "out/a.wav"]
    assert _partials(tmp_path) == []
