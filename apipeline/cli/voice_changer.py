"""``apipeline voice-changer --input IN --output OUT [--pitch 4] [--formant 1.1] [--f0 dio] [--offline]``.

Converts a voice in an audio file with the streaming voice changer DAG (blocks, F0 + WORLD analysis,
conversion, WORLD synthesis, SOLA) and prints the algorithmic latency, per-block compute p50/p99 against
the block deadline, underruns and the real-time factor (``--json``: the same as one JSON object on
stdout). ``--realtime`` paces the source in real time (underruns are only meaningful then);
``--offline`` renders the whole file in one shot with the same settings, for comparison.

Exit codes: 0 ok (warnings, e.g. silent or clipped input, go to stderr); 2 usage or input errors (missing,
truncated or non-audio file, unsupported sample rate, NaN/Inf samples: the output is still written with
silence in their place when streaming); 1 runtime failures.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

PROG = "apipeline voice-changer"
EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
F0_CHOICES = ("dio", "harvest", "fcpe", "crepe")


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("-i", "--input", required=True, help="input audio file (WAV, FLAC, OGG)")
    p.add_argument("-o", "--output", required=True, help="output file (PCM16; format from the suffix)")
    p.add_argument("--pitch", type=float, default=0.0, help="pitch shift in semitones (default 0)")
    p.add_argument("--formant", type=float, default=1.0, help="formant warp ratio, >1 brighter (default 1)")
    p.add_argument("--f0", choices=F0_CHOICES, default="dio", help="F0 estimator (default dio)")
    p.add_argument("--block-ms", type=float, default=35.0, help="block length in ms (default 35)")
    p.add_argument("--crossfade-ms", type=float, default=None, help="SOLA crossfade (default 14.5; 10 free)")
    p.add_argument("--search-ms", type=float, default=None, help="SOLA search window (default 0.5; 15 free)")
    p.add_argument("--lookahead-ms", type=float, default=None, help="look-ahead (default 10; 0 free)")
    p.add_argument("--context-ms", type=float, default=110.0, help="left context, compute only (default 110)")
    p.add_argument("--no-sola", action="store_true", help="plain concatenation of blocks (for comparison)")
    p.add_argument(
        "--no-phase-lock",
        action="store_true",
        help="synthesise each block free-running (for comparison; its defaults are then the free-running "
        "geometry: 10 ms crossfade, 15 ms search, no look-ahead)",
    )
    p.add_argument("--vocoder", choices=("world", "griffin-lim"), default="world")
    p.add_argument(
        "--sample-rate",
        type=int,
        default=None,
        help="processing rate (default: the input's; another rate adds two resamplers' hold-back)",
    )
    p.add_argument("--target-f0-mean", type=float, default=None, help="map F0 to this mean (Hz)")
    p.add_argument("--rms-mix-rate", type=float, default=1.0, help="loudness matching, 1 = off (default)")
    p.add_argument("--silence-db", type=float, default=-60.0, help="level gate in dBFS (default -60)")
    p.add_argument("--vad-gate", action="store_true", help="render blocks Silero VAD calls non-speech silent")
    p.add_argument("--no-vad", action="store_true", help="do not run the VAD at all")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--offline", action="store_true", help="render the whole file in one shot")
    mode.add_argument("--realtime", action="store_true", help="pace the source in real time")
    p.add_argument("--json", action="store_true", help="print the measurements as JSON on stdout")
    p.add_argument(
        "--ray-address",
        default=None,
        metavar="ADDRESS",
        help="run the per-block conversion on Ray actors: local (start Ray here), auto (the cluster "
        "`ray start` runs on this machine), host:port or ray://host:port; re-blocking and SOLA stay here",
    )
    p.add_argument(
        "--degrade",
        choices=("pass", "silence"),
        default="pass",
        help="with --ray-address: a block whose remote call failed is the dry input (pass) or silence",
    )
    from apipeline.models.backends import add_backend_arguments

    add_backend_arguments(p)


def add_parser(subparsers: Any) -> None:
    """Register ``voice-changer`` on the ``apipeline`` command's subparsers."""
    p = subparsers.add_parser(
        "voice-changer",
        help="convert a voice in an audio file (streamed, real-time capable)",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _configure(p)


def _settings(args: argparse.Namespace) -> Any:
    from apipeline.apps.voice_changer import FREE_RUNNING_GEOMETRY, VoiceChangerSettings

    # unset geometry options keep the settings' defaults (the free-running ones with --no-phase-lock)
    geometry: dict[str, Any] = dict(FREE_RUNNING_GEOMETRY) if args.no_phase_lock else {}
    for key in ("crossfade_ms", "search_ms", "lookahead_ms"):
        if getattr(args, key) is not None:
            geometry[key] = getattr(args, key)
    return VoiceChangerSettings(
        pitch=args.pitch,
        formant=args.formant,
        f0=args.f0,
        block_ms=args.block_ms,
        context_ms=args.context_ms,
        phase_lock=not args.no_phase_lock,
        **geometry,
        sola=not args.no_sola,
        vocoder=args.vocoder,
        sample_rate=args.sample_rate,
        target_f0_mean=args.target_f0_mean,
        rms_mix_rate=args.rms_mix_rate,
        silence_db=args.silence_db,
        vad=not args.no_vad,
        vad_gate=args.vad_gate,
    )


def _error(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    """Run the conversion; returns the exit code (see the module docstring)."""
    from apipeline.apps.voice_changer_run import run_file
    from apipeline.errors import ApipelineError, AudioFileError, AudioFormatError

    try:
        settings = _settings(args)
        settings.validate()
    except ValueError as exc:
        _error(str(exc))
        return EXIT_USAGE
    backend = None
    if args.ray_address is not None:
        from apipeline.apps.voice_changer_remote import RemotePlacement
        from apipeline.models.backends import backend_from_options

        backend = RemotePlacement(backend_from_options(args), degrade=args.degrade)
    try:
        result = run_file(
            args.input, args.output, settings, realtime=args.realtime, offline=args.offline, backend=backend
        )
    except (AudioFileError, AudioFormatError) as exc:
        _error(str(exc))
        return EXIT_USAGE
    except ApipelineError as exc:
        _error(f"{type(exc).__name__}: {exc}")
        return EXIT_FAILURE
    except OSError as exc:
        _error(f"cannot write {args.output}: {exc}")
        return EXIT_FAILURE
    summary = result.to_dict()
    summary.update(input=str(args.input), output=str(args.output))
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        _print_text(summary)
    for warning in result.warnings:
        print(f"{PROG}: warning: {warning}", file=sys.stderr)
    for where, message in result.errors:
        _error(f"[{where}] {message}")
    if result.input_errors:
        return EXIT_USAGE
    return EXIT_FAILURE if result.errors else EXIT_OK


def _print_text(s: dict[str, Any]) -> None:
    st = s["settings"]
    print(
        f"{s['input']} ({s['duration_s']:.2f} s, {s['sample_rate']} Hz, {s['channels']} ch) -> {s['output']}"
        f"  [{s['mode']}; f0 {st['f0']}, pitch {st['pitch']:+g}, formant {st['formant']:g}, "
        f"processing at {s['processing_rate']} Hz]"
    )
    r = s["report"]
    if r is None:
        print("algorithmic latency: none (offline: the whole file at once)")
        print(f"compute: {1000 * s['wall_s']:.0f} ms for {s['duration_s']:.2f} s of audio")
        print(f"real-time factor: {s['rtf']:.3f}")
        return
    ok = "ok" if r["compute_p99_ms"] <= r["deadline_ms"] else "OVER the deadline"
    print(
        f"algorithmic latency: {s['latency_ms']:.1f} ms "
        "(block + crossfade + search + look-ahead + resamplers)"
    )
    print(
        f"per-block compute: p50 {r['compute_p50_ms']:.2f} ms, p99 {r['compute_p99_ms']:.2f} ms, "
        f"max {r['compute_max_ms']:.2f} ms; deadline {r['deadline_ms']:.1f} ms per block ({ok})"
    )
    if r["underruns"] is None:
        print(f"underruns: not measured ({r['blocks']} blocks as fast as possible; use --realtime)")
    else:
        print(
            f"underruns: {r['underruns']} of {r['blocks']} blocks "
            f"(turnaround p50 {r['turnaround_p50_ms']:.2f} ms, p99 {r['turnaround_p99_ms']:.2f} ms)"
        )
    print(
        f"real-time factor: {r['rtf']:.3f} (per-block compute / audio); wall {r['wall_rtf']:.3f}, "
        f"process CPU {r['cpu_rtf']:.3f}; {s['blocks_gated']} block(s) gated as silence"
    )
    remote = s.get("remote")
    if remote:
        print(
            f"conversion on {remote['backend']}: {remote['processed']} of {remote['chunks']} blocks "
            f"converted, "
            f"{remote['degraded']} degraded (remote errors {remote['remote_errors']}, overloaded "
            f"{remote['overloaded']}, late {remote['late']}, failed {remote['failed']})"
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Standalone entry point: ``python -m apipeline.cli.voice_changer --input ... --output ...``."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n", 1)[1] if __doc__ else None)
    _configure(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
