"""Build tiny, deterministic stand-ins for the neural models apipeline runs, with the real signatures.

No ContentVec, so-vits-svc, RVC or NSF-HiFiGAN weights can be downloaded here, so the loading and
inference code is exercised on small torch networks that have exactly the published ONNX signatures and
really compute from every input (output depends on content, F0, voicing, speaker, noise). They are seeded,
so the same seed gives the same weights and the same outputs. They are not trained: they make structured
noise and harmonics, not speech.

Usage::

    python tools/make_tiny_models.py OUT_DIR [--seed 0]

Writes (each well under 1 MB):

    content_encoder.onnx   source [1,1,N] -> units [1,T,256], T = (N - 400) // 320 + 1 (ContentVec framing)
    sovits.onnx            c, f0, mel2ph, uv, noise, sid[1] int64 -> audio [1,1,512T]      (44.1 kHz)
    sovits_mix.onnx        c, f0, mel2ph, uv, noise, sid[T,4] f32, vol -> audio [1,1,512T] (speaker mix)
    sovits_mel.onnx        c, f0, mel2ph, uv, noise, sid[1] int64 -> mel [1,T,128]         (for a vocoder)
    rvc.onnx               phone, phone_lengths, pitch, pitchf, ds, rnd -> audio [1,1,400T] (40 kHz)
    nsf_hifigan.onnx       mel [1,n,128], f0 [1,n] -> waveform [1,512n]                    (44.1 kHz)
    nsf_hifigan.pt         the same vocoder as TorchScript
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import struct
import subprocess
import sys
import warnings
import zipfile
import zlib
from pathlib import Path

import torch
from torch import Tensor, nn

HIDDEN = 32
CONTENT_DIM = 256
N_MELS = 128
NOISE = 192
SPEAKERS = 4
OPSET = 17


class _Source(nn.Module):
    """Frame-rate F0 -> a sine at sample rate (the NSF excitation), gated by voicing."""

    def __init__(self, hop: int, sample_rate: int) -> None:
        super().__init__()
        self.hop, self.sample_rate = hop, sample_rate

    def forward(self, f0: Tensor, uv: Tensor) -> Tensor:  # [1,T], [1,T] -> [1,1,T*hop]
        # Phase accumulated per frame (T terms, wrapped) plus a ramp inside the frame: a sample-rate cumsum
        # in float32 drifts, and differently in each runtime.
        per_frame = f0 * (self.hop / self.sample_rate)
        start = torch.cumsum(per_frame, dim=1) - per_frame
        start = start - torch.floor(start)
        ramp = torch.arange(1, self.hop + 1, dtype=f0.dtype) / self.sample_rate
        phase = start.unsqueeze(2) + f0.unsqueeze(2) * ramp
        uv_up = uv.unsqueeze(2).expand(-1, -1, self.hop)
        return (torch.sin(2 * math.pi * phase) * uv_up).reshape(1, 1, -1)


class _Decoder(nn.Module):
    """Hidden frames [1,H,T] + F0 -> audio [1,1,T*hop]: a harmonic part and an upsampled residual."""

    def __init__(self, hop: int, sample_rate: int) -> None:
        super().__init__()
        self.source = _Source(hop, sample_rate)
        self.amp = nn.Conv1d(HIDDEN, 1, 3, padding=1)
        self.residual = nn.ConvTranspose1d(HIDDEN, 1, 2 * hop, stride=hop, padding=hop // 2)
        self.hop = hop

    def forward(self, h: Tensor, f0: Tensor, uv: Tensor) -> Tensor:
        amp = torch.sigmoid(self.amp(h)).unsqueeze(3).expand(-1, -1, -1, self.hop).reshape(1, 1, -1)
        return 0.5 * amp * self.source(f0, uv) + 0.05 * torch.tanh(self.residual(h))


class TinyContentEncoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.frontend = nn.Conv1d(1, HIDDEN, 400, stride=320)
        self.proj = nn.Conv1d(HIDDEN, CONTENT_DIM, 1)

    def forward(self, source: Tensor) -> Tensor:
        return self.proj(torch.tanh(self.frontend(source))).transpose(1, 2)


class TinySoVits(nn.Module):
    """so-vits-svc 4.x signature; ``mix`` switches sid to per-frame weights and adds a ``vol`` input."""

    def __init__(self, mix: bool = False, mel: bool = False) -> None:
        super().__init__()
        self.mix, self.mel = mix, mel
        self.pre = nn.Conv1d(CONTENT_DIM, HIDDEN, 3, padding=1)
        self.f0_proj = nn.Conv1d(2, HIDDEN, 1)
        self.noise_proj = nn.Conv1d(NOISE, HIDDEN, 1)
        self.vol_proj = nn.Conv1d(1, HIDDEN, 1)
        self.speaker = nn.Embedding(SPEAKERS, HIDDEN)
        self.body = nn.Conv1d(HIDDEN, HIDDEN, 5, padding=2)
        self.to_mel = nn.Conv1d(HIDDEN, N_MELS, 1)
        self.decoder = _Decoder(512, 44100)

    def hidden(self, c: Tensor, f0: Tensor, mel2ph: Tensor, uv: Tensor, noise: Tensor, g: Tensor) -> Tensor:
        x = torch.gather(c, 1, mel2ph.unsqueeze(2).expand(-1, -1, c.shape[2])).transpose(1, 2)
        pitch = torch.stack([torch.log1p(f0 / 700.0), uv], dim=1)
        h = torch.tanh(self.pre(x) + self.f0_proj(pitch) + 0.1 * self.noise_proj(noise) + g)
        return torch.tanh(self.body(h))

    def finish(self, h: Tensor, f0: Tensor, uv: Tensor) -> Tensor:
        if self.mel:
            return (self.to_mel(h) - 4.0).transpose(1, 2)
        return self.decoder(h, f0, uv)


class TinySoVitsId(TinySoVits):
    def forward(
        self, c: Tensor, f0: Tensor, mel2ph: Tensor, uv: Tensor, noise: Tensor, sid: Tensor
    ) -> Tensor:
        g = self.speaker(sid).unsqueeze(2)
        return self.finish(self.hidden(c, f0, mel2ph, uv, noise, g), f0, uv)


class TinySoVitsMix(TinySoVits):
    def forward(
        self, c: Tensor, f0: Tensor, mel2ph: Tensor, uv: Tensor, noise: Tensor, sid: Tensor, vol: Tensor
    ) -> Tensor:
        g = torch.matmul(sid, self.speaker.weight).transpose(0, 1).unsqueeze(0) + self.vol_proj(
            vol.unsqueeze(1)
        )
        return self.finish(self.hidden(c, f0, mel2ph, uv, noise, g), f0, uv)


class TinyRvc(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.pre = nn.Conv1d(CONTENT_DIM, HIDDEN, 3, padding=1)
        self.pitch = nn.Embedding(256, HIDDEN)
        self.noise_proj = nn.Conv1d(NOISE, HIDDEN, 1)
        self.speaker = nn.Embedding(SPEAKERS, HIDDEN)
        self.decoder = _Decoder(400, 40000)

    def forward(
        self, phone: Tensor, phone_lengths: Tensor, pitch: Tensor, pitchf: Tensor, ds: Tensor, rnd: Tensor
    ) -> Tensor:
        frames = torch.arange(phone.shape[1]).unsqueeze(0)
        mask = (frames < phone_lengths.unsqueeze(1)).to(phone.dtype)  # [1,T]
        h = self.pre(phone.transpose(1, 2)) + self.pitch(pitch).transpose(1, 2)
        h = torch.tanh(h + 0.1 * self.noise_proj(rnd) + self.speaker(ds).unsqueeze(2)) * mask.unsqueeze(1)
        return self.decoder(h, pitchf, (pitchf > 0).to(pitchf.dtype) * mask)


class TinyNsfHifiGan(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.pre = nn.Conv1d(N_MELS, HIDDEN, 3, padding=1)
        self.decoder = _Decoder(512, 44100)

    def forward(self, mel: Tensor, f0: Tensor) -> Tensor:
        h = torch.tanh(self.pre(mel.transpose(1, 2)))
        return self.decoder(h, f0, (f0 > 0).to(f0.dtype)).squeeze(1)


def _examples(t: int = 12) -> dict[str, Tensor]:
    g = torch.Generator().manual_seed(1)
    f0 = torch.full((1, t), 220.0)
    return {
        "source": torch.randn(1, 1, 400 + 320 * (t - 1), generator=g),
        "c": torch.randn(1, t, CONTENT_DIM, generator=g),
        "f0": f0,
        "mel2ph": torch.arange(t).unsqueeze(0),
        "uv": torch.ones(1, t),
        "noise": torch.randn(1, NOISE, t, generator=g),
        "sid": torch.tensor([1]),
        "sid_mix": torch.full((t, SPEAKERS), 1.0 / SPEAKERS),
        "vol": torch.full((1, t), 0.1),
        "phone_lengths": torch.tensor([t]),
        "pitch": torch.full((1, t), 100, dtype=torch.long),
        "mel": torch.randn(1, t, N_MELS, generator=g) - 4.0,
    }


_OUT_AXES = {"units": [1], "audio": [2], "mel": [1], "waveform": [1]}


def _export(
    model: nn.Module,
    args: tuple[Tensor, ...],
    names: list[str],
    out: str,
    axes: dict[str, list[int]],
    path: Path,
) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter warns that it is the legacy one
        torch.onnx.export(
            model,
            args,
            str(path),
            dynamo=False,
            opset_version=OPSET,
            input_names=names,
            output_names=[out],
            dynamic_axes={**axes, out: _OUT_AXES[out]},
            do_constant_folding=True,
        )
    return path


def build_all(out_dir: str | Path, seed: int = 0) -> dict[str, Path]:
    """Build every tiny model into ``out_dir``; returns name -> path. Same seed, same weights."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ex = _examples()
    paths: dict[str, Path] = {}
    svc_names = ["c", "f0", "mel2ph", "uv", "noise", "sid"]
    svc_axes = {"c": [1], "f0": [1], "mel2ph": [1], "uv": [1], "noise": [2]}
    svc_args = (ex["c"], ex["f0"], ex["mel2ph"], ex["uv"], ex["noise"])

    def seeded(offset: int) -> None:
        torch.manual_seed(seed * 1000 + offset)

    seeded(1)
    paths["content_encoder"] = _export(
        TinyContentEncoder().eval(),
        (ex["source"],),
        ["source"],
        "units",
        {"source": [2]},
        out / "content_encoder.onnx",
    )
    seeded(2)
    paths["sovits"] = _export(
        TinySoVitsId().eval(), (*svc_args, ex["sid"]), svc_names, "audio", {**svc_axes}, out / "sovits.onnx"
    )
    seeded(3)
    paths["sovits_mix"] = _export(
        TinySoVitsMix(mix=True).eval(),
        (*svc_args, ex["sid_mix"], ex["vol"]),
        [*svc_names, "vol"],
        "audio",
        {**svc_axes, "sid": [0], "vol": [1]},
        out / "sovits_mix.onnx",
    )
    seeded(4)
    paths["sovits_mel"] = _export(
        TinySoVitsId(mel=True).eval(),
        (*svc_args, ex["sid"]),
        svc_names,
        "mel",
        {**svc_axes},
        out / "sovits_mel.onnx",
    )
    seeded(5)
    paths["rvc"] = _export(
        TinyRvc().eval(),
        (ex["c"], ex["phone_lengths"], ex["pitch"], ex["f0"], ex["sid"], ex["noise"]),
        ["phone", "phone_lengths", "pitch", "pitchf", "ds", "rnd"],
        "audio",
        {"phone": [1], "pitch": [1], "pitchf": [1], "rnd": [2]},
        out / "rvc.onnx",
    )
    seeded(6)
    vocoder = TinyNsfHifiGan().eval()
    paths["nsf_hifigan"] = _export(
        vocoder,
        (ex["mel"], ex["f0"]),
        ["mel", "f0"],
        "waveform",
        {"mel": [1], "f0": [1]},
        out / "nsf_hifigan.onnx",
    )
    paths["nsf_hifigan_ts"] = _save_torchscript(vocoder, out / "nsf_hifigan.pt")
    return paths


def _save_torchscript(vocoder: TinyNsfHifiGan, path: Path) -> Path:
    """Save ``vocoder`` as TorchScript, byte-identical for the same weights.

    Two things vary between runs of a plain ``torch.jit.save``: the order in which a module's constants
    are written follows a ``set`` of names (str hashing, so ``PYTHONHASHSEED``), and the archive holds a
    random ``serialization_id``. So the scripting runs in a child with ``PYTHONHASHSEED=0`` (unless this
    process already has it) and the id is replaced by a digest of the archive's other records.
    """
    if os.environ.get("PYTHONHASHSEED") != "0":
        state = path.with_name(path.name + ".state")
        torch.save(vocoder.state_dict(), str(state))
        try:
            subprocess.run(
                [sys.executable, __file__, "--torchscript", str(state), str(path)],
                env={**os.environ, "PYTHONHASHSEED": "0"},
                check=True,
            )
        finally:
            state.unlink(missing_ok=True)
        return path
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated but still the format
        torch.jit.save(torch.jit.script(vocoder), str(path))
    _fix_serialization_id(path)
    return path


def _fix_serialization_id(path: Path) -> None:
    """Replace the archive's random ``.data/serialization_id`` with a digest of its other records.

    Patched in place (same length, CRC-32 updated in the local header, the data descriptor and the
    central directory), so everything else -- torch's 64-byte alignment padding included -- stays.
    """
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        infos = z.infolist()
        digest = hashlib.sha256()
        for info in infos:
            if not info.filename.endswith(".data/serialization_id"):
                digest.update(info.filename.encode() + b"\0" + z.read(info))
        target = next((i for i in infos if i.filename.endswith(".data/serialization_id")), None)
        central = z.start_dir  # type: ignore[attr-defined]
    if target is None or target.compress_type != zipfile.ZIP_STORED:
        return
    size = target.file_size
    data = str(int(digest.hexdigest(), 16))[:size].zfill(size).encode()
    crc = zlib.crc32(data)
    name_len, extra_len = struct.unpack_from("<HH", raw, target.header_offset + 26)
    start = target.header_offset + 30 + name_len + extra_len
    raw[start : start + size] = data
    if struct.unpack_from("<I", raw, target.header_offset + 14)[0]:
        struct.pack_into("<I", raw, target.header_offset + 14, crc)
    if target.flag_bits & 0x08:  # a data descriptor follows the data, with or without its signature
        at = start + size + (4 if raw[start + size : start + size + 4] == b"PK\x07\x08" else 0)
        struct.pack_into("<I", raw, at, crc)
    while raw[central : central + 4] == b"PK\x01\x02":
        n, m, k = struct.unpack_from("<HHH", raw, central + 28)
        if raw[central + 46 : central + 46 + n] == target.filename.encode():
            struct.pack_into("<I", raw, central + 16, crc)
        central += 46 + n + m + k
    path.write_bytes(bytes(raw))


def _torchscript_child(state: str, path: str) -> None:
    vocoder = TinyNsfHifiGan().eval()
    vocoder.load_state_dict(torch.load(state))
    _save_torchscript(vocoder, Path(path))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", nargs="?")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--torchscript", nargs=2, metavar=("STATE", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.torchscript:
        _torchscript_child(*args.torchscript)
        return
    if args.out_dir is None:
        parser.error("OUT_DIR is required")
    for name, path in build_all(args.out_dir, args.seed).items():
        print(f"{name:16s} {path}  {path.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
