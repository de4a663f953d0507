"""Build tiny stand-ins for the export *variants* users have, beside tools/make_tiny_models.py's.

The same tiny, seeded networks as ``tools/make_tiny_models.py`` (imported from it), exported with the
signature differences found in the wild:

    rvc_vol.onnx       RVC with an extra ``vol`` [1,T] float32 input (loudness per frame)
    rvc_fp16.onnx      RVC whose float inputs and output are float16 (a half-precision export)
    sovits_fp16.onnx   so-vits-svc 4.x (speaker id) whose float inputs and output are float16
    sovits_v2.onnx     so-vits-svc 4.0-v2: ``c, f0, mel2ph, t_window [1,2048,T] f32, noise, sid`` (no ``uv``)

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


WINDOW, HOP = 2048, 512
"""The published so-vits-svc 4.0-v2 config's STFT window and hop (44.1 kHz)."""


class SoVitsV2(nn.Module):
    """The tiny so-vits-svc network with the 4.0-v2 signature: voicing derived from F0 inside the graph, and
    a noise branch divided by the overlap-added ``t_window`` (as 4.0-v2's ConviSTFT normalises its output),
    so a larger ``t_window`` gives less noise."""

    def __init__(self) -> None:
        super().__init__()
        self.svc = tiny.TinySoVits()
        self.noise_amp = nn.Conv1d(tiny.HIDDEN, 1, 1)

    def forward(
        self, c: Tensor, f0: Tensor, mel2ph: Tensor, t_window: Tensor, noise: Tensor, sid: Tensor
    ) -> Tensor:
        uv = (f0 > 0).to(f0.dtype)
        h = self.svc.hidden(c, f0, mel2ph, uv, noise, self.svc.speaker(sid).unsqueeze(2))
        harmonic = self.svc.decoder(h, f0, uv)  # [1,1,T*HOP]
        overlap = t_window.sum(dim=1, keepdim=True) / HOP  # [1,1,T]: a frame's share of the overlap-add
        amp = torch.sigmoid(self.noise_amp(h)) / (overlap + 1e-8)
        carrier = torch.tanh(self.svc.decoder.residual(h))  # [1,1,T*HOP]
        return harmonic + 0.1 * amp.unsqueeze(3).expand(-1, -1, -1, HOP).reshape(1, 1, -1) * carrier


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
    torch.manual_seed(seed * 1000 + 14)
    t_window = torch.full((1, WINDOW, ex["f0"].shape[1]), 0.0064)  # the published export script's dummy
    paths["sovits_v2"] = tiny._export(
        SoVitsV2().eval(),
        (ex["c"], ex["f0"], ex["mel2ph"], t_window, ex["noise"], ex["sid"]),
        ["c", "f0", "mel2ph", "t_window", "noise", "sid"],
        "audio",
        {"c": [1], "f0": [1], "mel2ph": [1], "t_window": [2], "noise": [2]},
        out / "sovits_v2.onnx",
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
