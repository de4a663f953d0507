"""tools/make_tiny_models.py: the same seed gives byte-identical files, whatever process builds them."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[2] / "tools" / "make_tiny_models.py"


def _build(out: Path, hash_seed: str) -> subprocess.Popen[bytes]:
    # Different hash seeds: str hashing (set order) differs between the two builds, as between two runs.
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    return subprocess.Popen([sys.executable, str(TOOL), str(out)], env=env, stdout=subprocess.DEVNULL)


def _digests(out: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.iterdir())}


@pytest.mark.timeout(120)
def test_two_builds_are_byte_identical(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    a, b = tmp_path / "a", tmp_path / "b"
    builds = [_build(a, "1"), _build(b, "2")]
    assert [p.wait(timeout=100) for p in builds] == [0, 0]
    da, db = _digests(a), _digests(b)
    assert "nsf_hifigan.pt" in da
    assert da == db, [name for name in da if da[name] != db.get(name)]
