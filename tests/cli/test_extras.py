"""A command that lacks an optional dependency says which extra to install, before any work."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from apipeline.errors import ApipelineError, MissingDependencyError
from apipeline.extras import EXTRAS, extra_for, install_hint, require_extra
from tests.cli.test_main import RESAMPLE, ROOT, tone

# a child interpreter in which some modules cannot be imported, as in an install without the extra
BLOCK = """
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition('.')[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, Block())
from apipeline.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def without(modules: set[str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCK.format(blocked=modules), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )


def test_require_extra_names_the_extra(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "silero_vad" else real(name, *a)
    )
    with pytest.raises(
        MissingDependencyError, match=r"needs silero-vad.*pip install 'apipeline\[voice\]'"
    ) as info:
        require_extra("voice", feature="apipeline voice-changer")
    assert info.value.extra == "voice" and isinstance(info.value, ImportError)
    require_extra("voice", modules=("soxr",))  # present: no error
    with pytest.raises(ApipelineError, match="unknown extra"):
        require_extra("nope")


def test_every_extra_module_maps_back_to_an_extra():
    for modules in EXTRAS.values():
        for module in modules:
            assert extra_for(module) is not None
    assert install_hint("soxr.core") == "pip install 'apipeline[audio]'"
    assert "--no-deps" in install_hint("torchfcpe")


def test_run_without_the_audio_extra_says_so_before_any_work(tmp_path):
    src, out = tmp_path / "in.wav", tmp_path / "out.wav"
    tone(src, 0.3)
    result = without({"soxr", "soundfile"}, "run", RESAMPLE, "-i", src, "-o", out)
    assert result.returncode == 2, result.stderr
    assert "pip install 'apipeline[audio]'" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()


def test_graph_png_without_graphviz_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no dot
    result = subprocess.run(
        [sys.executable, "-m", "apipeline.cli.main", "graph", "show", RESAMPLE, "-o", tmp_path / "g.png"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 1 and "graphviz" in result.stderr and not (tmp_path / "g.png").exists()


def test_version_in_one_place_and_no_unused_direct_dependencies():
    from importlib import metadata

    import tomllib

    import apipeline

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert metadata.version("apipeline") == apipeline.__version__
    declared = [d for deps in project["optional-dependencies"].values() for d in deps]
    assert not any(d.startswith("scipy") for d in declared + project["dependencies"])
    assert (ROOT / "LICENSE").read_text().startswith("BSD 3-Clause License")
    assert f"## {apipeline.__version__}" in (ROOT / "CHANGELOG.md").read_text()


def test_voice_changer_without_the_voice_extra_says_so_before_any_work(tmp_path):
    src, out = tmp_path / "in.wav", tmp_path / "out.wav"
    tone(src, 0.3)
    result = without({"silero_vad"}, "voice-changer", "-i", src, "-o", out)
    assert result.returncode == 2, result.stderr
    assert "apipeline voice-changer needs silero-vad" in result.stderr
    assert "pip install 'apipeline[voice]'" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    "f0, blocked, hint",
    [
        ("fcpe", "torch", "pip install 'apipeline[torch]'"),
        ("fcpe", "torchfcpe", "--no-deps torchfcpe"),
        ("crepe-tiny", "torchcrepe", "--no-deps torchcrepe"),
    ],
)
def test_neural_f0_without_torch_fails_before_the_settings_report(tmp_path, f0, blocked, hint):
    # it used to print a full settings report (and "ok") before the import failed
    src, out = tmp_path / "in.wav", tmp_path / "out.wav"
    tone(src, 0.3)
    result = without({blocked}, "voice-changer", "-i", src, "-o", out, "--f0", f0)
    assert result.returncode == 2, result.stderr
    assert f"--f0 {f0} needs" in result.stderr and hint in result.stderr
    assert result.stdout == "" and "Traceback" not in result.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    "blocked, args, needle",
    [
        ({"websockets"}, ["--port", "0"], "pip install 'apipeline[serve]'"),
        ({"grpc"}, ["--port", "0"], "needs grpcio"),
        ({"silero_vad"}, ["--port", "0"], "pip install 'apipeline[voice]'"),
    ],
)
def test_serve_without_its_extras_says_so_before_listening(blocked, args, needle):
    result = without(blocked, "serve", *args)
    assert result.returncode == 2, result.stderr
    assert needle in result.stderr and "Traceback" not in result.stderr
    assert "listening" not in (result.stdout + result.stderr).lower()


def test_serve_with_a_graph_does_not_need_the_voice_extra():
    # a served graph needs only what its nodes use: the voice check is for the default graph; a bad
    # option then is the first thing said (so no server starts here)
    result = without({"silero_vad"}, "serve", RESAMPLE, "--workers", "0")
    assert result.returncode == 2, result.stderr
    assert "--workers must be >= 1" in result.stderr and "silero" not in result.stderr
