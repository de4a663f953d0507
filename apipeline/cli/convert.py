"""``apipeline convert GRAPH INPUT_DIR OUTPUT_DIR [--jobs N]``: run a graph on every audio file of a folder.

Each input file (``--pattern``, recursive) is converted in a worker process to the same relative path
under OUTPUT_DIR (suffix from ``--ext``, default: the input's). Before any input is read, the graph is
validated once and every output is checked: none may be an input (also through links) and OUTPUT_DIR
must be writable (it is created, with the sub-folders that mirror INPUT_DIR, only if its parent
exists). Each output is written beside its target and renamed into place when complete, so a file
that fails leaves no output and never touches an existing one. One file failing does not stop the
others; the summary lists the converted and the failed files with their reason and the exit code is 1
if any failed. Ctrl-C stops handing out files, waits for those in flight and exits 130.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".aiff", ".aif")


def add_parser(subparsers: Any) -> None:
    from apipeline.cli.run import add_common_options

    p = subparsers.add_parser(
        "convert",
        help="run a graph on every audio file of a folder",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
    )
    p.add_argument("graph")
    p.add_argument("input_dir")
    p.add_argument("output_dir")
    p.add_argument(
        "-j",
        "--jobs",
        type=int,
        default=max(1, multiprocessing.cpu_count()),
        help="worker processes (default: CPU count)",
    )
    p.add_argument(
        "--pattern", default="*", help="glob of input files, recursive (default: every audio file)"
    )
    p.add_argument("--ext", help="output suffix, e.g. .flac (default: the input's)")
    add_common_options(p)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")


def convert_one(graph: str, sets: list[str], auto_convert: bool, src: str, dst: str) -> dict[str, Any]:
    """Worker: run ``graph`` from ``src`` to ``dst``; never raises (failures are reported)."""
    from apipeline.cli.run import prepare, run_built
    from apipeline.errors import GraphError

    t0 = time.monotonic()
    args = argparse.Namespace(set=sets, auto_convert=auto_convert, realtime=False)
    try:
        Path(dst).parent.mkdir(exist_ok=True)  # a sub-folder of OUTPUT_DIR (created in order)
        built = prepare(graph, args, src, dst)
        summary = asyncio.run(run_built(built, progress=False, realtime=False, handle_sigint=False))
        ok = summary["status"] == "ok"
        error = "; ".join(summary["errors"]) if not ok else None
        audio = summary["audio_s"]
    except GraphError as exc:
        ok, error, audio = False, "; ".join(exc.problems), 0.0
    except Exception as exc:
        ok, error, audio = False, f"{type(exc).__name__}: {exc}", 0.0
    return {
        "input": src,
        "output": dst,
        "ok": ok,
        "error": error,
        "audio_s": audio,
        "wall_s": round(time.monotonic() - t0, 3),
    }


def _inputs(root: Path, pattern: str, exclude: Path) -> list[Path]:
    """Audio files under ``root`` matching ``pattern``, sorted; none under ``exclude`` (the outputs)."""
    ex = exclude.resolve()
    return sorted(
        p
        for p in root.rglob(pattern)
        if p.is_file()
        and p.suffix.lower() in AUDIO_SUFFIXES
        and ".partial-" not in p.name
        and (ex == root.resolve() or not p.resolve().is_relative_to(ex))
    )


def check_jobs(jobs: list[tuple[str, str]], out_dir: Path) -> bool:
    """Check every output before any work (OutputPathError); return whether OUTPUT_DIR must be made."""
    from apipeline.errors import OutputPathError
    from apipeline.outputs import check_output_path

    make = not out_dir.exists()
    if make:
        check_output_path(out_dir, what="output folder")  # its parent exists and is writable
    elif not out_dir.is_dir():
        raise OutputPathError(f"output folder {str(out_dir)!r} is not a directory")
    else:
        check_output_path(out_dir / ".apipeline-convert", what="output folder")
    inodes: dict[tuple[int, int], str] = {}
    for src, _ in jobs:
        st = Path(src).stat()
        inodes[(st.st_dev, st.st_ino)] = src
    for _, dst in jobs:
        try:
            st = Path(dst).stat()
        except OSError:
            continue
        if (st.st_dev, st.st_ino) in inodes:
            raise OutputPathError(
                f"output {dst!r} is the input {inodes[(st.st_dev, st.st_ino)]!r}: refusing to overwrite "
                "it (choose another OUTPUT_DIR or --ext)"
            )
        if Path(dst).is_dir():
            raise OutputPathError(f"output {dst!r} is a directory, expected a file path")
    return make


def run(args: argparse.Namespace) -> int:
    from apipeline.cli.progress import Progress
    from apipeline.cli.run import bound_param, load

    in_dir, out_dir = Path(args.input_dir), Path(args.output_dir)
    if not Path(args.graph).is_file():
        print(f"apipeline convert: {args.graph}: no such graph file", file=sys.stderr)
        return 2
    if not in_dir.is_dir():
        print(f"apipeline convert: {in_dir}: not a directory", file=sys.stderr)
        return 2
    if args.jobs < 1:
        print(f"apipeline convert: --jobs must be >= 1, got {args.jobs}", file=sys.stderr)
        return 2
    # validate once, in this process, without reading an input: a bad graph fails fast with exit code 2
    graph = load(args.graph, args, None, None)
    bound_param(graph, "input", "source")
    bound_param(graph, "output", "sink")
    files = _inputs(in_dir, args.pattern, out_dir)
    if not files:
        print(f"apipeline convert: no audio files matching {args.pattern!r} under {in_dir}", file=sys.stderr)
        return 2
    jobs = [(str(f), str((out_dir / f.relative_to(in_dir)).with_suffix(args.ext or f.suffix))) for f in files]
    made = check_jobs(jobs, out_dir)
    out_dir.mkdir(exist_ok=True)
    for folder in sorted({Path(dst).parent for _, dst in jobs}):
        folder.mkdir(parents=True, exist_ok=True)  # inside OUTPUT_DIR: mirrors INPUT_DIR
    results: list[dict[str, Any]] = []
    t0 = time.monotonic()
    interrupted = False
    ctx = multiprocessing.get_context("spawn")
    with (
        Progress("convert", len(jobs), enabled=not (args.no_progress or args.json), unit="files") as bar,
        ProcessPoolExecutor(max_workers=min(args.jobs, len(jobs)), mp_context=ctx) as pool,
    ):
        pending: set[Future[dict[str, Any]]] = {
            pool.submit(convert_one, args.graph, args.set, args.auto_convert, src, dst) for src, dst in jobs
        }
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                results.extend(f.result() for f in done)
                failed = sum(not r["ok"] for r in results)
                bar.update(len(results), f"{failed} failed" if failed else "")
        except KeyboardInterrupt:
            interrupted = True
            for f in pending:
                f.cancel()
    if made and not any(out_dir.rglob("*.*")):
        import shutil

        shutil.rmtree(out_dir, ignore_errors=True)  # nothing converted: leave no trace
    failures = [r for r in results if not r["ok"]]
    summary = {
        "files": len(jobs),
        "converted": len(results) - len(failures),
        "failed": len(failures),
        "interrupted": interrupted,
        "wall_s": round(time.monotonic() - t0, 3),
        "audio_s": round(sum(r["audio_s"] for r in results), 3),
        "failures": failures,
    }
    if args.json:
        print(json.dumps({**summary, "results": sorted(results, key=lambda r: r["input"])}, indent=2))
    else:
        print(
            f"converted {summary['converted']}/{len(jobs)} files ({summary['audio_s']:.1f} s of audio) "
            f"in {summary['wall_s']:.1f} s with {args.jobs} job(s); {len(failures)} failed"
        )
        for r in sorted(results, key=lambda r: r["input"]):
            if r["ok"]:
                print(f"  ok     {r['input']} -> {r['output']}")
        for r in sorted(failures, key=lambda r: r["input"]):
            print(f"  FAILED {r['input']}: {r['error']}")
    if interrupted:
        return 130
    return 1 if failures else 0
