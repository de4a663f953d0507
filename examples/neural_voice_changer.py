"""Neural voice changer: content encoder || FCPE -> so-vits-svc/RVC -> (NSF-HiFiGAN) -> SOLA, on a file.

Runs the graph of :func:`apipeline.models`/:func:`apipeline.processors.models.neural_voice_changer` with
real model files (ONNX, or TorchScript where the format allows), streaming the input file block by block
as a live source would::

    python examples/neural_voice_changer.py in.wav out.wav \\
        --content-encoder vec256l9.onnx --svc-model model.onnx [--vocoder nsf_hifigan.onnx]

Without model files, ``--tiny DIR`` builds the untrained stand-ins of ``tools/make_tiny_models.py`` into
DIR and uses them (they exercise the code paths; they do not make a voice).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from apipeline.frames import AudioRawFrame
from apipeline.models import ModelRegistry
from apipeline.models.runners import SessionConfig
from apipeline.models.services import ContentEncoderService, F0Service, SvcService, VocoderService
from apipeline.processors.models import neural_voice_changer
from apipeline.testing import run_processor


def _tiny_models(out_dir: str) -> dict[str, Path]:
    tool = Path(__file__).resolve().parents[1] / "tools" / "make_tiny_models.py"
    spec = importlib.util.spec_from_file_location("make_tiny_models", tool)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_all(out_dir)  # type: ignore[no-any-return]


async def convert(args: argparse.Namespace) -> None:
    if args.tiny:
        tiny = _tiny_models(args.tiny)
        args.content_encoder = args.content_encoder or tiny["content_encoder"]
        args.svc_model = args.svc_model or tiny["sovits_mel"]
        args.vocoder = args.vocoder or tiny["nsf_hifigan"]
    if not (args.content_encoder and args.svc_model):
        raise SystemExit("need --content-encoder and --svc-model (or --tiny DIR)")
    config = SessionConfig(intra_op_threads=args.threads, device=args.device)
    audio, rate = sf.read(args.input, dtype="float32", always_2d=True)
    mono = audio.mean(axis=1).astype(np.float32)
    async with ModelRegistry() as registry:
        registry.register(ContentEncoderService(args.content_encoder, config=config))
        registry.register(F0Service(args.f0))
        registry.register(SvcService(args.svc_model, config=config))
        if args.vocoder:
            registry.register(VocoderService(args.vocoder, config=config))
        stages = neural_voice_changer(
            registry,
            f0_service=f"f0_{args.f0.replace('-', '_')}",
            vocoder_service="vocoder" if args.vocoder else None,
            block_ms=args.block_ms,
            context_ms=args.context_ms,
            crossfade_ms=args.crossfade_ms,
            search_ms=args.search_ms,
            speaker=args.speaker,
            pitch=args.pitch,
        )
        chunk = max(1, rate // 50)  # 20 ms input frames, as a sound card would deliver them
        frames = [AudioRawFrame(mono[i : i + chunk], rate, 1) for i in range(0, mono.size, chunk)]
        t0 = time.perf_counter()
        out = await run_processor(stages, frames)
        elapsed = time.perf_counter() - t0
    result = np.concatenate([f.audio for f in out]) if out else np.zeros(0, np.float32)
    out_rate = out[0].sample_rate if out else rate
    sf.write(args.output, result, out_rate)
    duration = mono.size / rate
    print(
        f"{args.input}: {duration:.2f} s -> {args.output}: {result.size / out_rate:.2f} s at {out_rate} Hz; "
        f"{elapsed:.2f} s of compute (RTF {elapsed / max(duration, 1e-9):.2f})"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--content-encoder", help="ContentVec/HuBERT ONNX ([1,1,N] 16 kHz -> [1,T,256|768])")
    p.add_argument("--svc-model", help="so-vits-svc 4.x or RVC ONNX export")
    p.add_argument("--vocoder", help="NSF-HiFiGAN ONNX/TorchScript, for SVC models that output mel")
    p.add_argument("--tiny", metavar="DIR", help="build and use the tiny stand-in models in DIR")
    p.add_argument("--f0", default="fcpe", help="F0 estimator: fcpe, crepe, crepe-full, dio, harvest")
    p.add_argument("--speaker", type=int, default=0)
    p.add_argument("--pitch", type=float, default=0.0, help="semitones")
    p.add_argument("--block-ms", type=float, default=250.0)
    p.add_argument("--context-ms", type=float, default=1000.0)
    p.add_argument("--crossfade-ms", type=float, default=40.0)
    p.add_argument("--search-ms", type=float, default=10.0)
    p.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    asyncio.run(convert(p.parse_args()))


if __name__ == "__main__":
    main()
