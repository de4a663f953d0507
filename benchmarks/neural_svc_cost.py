"""What the neural voice-conversion DAG costs on this CPU: full-size models of the published architectures,
random weights (no trained weights can be downloaded here; the cost does not depend on the values).

Stages, each with the published layer sizes:

* content encoder -- HuBERT/ContentVec base as RVC v2 uses it (768-d, layer 12): 7-layer conv feature
  extractor (512 ch, strides 5,2,2,2,2,2,2 -> 50 frames/s at 16 kHz), feature projection, positional conv
  (kernel 128, 16 groups), 12 transformer layers (768, 12 heads, FFN 3072);
* RVC v2 synthesizer at 40 kHz (``SynthesizerTrnMs768NSFsid``): text/pitch encoder (768 -> 192, 6
  attention layers with 2 heads, FFN 768, kernel 3), 4 residual coupling flows (192 ch, WaveNet 3 layers,
  kernel 5, speaker conditioning 256), NSF-HiFiGAN decoder (conv_pre 192 -> 512, upsampling 10,10,2,2 with
  kernels 16,16,4,4, channels 512/256/128/64/32, 3 ResBlock1 per stage with kernels 3,7,11 and dilations
  1,3,5, harmonic sine source with noise convs) -> 400 samples per frame (100 frames/s).

Per block (``--blocks`` ms) the DAG runs both over the window ``[context | block]`` (``--context`` ms), as
RVC's real-time client does, and keeps the newest block. Reported per stage: process CPU time per second
of audio (torch on ``--threads`` threads; with 2 threads on 2 cores the wall time is at best half the
CPU time) and the wall time per block. Run it on a quiet machine for wall numbers.

    python benchmarks/neural_svc_cost.py [--blocks 100 250 500] [--context 300] [--threads 2]
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from torch import Tensor, nn


class ConvFeatures(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        spec = [(10, 5)] + [(3, 2)] * 4 + [(2, 2)] * 2
        layers: list[nn.Module] = []
        cin = 1
        for i, (k, s) in enumerate(spec):
            layers.append(nn.Conv1d(cin, 512, k, s, bias=False))
            if i == 0:
                layers.append(nn.GroupNorm(512, 512))
            layers.append(nn.GELU())
            cin = 512
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class HubertBase(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = ConvFeatures()
        self.norm = nn.LayerNorm(512)
        self.project = nn.Linear(512, 768)
        self.pos = nn.Conv1d(768, 768, 128, padding=64, groups=16)
        layer = nn.TransformerEncoderLayer(768, 12, 3072, dropout=0.0, activation="gelu", batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 12, enable_nested_tensor=False)

    def forward(self, audio16k: Tensor) -> Tensor:  # [1, 1, N] -> [1, T, 768]
        h = self.project(self.norm(self.features(audio16k).transpose(1, 2)))
        pos = nn.functional.gelu(self.pos(h.transpose(1, 2))[:, :, : h.shape[1]])
        return self.encoder(h + pos.transpose(1, 2))


class TextEncoder(nn.Module):
    """RVC's enc_p: phone (768) + coarse pitch embedding -> 6 attention layers (192, 2 heads) -> m, logs."""

    def __init__(self) -> None:
        super().__init__()
        self.phone = nn.Linear(768, 192)
        self.pitch = nn.Embedding(256, 192)
        self.attn = nn.ModuleList(nn.MultiheadAttention(192, 2, batch_first=True) for _ in range(6))
        self.ffn = nn.ModuleList(
            nn.Sequential(nn.Conv1d(192, 768, 3, padding=1), nn.ReLU(), nn.Conv1d(768, 192, 3, padding=1))
            for _ in range(6)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(192) for _ in range(12))
        self.proj = nn.Conv1d(192, 384, 1)

    def forward(self, phone: Tensor, pitch: Tensor) -> Tensor:
        h = self.phone(phone) + self.pitch(pitch)
        for i in range(6):
            h = self.norms[2 * i](h + self.attn[i](h, h, h, need_weights=False)[0])
            h = self.norms[2 * i + 1](h + self.ffn[i](h.transpose(1, 2)).transpose(1, 2))
        return self.proj(h.transpose(1, 2))


class WaveNet(nn.Module):
    def __init__(self, layers: int = 3, kernel: int = 5) -> None:
        super().__init__()
        self.cond = nn.Conv1d(256, 2 * 192 * layers, 1)
        self.ins = nn.ModuleList(nn.Conv1d(192, 384, kernel, padding=kernel // 2) for _ in range(layers))
        self.res = nn.ModuleList(nn.Conv1d(192, 384 if i < layers - 1 else 192, 1) for i in range(layers))

    def forward(self, x: Tensor, g: Tensor) -> Tensor:
        cond = self.cond(g)
        out = torch.zeros_like(x)
        for i, (conv, res) in enumerate(zip(self.ins, self.res, strict=True)):
            a = conv(x) + cond[:, i * 384 : (i + 1) * 384]
            acts = torch.tanh(a[:, :192]) * torch.sigmoid(a[:, 192:])
            r = res(acts)
            if i < len(self.ins) - 1:
                x = x + r[:, :192]
                out = out + r[:, 192:]
            else:
                out = out + r
        return out


class Flow(nn.Module):
    """4 residual coupling layers (half the channels transformed by a WaveNet of the other half) + flips."""

    def __init__(self) -> None:
        super().__init__()
        self.pre = nn.ModuleList(nn.Conv1d(96, 192, 1) for _ in range(4))
        self.wn = nn.ModuleList(WaveNet() for _ in range(4))
        self.post = nn.ModuleList(nn.Conv1d(192, 96, 1) for _ in range(4))

    def forward(self, z: Tensor, g: Tensor) -> Tensor:  # reverse pass, as at inference
        for i in reversed(range(4)):
            z = torch.flip(z, [1])
            x0, x1 = z[:, :96], z[:, 96:]
            m = self.post[i](self.wn[i](self.pre[i](x0), g))
            z = torch.cat([x0, x1 - m], 1)
        return z


class ResBlock1(nn.Module):
    def __init__(self, ch: int, k: int) -> None:
        super().__init__()
        self.c1 = nn.ModuleList(nn.Conv1d(ch, ch, k, dilation=d, padding=d * (k - 1) // 2) for d in (1, 3, 5))
        self.c2 = nn.ModuleList(nn.Conv1d(ch, ch, k, padding=(k - 1) // 2) for _ in range(3))

    def forward(self, x: Tensor) -> Tensor:
        for a, b in zip(self.c1, self.c2, strict=True):
            x = x + b(nn.functional.leaky_relu(a(nn.functional.leaky_relu(x, 0.1)), 0.1))
        return x


class NsfGenerator(nn.Module):
    """RVC v2 40 kHz decoder: upsample 10,10,2,2 (kernels 16,16,4,4), 512 -> 32 channels, NSF sine source."""

    def __init__(self, sample_rate: int = 40000) -> None:
        super().__init__()
        self.sample_rate = sample_rate
        rates, kernels = (10, 10, 2, 2), (16, 16, 4, 4)
        self.hop = math.prod(rates)
        self.pre = nn.Conv1d(192, 512, 7, padding=3)
        self.cond = nn.Conv1d(256, 512, 1)
        self.ups = nn.ModuleList()
        self.noise = nn.ModuleList()
        self.blocks = nn.ModuleList()
        ch = 512
        for i, (u, k) in enumerate(zip(rates, kernels, strict=True)):
            self.ups.append(nn.ConvTranspose1d(ch, ch // 2, k, u, padding=(k - u) // 2))
            ch //= 2
            stride = math.prod(rates[i + 1 :])
            self.noise.append(
                nn.Conv1d(1, ch, stride * 2, stride, padding=stride // 2)
                if stride > 1
                else nn.Conv1d(1, ch, 1)
            )
            self.blocks.append(nn.ModuleList(ResBlock1(ch, k) for k in (3, 7, 11)))
        self.source = nn.Linear(9, 1)  # harmonic sine source: 8 harmonics + fundamental merged
        self.post = nn.Conv1d(ch, 1, 7, padding=3)

    def forward(self, z: Tensor, f0: Tensor, g: Tensor) -> Tensor:
        t = f0.shape[1] * self.hop
        f0_up = nn.functional.interpolate(f0[:, None], size=t, mode="nearest")[:, 0]
        phase = torch.cumsum(f0_up / self.sample_rate, 1)[..., None] * torch.arange(1, 10)
        har = torch.tanh(self.source(torch.sin(2 * math.pi * phase))).transpose(1, 2)  # [1, 1, t]
        x = self.pre(z) + self.cond(g)
        for up, noise, blocks in zip(self.ups, self.noise, self.blocks, strict=True):
            x = up(nn.functional.leaky_relu(x, 0.1))
            n = noise(har)
            x = x + n[:, :, : x.shape[2]]
            x = sum(b(x) for b in blocks) / 3.0  # type: ignore[assignment]
        return torch.tanh(self.post(nn.functional.leaky_relu(x)))


def cpu_run(fn, *args):  # type: ignore[no-untyped-def]
    c0, w0 = time.process_time(), time.perf_counter()
    out = fn(*args)
    return out, time.process_time() - c0, time.perf_counter() - w0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--blocks", nargs="+", type=float, default=[100.0, 250.0, 500.0])
    ap.add_argument("--context", type=float, default=300.0, help="left context per window (ms)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    hubert, enc, flow, dec = HubertBase().eval(), TextEncoder().eval(), Flow().eval(), NsfGenerator().eval()
    params = {n: sum(p.numel() for p in m.parameters()) for n, m in
              (("content", hubert), ("enc_p", enc), ("flow", flow), ("dec", dec))}  # fmt: skip
    print("parameters (M):", {k: round(v / 1e6, 1) for k, v in params.items()})
    print(
        f"torch {torch.__version__}, {args.threads} thread(s); context {args.context:g} ms; CPU s per audio s"
    )
    print("| block ms | window ms | content | enc_p | flow | dec (NSF-HiFiGAN) | CPU RTF | wall ms/block |")
    print("|---|---|---|---|---|---|---|---|")
    g = torch.randn(1, 256, 1)
    with torch.inference_mode():
        for block in args.blocks:
            window_s = (block + args.context) / 1000.0
            audio = torch.randn(1, 1, int(16000 * window_s)) * 0.1
            frames = int(100 * window_s)
            cost = {"content": 0.0, "enc_p": 0.0, "flow": 0.0, "dec": 0.0}
            wall = 0.0
            for r in range(args.repeats + 1):
                units, c1, w1 = cpu_run(hubert, audio)
                phone = nn.functional.interpolate(units.transpose(1, 2), size=frames).transpose(1, 2)
                pitch = torch.randint(1, 255, (1, frames))
                stats, c2, w2 = cpu_run(enc, phone, pitch)
                z = stats[:, :192] + torch.randn(1, 192, frames) * 0.66666
                z, c3, w3 = cpu_run(flow, z, g)
                f0 = torch.full((1, frames), 150.0)
                _, c4, w4 = cpu_run(dec, z, f0, g)
                if r:  # the first pass warms up allocators and kernels
                    for k, v in zip(cost, (c1, c2, c3, c4), strict=True):
                        cost[k] += v / args.repeats
                    wall += (w1 + w2 + w3 + w4) / args.repeats
            per_s = {k: v / (block / 1000.0) for k, v in cost.items()}
            print(
                f"| {block:g} | {1000 * window_s:g} | "
                + " | ".join(f"{per_s[k]:.2f}" for k in cost)
                + f" | **{sum(per_s.values()):.2f}** | {1000 * wall:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
