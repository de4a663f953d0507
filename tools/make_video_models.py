"""Models with the wav2lip and GFPGAN signatures, built here (no weights can be downloaded).

* ``tiny``: a few small convolutions per model, deterministic (seeded), exported to ONNX in a
  second — the tests run the real loading, checking and inference code on them.
* ``full``: the published architectures at full size with random weights (Wav2Lip's generator: face
  encoder, audio encoder and decoder with skip connections, ~36 M parameters; GFPGAN v1 "clean": a
  U-Net encoder and a StyleGAN2 decoder with spatial feature transforms at channel multiplier 2) — the
  benchmark measures their real cost on this CPU.

Usage: ``python tools/make_video_models.py OUT_DIR [--full]``.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn import functional as F

OPSET = 17


class TinyWav2Lip(nn.Module):
    """mel [N,1,80,16] + faces [N,6,96,96] -> [N,3,96,96] in 0..1: a face encoder, an audio
    embedding broadcast over the face, a decoder that keeps the upper half of the reference."""

    def __init__(self) -> None:
        super().__init__()
        self.face = nn.Sequential(nn.Conv2d(6, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 8, 3, 1, 1), nn.ReLU())
        self.audio = nn.Sequential(nn.Conv2d(1, 8, 3, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        self.out = nn.Sequential(nn.Conv2d(16, 8, 3, 1, 1), nn.ReLU(), nn.Conv2d(8, 3, 3, 1, 1))

    def forward(self, mel: Tensor, faces: Tensor) -> Tensor:
        f = self.face(faces)
        a = self.audio(mel).expand(-1, -1, f.shape[2], f.shape[3])
        y = F.interpolate(self.out(torch.cat([f, a], 1)), scale_factor=2.0, mode="bilinear")
        return torch.sigmoid(y + 4.0 * (faces[:, 3:] - 0.5))


class TinyGfpgan(nn.Module):
    """[1,3,512,512] in -1..1 -> the same: a residual smoothing of the face."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 3, 3, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return torch.tanh(x + 0.1 * F.interpolate(self.body(x), scale_factor=2.0, mode="bilinear"))


# --- Wav2Lip at full size (the generator's published layer sizes) ----------------------------------
class _Conv(nn.Module):
    def __init__(
        self, cin: int, cout: int, k: int, s: int | tuple[int, int], p: int, residual: bool = False
    ) -> None:
        super().__init__()
        self.block = nn.Sequential(nn.Conv2d(cin, cout, k, s, p), nn.BatchNorm2d(cout))
        self.residual = residual

    def forward(self, x: Tensor) -> Tensor:
        y = self.block(x)
        return F.relu(y + x if self.residual else y)


class _Up(nn.Module):
    def __init__(self, cin: int, cout: int, k: int, s: int, p: int, op: int = 0) -> None:
        super().__init__()
        self.block = nn.Sequential(nn.ConvTranspose2d(cin, cout, k, s, p, op), nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.block(x))


class Wav2Lip(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        C = _Conv
        self.face_encoder_blocks = nn.ModuleList(
            [
                nn.Sequential(C(6, 16, 7, 1, 3)),
                nn.Sequential(C(16, 32, 3, 2, 1), C(32, 32, 3, 1, 1, True), C(32, 32, 3, 1, 1, True)),
                nn.Sequential(C(32, 64, 3, 2, 1), *[C(64, 64, 3, 1, 1, True) for _ in range(3)]),
                nn.Sequential(C(64, 128, 3, 2, 1), *[C(128, 128, 3, 1, 1, True) for _ in range(2)]),
                nn.Sequential(C(128, 256, 3, 2, 1), *[C(256, 256, 3, 1, 1, True) for _ in range(2)]),
                nn.Sequential(C(256, 512, 3, 2, 1), C(512, 512, 3, 1, 1, True)),
                nn.Sequential(C(512, 512, 3, 1, 0), C(512, 512, 1, 1, 0)),
            ]
        )
        self.audio_encoder = nn.Sequential(
            C(1, 32, 3, 1, 1), C(32, 32, 3, 1, 1, True), C(32, 32, 3, 1, 1, True),
            C(32, 64, 3, (3, 1), 1), C(64, 64, 3, 1, 1, True), C(64, 64, 3, 1, 1, True),
            C(64, 128, 3, 3, 1), C(128, 128, 3, 1, 1, True), C(128, 128, 3, 1, 1, True),
            C(128, 256, 3, (3, 2), 1), C(256, 256, 3, 1, 1, True),
            C(256, 512, 3, 1, 0), C(512, 512, 1, 1, 0),
        )  # fmt: skip
        self.face_decoder_blocks = nn.ModuleList(
            [
                nn.Sequential(C(512, 512, 1, 1, 0)),
                nn.Sequential(_Up(1024, 512, 3, 1, 0), C(512, 512, 3, 1, 1, True)),
                nn.Sequential(
                    _Up(1024, 512, 3, 2, 1, 1), C(512, 512, 3, 1, 1, True), C(512, 512, 3, 1, 1, True)
                ),
                nn.Sequential(
                    _Up(768, 384, 3, 2, 1, 1), C(384, 384, 3, 1, 1, True), C(384, 384, 3, 1, 1, True)
                ),
                nn.Sequential(
                    _Up(512, 256, 3, 2, 1, 1), C(256, 256, 3, 1, 1, True), C(256, 256, 3, 1, 1, True)
                ),
                nn.Sequential(
                    _Up(320, 128, 3, 2, 1, 1), C(128, 128, 3, 1, 1, True), C(128, 128, 3, 1, 1, True)
                ),
                nn.Sequential(_Up(160, 64, 3, 2, 1, 1), C(64, 64, 3, 1, 1, True), C(64, 64, 3, 1, 1, True)),
            ]
        )
        self.output_block = nn.Sequential(C(80, 32, 3, 1, 1), nn.Conv2d(32, 3, 1, 1, 0), nn.Sigmoid())

    def forward(self, mel: Tensor, faces: Tensor) -> Tensor:
        a = self.audio_encoder(mel)
        feats = []
        x = faces
        for block in self.face_encoder_blocks:
            x = block(x)
            feats.append(x)
        x = a
        for block in self.face_decoder_blocks:
            x = torch.cat([block(x), feats.pop()], 1)
        return self.output_block(x)


# --- GFPGAN v1 clean at full size (U-Net encoder + StyleGAN2 decoder with SFT), channel multiplier 2 --
# The StyleGAN2 decoder uses the full channels; the U-Net is narrowed by half (unet_narrow=0.5) and its
# spatial feature transforms modulate half of the decoder's channels (sft_half), as in v1.3/v1.4.
_CH = {4: 512, 8: 512, 16: 512, 32: 512, 64: 512, 128: 256, 256: 128, 512: 64}
_UN = {k: v // 2 for k, v in _CH.items()}


class _Res(nn.Module):
    def __init__(self, cin: int, cout: int, mode: str) -> None:
        super().__init__()
        self.c1, self.c2, self.skip = (
            nn.Conv2d(cin, cin, 3, 1, 1),
            nn.Conv2d(cin, cout, 3, 1, 1),
            nn.Conv2d(cin, cout, 1),
        )
        self.scale = 0.5 if mode == "down" else 2.0

    def forward(self, x: Tensor) -> Tensor:
        y = F.leaky_relu(self.c1(x), 0.2)
        y = F.interpolate(y, scale_factor=self.scale, mode="bilinear")
        y = F.leaky_relu(self.c2(y), 0.2)
        return y + self.skip(F.interpolate(x, scale_factor=self.scale, mode="bilinear"))


class _ModConv(nn.Module):
    """StyleGAN2's modulated convolution (batch 1), with demodulation."""

    def __init__(self, cin: int, cout: int, k: int, demod: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, cout, cin, k, k) / math.sqrt(cin * k * k))
        self.affine = nn.Linear(512, cin)
        self.demod, self.pad = demod, k // 2

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        w = self.weight * self.affine(style).view(1, 1, -1, 1, 1)
        if self.demod:
            w = w * torch.rsqrt((w * w).sum(dim=(2, 3, 4), keepdim=True) + 1e-8)
        return F.conv2d(x, w[0], padding=self.pad)


class Gfpgan(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Conv2d(3, _UN[512], 1)
        sizes = [512, 256, 128, 64, 32, 16, 8, 4]
        self.down = nn.ModuleList([_Res(_UN[a], _UN[b], "down") for a, b in zip(sizes, sizes[1:])])
        self.final_conv = nn.Conv2d(_UN[4], _UN[4], 3, 1, 1)
        self.final_linear = nn.Linear(_UN[4] * 16, 512 * 16)
        ups = sizes[::-1]
        self.up = nn.ModuleList([_Res(_UN[a], _UN[b], "up") for a, b in zip(ups, ups[1:])])
        self.sft = nn.ModuleList(
            [
                nn.ModuleList(
                    [
                        nn.Sequential(
                            nn.Conv2d(_UN[s], _UN[s], 3, 1, 1),
                            nn.LeakyReLU(0.2),
                            nn.Conv2d(_UN[s], _CH[s] // 2, 3, 1, 1),
                        )
                        for _ in range(2)
                    ]
                )
                for s in ups[1:]
            ]
        )
        self.style_mlp = nn.Sequential(
            *[m for _ in range(8) for m in (nn.Linear(512, 512), nn.LeakyReLU(0.2))]
        )
        self.const = nn.Parameter(torch.randn(1, _CH[4], 4, 4))
        self.conv1 = _ModConv(_CH[4], _CH[4], 3)
        self.to_rgb1 = _ModConv(_CH[4], 3, 1, demod=False)
        self.convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        for a, b in zip(ups, ups[1:]):
            self.convs.append(nn.ModuleList([_ModConv(_CH[a], _CH[b], 3), _ModConv(_CH[b], _CH[b], 3)]))
            self.to_rgbs.append(_ModConv(_CH[b], 3, 1, demod=False))

    def forward(self, x: Tensor) -> Tensor:
        feat = F.leaky_relu(self.first(x), 0.2)
        skips = []
        for block in self.down:
            feat = block(feat)
            skips.insert(0, feat)
        feat = F.leaky_relu(self.final_conv(feat), 0.2)
        style = self.style_mlp(self.final_linear(feat.flatten(1)).view(16, 512).mean(0, keepdim=True))
        conditions = []
        for i, block in enumerate(self.up):
            feat = block(feat + skips[i]) if i == 0 else block(feat)
            scale, shift = (m(feat) for m in self.sft[i])
            conditions.append((scale, shift))
        out = F.leaky_relu(self.conv1(self.const, style), 0.2)
        rgb = self.to_rgb1(out, style)
        for (c1, c2), to_rgb, (scale, shift) in zip(self.convs, self.to_rgbs, conditions):
            out = F.interpolate(out, scale_factor=2.0, mode="bilinear")
            out = F.leaky_relu(c1(out, style), 0.2)
            half = out.shape[1] // 2
            out = torch.cat([out[:, :half], out[:, half:] * scale + shift], 1)
            out = F.leaky_relu(c2(out, style), 0.2)
            rgb = F.interpolate(rgb, scale_factor=2.0, mode="bilinear") + to_rgb(out, style)
        return torch.tanh(rgb)


def _export(model: nn.Module, args: tuple[Tensor, ...], names: list[str], out: Path) -> Path:
    model.eval()
    with torch.no_grad():
        torch.onnx.export(
            model,
            args,
            str(out),
            input_names=names,
            output_names=["output"],
            dynamo=False,
            opset_version=OPSET,
        )
    return out


def build(out_dir: str | Path, *, full: bool = False, seed: int = 0) -> dict[str, Path]:
    """Export the models into ``out_dir``; returns ``{"wav2lip": path, "gfpgan": path}``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    w2l, gfp = (Wav2Lip(), Gfpgan()) if full else (TinyWav2Lip(), TinyGfpgan())
    tag = "full" if full else "tiny"
    return {
        "wav2lip": _export(
            w2l,
            (torch.randn(1, 1, 80, 16), torch.rand(1, 6, 96, 96)),
            ["mel", "faces"],
            out / f"wav2lip_{tag}.onnx",
        ),
        "gfpgan": _export(gfp, (torch.rand(1, 3, 512, 512) * 2 - 1,), ["input"], out / f"gfpgan_{tag}.onnx"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--full", action="store_true", help="the full-size architectures (random weights)")
    args = ap.parse_args()
    for name, path in build(args.out_dir, full=args.full).items():
        print(f"{name}: {path} ({path.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
