"""The voice changer from graph files: stage by stage and as one node; load, check, latency, run, options."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from apipeline.cli.run import run_built
from apipeline.errors import GraphError
from apipeline.graph.build import build_pipeline
from apipeline.graph.loader import dump_graph, load_graph
from apipeline.graph.registry import default_registry
from apipeline.voice_changer.run import run_file
from apipeline.voice_changer.settings import VoiceChangerSettings

ROOT = Path(__file__).resolve().parents[2]
GRAPHS = ROOT / "examples" / "graphs"
SPEECH = ROOT / "examples" / "data" / "speech.wav"
EXAMPLES = ("voice_changer.yaml", "voice_changer_simple.yaml")


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """0.6 s of the bundled speech (22.05 kHz mono)."""
    x, rate = sf.read(SPEECH, dtype="float32")
    path = tmp_path_factory.mktemp("vc") / "clip.wav"
    sf.write(path, x[int(0.5 * rate) : int(1.1 * rate)], rate, subtype="PCM_16")
    return path


def test_every_stage_is_writable_in_a_file() -> None:
    registry = default_registry()
    for name in (
        "audio.f0",
        "voice_changer.f0",
        "audio.world_analysis",
        "audio.svc",
        "audio.vocoder",
        "audio.sola",
        "voice_changer",
        "voice_changer.pad",
        "voice_changer.reblock",
        "voice_changer.gate",
        "voice_changer.align",
    ):
        assert registry.get(name).usable is None, name
    params = registry.get("audio.world_analysis").params
    assert {"sample_rate", "block_ms", "context_ms", "crossfade_ms", "search_ms"} <= set(params)


@pytest.mark.parametrize("example", EXAMPLES)
def test_examples_load_check_and_declare_60_ms(example: str) -> None:
    graph = load_graph(GRAPHS / example)  # formats checked too
    built = build_pipeline(graph)
    assert built.latency == pytest.approx(0.060, abs=0.001)  # 35 + 14.5 + 0.5 + 10 ms on the hop grid
    assert [name for name, _ in built.latency_path()][-3:] == ["reblock", "vocoder", "sola"]
    if example == "voice_changer.yaml":  # phase lock: SOLA answers upstream, right after the vocoder
        vocoder, sola = built.processors["vocoder"], built.processors["sola"]
        assert vocoder.phase_lock and sola.report_offset and vocoder.next is sola  # type: ignore[attr-defined]
    assert load_graph(text=dump_graph(graph)) == graph


@pytest.mark.parametrize("example", EXAMPLES)
def test_examples_run_and_match_the_voice_changer_command(example: str, clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.wav"
    graph = load_graph(GRAPHS / example, settings={"source.path": str(clip), "sink.path": str(out)})
    summary = asyncio.run(
        run_built(build_pipeline(graph), progress=False, realtime=False, handle_sigint=False)
    )
    assert summary["status"] == "ok", summary["errors"]
    y, rate = sf.read(out, dtype="float32")
    x, in_rate = sf.read(clip, dtype="float32")
    assert (rate, y.shape) == (in_rate, x.shape)  # aligned and cut at the input's length
    # the same settings through apipeline.voice_changer give the same samples (both written as PCM16)
    ref = tmp_path / "ref.wav"
    run_file(clip, ref, VoiceChangerSettings(pitch=4.0, formant=1.1))
    np.testing.assert_array_equal(y, sf.read(ref, dtype="float32")[0])
    assert np.sqrt(np.mean(y**2)) > 0.01


def test_mismatched_geometry_is_a_format_error() -> None:
    with pytest.raises(GraphError, match=r"cannot link .*22050 Hz.*16000 Hz"):
        load_graph(GRAPHS / "voice_changer.yaml", overrides=["sola.sample_rate=16000"])


def test_backend_option_places_model_nodes_on_ray_without_starting_it() -> None:
    from apipeline.models.ray_backend import RayBackend

    text = (GRAPHS / "voice_changer_simple.yaml").read_text() + "backend: ray\nray_address: auto\n"
    graph = load_graph(text=text)
    assert (graph.backend, graph.ray_address) == ("ray", "auto")
    assert "ray_address: auto" in dump_graph(graph)
    node = build_pipeline(graph).processors["vc"]
    backend = node.voice_changer.registry.backend  # type: ignore[attr-defined]
    assert isinstance(backend, RayBackend) and backend.address == "auto" and backend._ray is None
    local = build_pipeline(load_graph(GRAPHS / "voice_changer_simple.yaml")).processors["vc"]
    assert not hasattr(local.voice_changer, "registry")  # type: ignore[attr-defined]


def test_bad_backend_options_are_reported_with_their_place() -> None:
    text = (GRAPHS / "voice_changer_simple.yaml").read_text()
    with pytest.raises(GraphError) as err:
        load_graph(text=text + "backend: spark\n")
    assert "backend: expected one of local, ray, got 'spark'" in str(err.value)
    with pytest.raises(GraphError, match="ray_address needs 'backend: ray'"):
        load_graph(text=text + "ray_address: auto\n")


def test_a_graphs_ray_options_host_its_model_nodes_as_asked_without_starting_ray() -> None:
    from apipeline.models.serve_backend import ServeBackend

    ray = "ray:\n  serve: true\n  min_replicas: 1\n  max_replicas: 3\n  num_cpus: 0.5\n"
    ray += "  max_ongoing_requests: 4\n"
    text = (GRAPHS / "voice_changer_simple.yaml").read_text() + "backend: ray\nray_address: auto\n" + ray
    graph = load_graph(text=text)
    assert graph.ray == {
        "serve": True, "min_replicas": 1, "max_replicas": 3, "num_cpus": 0.5, "max_ongoing_requests": 4,
    }  # fmt: skip
    assert load_graph(text=dump_graph(graph)).ray == graph.ray  # kept through a save
    node = build_pipeline(graph).processors["vc"]
    backend = node.voice_changer.registry.backend  # type: ignore[attr-defined]
    assert isinstance(backend, ServeBackend) and backend._ray is None
    assert (backend.address, backend.min_replicas, backend.max_replicas) == ("auto", 1, 3)
    assert (backend.num_cpus, backend.max_concurrency) == (0.5, 4)


@pytest.mark.parametrize(
    ("ray", "message"),
    [
        (
            "  serve: true\n  min_replicas: 3\n  max_replicas: 1\n",
            r"min_replicas \(3\) is above max_replicas \(1\)",
        ),
        ("  num_cpus: 0\n", "num_cpus .* must be > 0, got 0"),
        ("  num_cpus: -2\n", "num_cpus .* must be > 0, got -2"),
        ("  replica: 2\n", "unknown Ray option 'replica' \\(did you mean 'replicas'\\?\\)"),
        ("  min_replicas: 1\n  max_replicas: 2\n", "need 'serve: true'"),
    ],
)
def test_bad_ray_options_in_a_graph_are_refused_at_load_with_the_reason(ray: str, message: str) -> None:
    text = (GRAPHS / "voice_changer_simple.yaml").read_text() + "backend: ray\nray:\n" + ray
    with pytest.raises(GraphError, match=message):
        load_graph(text=text)
    with pytest.raises(GraphError, match="ray options need 'backend: ray'"):
        load_graph(text=(GRAPHS / "voice_changer_simple.yaml").read_text() + "ray:\n  replicas: 2\n")
