"""The voice changer's conversion on Ray actors: the same samples as in-process, and the CLI path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from apipeline.models import LocalBackend
from apipeline.models.ray_backend import RayBackend
from apipeline.voice_changer.remote import RemotePlacement
from apipeline.voice_changer.run import convert_array, run_file
from apipeline.voice_changer.settings import VoiceChangerSettings

pytestmark = [pytest.mark.ray, pytest.mark.timeout(120)]

SPEECH = Path(__file__).resolve().parents[3] / "examples" / "data" / "speech.wav"


def clip(seconds: float = 0.6) -> tuple[np.ndarray, int]:
    x, rate = sf.read(SPEECH, dtype="float32")
    return x[int(0.5 * rate) : int((0.5 + seconds) * rate)], rate


async def test_same_output_on_local_and_ray_backends(ray_session: Any) -> None:
    x, rate = clip()
    settings = VoiceChangerSettings(pitch=4.0, formant=1.1)
    local = await convert_array(x, rate, settings, backend=RemotePlacement(LocalBackend(2), deadline=10.0))
    ray_backend = RayBackend(num_cpus=0.5, call_timeout=10.0)
    remote = await convert_array(x, rate, settings, backend=RemotePlacement(ray_backend, deadline=10.0))
    assert remote.remote is not None and local.remote is not None
    assert remote.remote["backend"] == "RayBackend" and remote.remote["degraded"] == 0
    assert remote.remote["processed"] == local.remote["processed"] > 0
    np.testing.assert_array_equal(remote.output, local.output)
    assert ray_backend._closed and ray_backend._ray is None  # the run closed what it opened
    assert ray_session.is_initialized()  # and left the session's Ray alone


def test_cli_ray_address_runs_on_ray(
    ray_session: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from apipeline.cli.voice_changer import main

    x, rate = clip(0.4)
    src, out, ref = tmp_path / "in.wav", tmp_path / "out.wav", tmp_path / "ref.wav"
    sf.write(src, x, rate)
    assert main(["-i", str(src), "-o", str(out), "--pitch", "4", "--ray-address", "local"]) == 0
    text = capsys.readouterr().out
    assert "conversion on RayBackend" in text and " 0 degraded" in text
    # what the remote placement renders, on the in-process backend: the same stateless service calls
    # (the local DAG analyses incrementally, so it is the same conversion but not the same samples)
    run_file(
        src, ref, VoiceChangerSettings(pitch=4.0), backend=RemotePlacement(LocalBackend(2), deadline=10.0)
    )
    np.testing.assert_array_equal(sf.read(out)[0], sf.read(ref)[0])
