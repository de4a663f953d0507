"""``apipeline voice-changer --input IN --output OUT [--pitch 4] [--formant 1.1] [--f0 dio] [--offline]``.

Converts a voice in an audio file with the streaming voice changer DAG (blocks, F0 + WORLD analysis,
conversion, WORLD synthesis, SOLA) and prints the algorithmic latency, per-block compute p50/p99 against
the block deadline, underruns and the real-time factor (``--json``: the same as one JSON object on
stdout). ``--realtime`` paces the source in real time (underruns are only meaningful then);
``--offline`` renders the whole file in one shot with the same settings, for comparison; ``--live``
converts the microphone to the speakers until Ctrl-C (``apipeline devices`` lists the devices).

The output format follows the suffix (.wav, .flac, .ogg, .mp3 where libsndfile has it) and the sample
format the input's (16/24-bit, float) unless ``--subtype``; an unsupported choice, an output that is
the input, a missing folder or an unwritable place are refused before any processing. The file is
written beside the target and renamed into place when complete; Ctrl-C keeps the converted part as a
valid file only where no file existed (and says so), otherwise nothing changes.

Every voice-changer setting has an option (generated from ``VoiceChangerSettings.schema()``: the same
names, defaults and bounds as graph files and served sessions); a value out of bounds, NaN or a crossfade
longer than the block is a usage error.

Exit codes: 0 ok (warnings, e.g. silent, clipped or mostly gated input, go to stderr); 2 usage or input
errors (bad options, missing, truncated or non-audio file, unsupported sample rate or output format,
refused output path, NaN/Inf samples: the output is still written with silence in their place when
streaming); 1 runtime failures (and ``--realtime`` runs with late blocks); 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import Any, NoReturn

PROG = "apipeline voice-changer"
EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
SHORT = {"pitch": "pitch shift", "formant": "formant warp"}
ALIASES = {"sample_rate": "--sample-rate"}


def _option(name: str) -> str:
    return ALIASES.get(name, "--" + name.replace("_", "-"))


def _parse_with(param: Any) -> Any:
    def parse(text: str) -> Any:
        from apipeline.errors import ParameterError

        try:
            return param.parse(text)
        except ParameterError as exc:
            raise argparse.ArgumentTypeError("; ".join(exc.problems)) from None

    parse.__name__ = param.type.__name__
    return parse


def _add_settings(p: argparse.ArgumentParser) -> None:
    """One option per voice-changer setting, from the schema (unset options keep the defaults)."""
    from apipeline.voice_changer.settings import VoiceChangerSettings

    group = p.add_argument_group("voice changer settings (bounds as in graph files and served sessions)")
    for name, param in VoiceChangerSettings.schema().items():
        live = "; live-changeable" if param.live else ""
        text = f"{param.doc} ({param.describe()}; default {param.default}{live})"
        if param.type is bool and not param.nullable:
            group.add_argument(
                _option(name), dest=name, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                help=text,
            )  # fmt: skip
        else:
            metavar = "|".join(map(str, param.choices)) if param.choices else name.upper()
            group.add_argument(
                _option(name), dest=name, type=_parse_with(param), default=argparse.SUPPRESS,
                metavar=metavar, help=text,
            )  # fmt: skip


def _add_run_options(p: argparse.ArgumentParser) -> None:
    """Options of the run itself (files, mode, output, placement): add new ones here."""
    p.add_argument("-i", "--input", default=None, help="input audio file (WAV, FLAC, OGG, MP3...)")
    p.add_argument("-o", "--output", default=None, help="output file (format from the suffix)")
    p.add_argument(
        "--subtype",
        default=None,
        help="output sample format: PCM_16, PCM_24, PCM_32, FLOAT, DOUBLE, VORBIS, OPUS, MPEG_LAYER_III "
        "(default: the input's when the output format can hold it, else the format's own)",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--offline", action="store_true", help="render the whole file in one shot")
    mode.add_argument("--realtime", action="store_true", help="pace the source in real time")
    mode.add_argument(
        "--live", action="store_true", help="microphone -> voice changer -> speakers (Ctrl-C ends)"
    )
    p.add_argument("--input-device", default=None, help="with --live: input device (index or name part)")
    p.add_argument("--output-device", default=None, help="with --live: output device (index or name part)")
    p.add_argument(
        "--live-rate", type=int, default=48000, help="with --live: device sample rate (default 48000)"
    )
    p.add_argument("--duration", type=float, default=None, help="with --live: stop after this many seconds")
    p.add_argument("--json", action="store_true", help="print the measurements as JSON on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
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


def _configure(p: argparse.ArgumentParser) -> None:
    _add_run_options(p)
    _add_settings(p)

    def error(message: str) -> NoReturn:  # one line, exit 2 (argparse would print the whole usage)
        print(f"{PROG}: error: {message} (see --help)", file=sys.stderr)
        sys.exit(EXIT_USAGE)

    setattr(p, "error", error)  # noqa: B010 - an instance override of ArgumentParser.error


def add_parser(subparsers: Any) -> None:
    """Register ``voice-changer`` on the ``apipeline`` command's subparsers."""
    p = subparsers.add_parser(
        "voice-changer",
        help="convert a voice in an audio file or live (streamed, real-time capable)",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _configure(p)


def _settings(args: argparse.Namespace) -> Any:
    """The settings the options ask for; raises ParameterError (cross-field checks)."""
    from apipeline.voice_changer.settings import (
        FREE_RUNNING_GEOMETRY,
        VoiceChangerSettings,
    )

    given = {name: getattr(args, name) for name in VoiceChangerSettings.schema() if hasattr(args, name)}
    if given.get("phase_lock") is False:  # unset stitch options: the free-running geometry
        for key, value in FREE_RUNNING_GEOMETRY.items():
            given.setdefault(key, value)
    return VoiceChangerSettings.from_values(given)


def _error(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    """Run the conversion; returns the exit code (see the module docstring)."""
    from apipeline.errors import (
        ApipelineError,
        AudioFileError,
        AudioFormatError,
        ConfigurationError,
        ParameterError,
    )
    from apipeline.extras import require_extra

    # a missing optional dependency is said (with the extra to install) before any work or report;
    # MissingDependencyError is a ConfigurationError: cli/main.py prints it and exits 2
    require_extra("voice", feature="apipeline voice-changer")
    try:
        settings = _settings(args)
    except ParameterError as exc:
        _error("; ".join(exc.problems))
        return EXIT_USAGE
    neural = str(getattr(args, "f0", None) or "").partition("-")[0]
    if neural in ("fcpe", "crepe"):
        require_extra("torch", modules=("torch", "torch" + neural), feature=f"--f0 {args.f0}")
    backend = None
    if args.ray_address is not None:
        from apipeline.models.backends import backend_from_options
        from apipeline.voice_changer.remote import RemotePlacement

        backend = RemotePlacement(backend_from_options(args), degrade=args.degrade)
    if args.live:
        return _run_live(args, settings, backend)
    if args.input is None or args.output is None:
        _error("--input and --output are required (or --live for the microphone)")
        return EXIT_USAGE
    from apipeline.voice_changer.run import run_file

    if args.realtime and not args.offline and backend is None:
        _warn_if_too_slow(args.input, settings)
    progress = None if args.quiet else _Progress()
    try:
        result = run_file(
            args.input, args.output, settings, realtime=args.realtime, offline=args.offline, backend=backend,
            subtype=args.subtype, progress=progress,
        )  # fmt: skip
    except KeyboardInterrupt as exc:
        message = str(getattr(exc, "outcome_message", "") or "interrupted")
        print(f"\n{PROG}: {message}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (AudioFileError, AudioFormatError, ConfigurationError) as exc:
        _error(str(exc))
        return EXIT_USAGE
    except ApipelineError as exc:
        _error(f"{type(exc).__name__}: {exc}")
        return EXIT_FAILURE
    except OSError as exc:
        _error(f"cannot write {args.output}: {exc}")
        return EXIT_FAILURE
    finally:
        if progress is not None:
            progress.done()
    summary = result.to_dict()
    summary.update(input=str(args.input), output=str(args.output))
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        _print_text(summary)
    return _finish(result)


def _finish(result: Any) -> int:
    for warning in result.warnings:
        print(f"{PROG}: warning: {warning}", file=sys.stderr)
    for where, message in result.errors:
        _error(f"[{where}] {message}")
    if result.input_errors:
        return EXIT_USAGE
    if result.errors or result.late_blocks:
        return EXIT_FAILURE
    return EXIT_OK


def _warn_if_too_slow(path: str, settings: Any) -> None:
    """Before a --realtime run: say when the settings cannot keep real time (measured on 0.3 s of audio)."""
    import soundfile

    from apipeline.errors import ApipelineError
    from apipeline.voice_changer.run import realtime_warning

    try:
        rate = int(soundfile.info(str(path)).samplerate)
        message = realtime_warning(settings, rate)
    except (ApipelineError, RuntimeError, OSError):  # a bad input or rate: run_file reports it properly
        return
    if message:
        print(f"{PROG}: warning: {message}", file=sys.stderr)


def _run_live(args: argparse.Namespace, settings: Any, backend: Any) -> int:
    from apipeline.errors import ApipelineError, ConfigurationError
    from apipeline.voice_changer.live import run_live

    try:
        result = run_live(
            settings, input_device=args.input_device, output_device=args.output_device,
            sample_rate=args.live_rate, duration=args.duration, backend=backend,
        )  # fmt: skip
    except ConfigurationError as exc:
        _error(str(exc))
        return EXIT_USAGE
    except ApipelineError as exc:
        _error(f"{type(exc).__name__}: {exc}")
        return EXIT_FAILURE
    summary = result.to_dict()
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        _print_text({**summary, "input": "microphone", "output": "speakers"})
    return _finish(result)


class _Progress:
    """``converted 12.3 / 600.0 s (2 %)`` on stderr: one refreshed line on a terminal (twice a second),
    else a line every 10 s; the last one always. stdout stays for the report (``--json``)."""

    def __init__(self) -> None:
        self._tty = sys.stderr.isatty()
        self._every = 0.5 if self._tty else 10.0
        self._last = time.monotonic()
        self._shown = False
        self._finished = False

    def __call__(self, done_s: float, total_s: float) -> None:
        now = time.monotonic()
        final = done_s >= total_s
        if self._finished or (now - self._last < self._every and not final):
            return
        self._last = now
        self._finished = final
        pct = min(100.0, 100.0 * done_s / total_s) if total_s else 100.0
        line = f"{PROG}: converted {min(done_s, total_s):.1f} / {total_s:.1f} s ({pct:.0f} %)"
        if self._tty:
            print(f"\r{line}", end="", file=sys.stderr, flush=True)
            self._shown = True
        else:
            print(line, file=sys.stderr, flush=True)

    def done(self) -> None:
        if self._shown:
            print(file=sys.stderr)


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
