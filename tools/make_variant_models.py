"""Build tiny stand-ins for the export *variants* users have, beside tools/make_tiny_models.py's.

The same tiny, seeded networks as ``tools/make_tiny_models.py`` (imported from it), exported with the
signature differences found in the wild:

    rvc_vol.onnx       RVC with an extra ``vol`` [1,T] float32 input (loudness per frame)
    rvc_fp16.onnx      RVC whose float inputs and output are float16 (a half-precision export)
    sovits_fp16.onnx   so-vits-svc 4.x (speaker id) whose float inputs and output are float16

The fp16 models cast their float16 inputs to float32 inside the graph and their output back to float16:
what a runner must handle is the float16 *interface* (feeding float16 arrays, reading a float16 output);
the arithmetic inside is the runtime's business (onnxruntime's CPU provider lacks float16 kernels for
some ops, so real half-precision exports are run on GPUs or keep float32 inside).

Usage::

    python tools/make_variant_models.py OUT_DIR [--seed 0]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import torch
from torch import Tensor, nn


def _tiny() -> ModuleType:
    path = Path(__file__).resolve().parent / "make_tiny_models.py"
    spec = importlib.util.spec_from_file_location("make_tiny_models", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("make_tiny_models", module)
    spec.loader.exec_module(module)
    return module


tiny = _tiny()


class RvcWithVol(nn.Module):
    """TinyRvc plus a ``vol`` input that scales the output per frame (so the output depends on it)."""

    def __init__(self) -> None:
        super().__init__()
        self.rvc = tiny.TinyRvc()

    def forward(
        self,
        phone: Tensor,
        phone_lengths: Tensor,
        pitch: Tensor,
        pitchf: Tensor,
        ds: Tensor,
        rnd: Tensor,
        vol: Tensor,
    ) -> Tensor:
        audio = self.rvc(phone, phone_lengths, pitch, pitchf, ds, rnd)
        gain = vol.unsqueeze(2).expand(-1, -1, 400).reshape(1, 1, -1)
        return audio * (0.5 + gain)


class Half(nn.Module):
    """Float16 interface around a float32 model: float16 inputs cast up, the output cast down."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, *args: Tensor) -> Tensor:
        up = [a.float() if a.dtype == torch.float16 else a for a in args]
        return self.inner(*up).half()


def build_variants(out_dir: str | Path, seed: int = 0) -> dict[str, Path]:
    """Build every variant into ``out_dir``; returns name -> path. Same seed, same weights."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ex = tiny._examples()
    paths: dict[str, Path] = {}
    rvc_names = ["phone", "phone_lengths", "pitch", "pitchf", "ds", "rnd"]
    rvc_axes = {"phone": [1], "pitch": [1], "pitchf": [1], "rnd": [2]}
    rvc_args = (ex["c"], ex["phone_lengths"], ex["pitch"], ex["f0"], ex["sid"], ex["noise"])
    torch.manual_seed(seed * 1000 + 11)
    paths["rvc_vol"] = tiny._export(
        RvcWithVol().eval(),
        (*rvc_args, ex["vol"]),
        [*rvc_names, "vol"],
        "audio",
        {**rvc_axes, "vol": [1]},
        out / "rvc_vol.onnx",
    )

    def half(args: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        return tuple(a.half() if a.is_floating_point() else a for a in args)

    torch.manual_seed(seed * 1000 + 12)
    paths["rvc_fp16"] = tiny._export(
        Half(tiny.TinyRvc()).eval(), half(rvc_args), rvc_names, "audio", rvc_axes, out / "rvc_fp16.onnx"
    )
    torch.manual_seed(seed * 1000 + 13)
    svc_args = (ex["c"], ex["f0"], ex["mel2ph"], ex["uv"], ex["noise"], ex["sid"])
    paths["sovits_fp16"] = tiny._export(
        Half(tiny.TinySoVitsId()).eval(),
        half(svc_args),
        ["c", "f0", "mel2ph", "uv", "noise", "sid"],
        "audio",
        {"c": [1], "f0": [1], "mel2ph": [1], "uv": [1], "noise": [2]},
        out / "sovits_fp16.onnx",
    )
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for name, path in build_variants(args.out_dir, args.seed).items():
        print(f"{name:16s} {path}  {path.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
