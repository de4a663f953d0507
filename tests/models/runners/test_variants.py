"""Export variants users have: RVC with a ``vol`` input, half-precision (float16) so-vits-svc and RVC."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from apipeline.errors import ModelSignatureError
from apipeline.models.runners import RvcModel, SoVitsSvc


@pytest.fixture(scope="session")
def variants(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """tools/make_variant_models.py's models, built once per session (torch CPU, ~2 s)."""
    pytest.importorskip("torch")
    tool = Path(__file__).resolve().parents[3] / "tools" / "make_variant_models.py"
    spec = importlib.util.spec_from_file_location("make_variant_models", tool)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    paths: dict[str, Path] = module.build_variants(tmp_path_factory.mktemp("variants"), seed=0)
    return paths


def _content(frames: int) -> np.ndarray:
    return np.random.default_rng(3).standard_normal((frames, 256)).astype(np.float32)


def _f0(frames: int) -> np.ndarray:
    f0 = np.full(frames, 220.0, np.float32)
    f0[: frames // 4] = 0.0
    return f0


def test_rvc_with_vol_takes_it_and_the_output_follows_it(variants):
    model = RvcModel(variants["rvc_vol"])
    assert model.takes_vol
    c, f0 = _content(25), _f0(50)
    quiet = model.infer(c, f0, vol=np.zeros(50))
    loud = model.infer(c, f0, vol=np.ones(50))
    assert quiet.shape == loud.shape == (50 * 400,)
    assert np.abs(loud).sum() > 1.5 * np.abs(quiet).sum()
    with pytest.raises(ValueError, match="takes a 'vol' input"):
        model.infer(c, f0)
    with pytest.raises(ValueError, match=r"vol must have shape \(50,\)"):
        model.infer(c, f0, vol=np.ones(49))
    with pytest.raises(ValueError, match=r"vol must have shape \(50,\)"):
        model.infer(c, f0, vol=np.full(50, np.nan))


def test_rvc_without_vol_refuses_one(tiny_models):
    model = RvcModel(tiny_models["rvc"])
    assert not model.takes_vol
    with pytest.raises(ValueError, match="has no 'vol' input"):
        model.infer(_content(10), _f0(20), vol=np.ones(20))


@pytest.mark.parametrize(("name", "runner"), [("rvc_fp16", RvcModel), ("sovits_fp16", SoVitsSvc)])
def test_half_precision_exports_run_and_give_float32(variants, name, runner):
    model = runner(variants[name])
    assert model.session.inputs["f0" if runner is SoVitsSvc else "pitchf"].dtype == "float16"
    c, f0 = _content(12), _f0(24)
    out = model.infer(c, f0, 1)
    assert out.dtype == np.float32 and out.shape == (24 * model.hop,) and np.isfinite(out).all()
    assert np.abs(out).max() > 0
    np.testing.assert_array_equal(out, model.infer(c, f0, 1))  # seeded noise: deterministic
    other = model.infer(c, f0 * 1.5, 1)
    assert np.abs(other - out).max() > 1e-3  # it really computes from the (cast) F0


def test_a_half_precision_signature_is_still_checked(variants):
    # an RVC file is not a so-vits-svc model, whatever its float width
    with pytest.raises(ModelSignatureError, match=r"not a so-vits-svc 4\.x model"):
        SoVitsSvc(variants["rvc_fp16"])


def test_sovits_4_0_v2_export_with_t_window_loads_and_runs(variants):
    model = SoVitsSvc(variants["sovits_v2"])
    assert model.variant == "4.0-v2" and model.t_window_size == 2048
    assert "uv" not in model.session.inputs
    c, f0 = _content(12), _f0(24)
    out = model.infer(c, f0, 1)
    assert out.dtype == np.float32 and out.shape == (24 * model.hop,) and np.isfinite(out).all()
    np.testing.assert_array_equal(out, model.infer(c, f0, 1))  # seeded noise: deterministic
    # t_window divides the noise branch (4.0-v2's overlap-add normaliser): a larger fill, less noise
    noisy = model.infer(c, f0, 1, t_window=0.0064)
    quiet = model.infer(c, f0, 1, t_window=8.0)
    assert np.abs(noisy - quiet).max() > 1e-2
    assert np.abs(noisy - out).mean() > np.abs(quiet - out).mean()
    assert np.abs(model.infer(c, f0 * 1.5, 1) - out).max() > 1e-3  # and it computes from F0
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="t_window must be a finite number > 0"):
            model.infer(c, f0, 1, t_window=bad)


def test_a_4_0_export_is_still_the_uv_variant(tiny_models):
    model = SoVitsSvc(tiny_models["sovits"])
    assert model.variant == "4.0" and model.t_window_size is None
    out = model.infer(_content(6), _f0(12), 1, t_window=3.0)  # ignored: no t_window input
    np.testing.assert_array_equal(out, model.infer(_content(6), _f0(12), 1))


def test_t_window_with_a_dynamic_window_axis_is_refused(variants, tmp_path):
    onnx = pytest.importorskip("onnx")
    graph = onnx.load(str(variants["sovits_v2"]))
    (spec,) = [i for i in graph.graph.input if i.name == "t_window"]
    spec.type.tensor_type.shape.dim[1].dim_param = "window"  # axis 1 no longer a fixed 2048
    path = tmp_path / "sovits_v2_dynamic_window.onnx"
    onnx.save(graph, str(path))
    with pytest.raises(ModelSignatureError, match=r"'t_window' .*axis 1 \(the STFT window length"):
        SoVitsSvc(path)


def test_an_export_with_both_uv_and_t_window_is_refused(variants, tmp_path):
    torch = pytest.importorskip("torch")
    tool = importlib.util.module_from_spec(
        spec := importlib.util.spec_from_file_location(
            "make_variant_models_t", Path(__file__).resolve().parents[3] / "tools" / "make_variant_models.py"
        )
    )
    assert spec is not None and spec.loader is not None
    spec.loader.exec_module(tool)

    class Both(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.v2 = tool.SoVitsV2()

        def forward(self, c, f0, mel2ph, uv, t_window, noise, sid):
            return self.v2(c, f0 * uv, mel2ph, t_window, noise, sid)

    ex = tool.tiny._examples()
    t_window = torch.full((1, tool.WINDOW, ex["f0"].shape[1]), 0.8)
    path = tool.tiny._export(
        Both().eval(),
        (ex["c"], ex["f0"], ex["mel2ph"], ex["uv"], t_window, ex["noise"], ex["sid"]),
        ["c", "f0", "mel2ph", "uv", "t_window", "noise", "sid"],
        "audio",
        {"c": [1], "f0": [1], "mel2ph": [1], "uv": [1], "t_window": [2], "noise": [2]},
        tmp_path / "sovits_both.onnx",
    )
    with pytest.raises(ModelSignatureError, match=r"both 'uv' \(so-vits-svc 4\.0/4\.1\) and 't_window'"):
        SoVitsSvc(path)


def test_an_export_with_neither_uv_nor_t_window_names_both(variants, tmp_path):
    onnx = pytest.importorskip("onnx")
    graph = onnx.load(str(variants["sovits_v2"]))
    (spec,) = [i for i in graph.graph.input if i.name == "t_window"]
    spec.name = "window"  # renamed: neither signature's input is there
    for node in graph.graph.node:
        node.input[:] = ["window" if n == "t_window" else n for n in node.input]
    path = tmp_path / "sovits_neither.onnx"
    onnx.save(graph, str(path))
    with pytest.raises(
        ModelSignatureError, match=r"missing input 'uv' \(so-vits-svc 4\.0/4\.1\) or 't_window'"
    ):
        SoVitsSvc(path)
