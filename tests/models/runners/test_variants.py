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
