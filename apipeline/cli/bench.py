"""``apipeline bench [NAME ...]``: run the benchmark scripts and print a table.

The scripts live in ``benchmarks/`` of a source checkout (they are not installed with the package):
``--dir`` names the folder, else ``./benchmarks`` or the one beside the installed package is used. Each
script runs in its own process (``python benchmarks/NAME.py ARGS``) with a time limit; its own report is
printed as it finishes, then a table of every script's status and wall time. Exit code 1 if any failed.

A script that needs arguments declares its default ones in a comment line
``# apipeline-bench-args: --framework apipeline`` (read with shell quoting); ``--arg`` values follow them.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "bench",
        help="run the benchmarks in benchmarks/ and print a table",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="benchmarks to run (default: all)")
    p.add_argument("--dir", help="the benchmarks folder")
    p.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds allowed per benchmark (default 600)")
    p.add_argument(
        "--arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument passed to every script (repeatable), e.g. --arg=--frames --arg=2000",
    )
    p.add_argument("--json", action="store_true", help="print results as JSON (outputs included)")


def find_dir(explicit: str | None) -> Path | None:
    if explicit:
        return Path(explicit)
    import apipeline

    for candidate in (
        Path.cwd() / "benchmarks",
        Path(apipeline.__file__).resolve().parents[1] / "benchmarks",
    ):
        if candidate.is_dir():
            return candidate
    return None


def scripts(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.glob("*.py")) if not p.name.startswith("_")}


ARGS_MARK = "# apipeline-bench-args:"


def declared_args(script: Path) -> list[str]:
    """The default arguments a benchmark script declares (``# apipeline-bench-args: ...``), or none."""
    for line in script.read_text(encoding="utf-8").splitlines():
        if line.startswith(ARGS_MARK):
            return shlex.split(line[len(ARGS_MARK) :])
    return []


def run(args: argparse.Namespace) -> int:
    folder = find_dir(args.dir)
    if folder is None or not folder.is_dir():
        print(
            "apipeline bench: no benchmarks folder (run from a source checkout or pass --dir)",
            file=sys.stderr,
        )
        return 2
    available = scripts(folder)
    if args.list:
        for name, path in available.items():
            print(f"{name}\t{path}")
        return 0
    unknown = [n for n in args.names if n not in available]
    if unknown:
        print(
            f"apipeline bench: unknown benchmark(s) {', '.join(unknown)}; available: {', '.join(available)}",
            file=sys.stderr,
        )
        return 2
    results = []
    for name in args.names or list(available):
        t0 = time.monotonic()
        try:
            proc = subprocess.run(
                [sys.executable, str(available[name]), *declared_args(available[name]), *args.arg],
                capture_output=True,
                text=True,
                timeout=args.timeout,
                cwd=folder.parent,
                check=False,
            )
            status = "ok" if proc.returncode == 0 else f"exit {proc.returncode}"
            output = proc.stdout + (proc.stderr if proc.returncode else "")
        except subprocess.TimeoutExpired as exc:
            status, output = (
                f"timeout {args.timeout:.0f} s",
                (exc.stdout or b"").decode(errors="replace")
                if isinstance(exc.stdout, bytes)
                else (exc.stdout or ""),
            )
        results.append(
            {"name": name, "status": status, "wall_s": round(time.monotonic() - t0, 2), "output": output}
        )
        if not args.json:
            print(f"== {name} ({status}, {results[-1]['wall_s']:.1f} s)")
            print(output.rstrip())
            print()
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        width = max(len(r["name"]) for r in results)
        print(f"{'benchmark':<{width}}  {'status':<14}{'wall s':>8}")
        for r in results:
            print(f"{r['name']:<{width}}  {r['status']:<14}{r['wall_s']:>8.1f}")
    return 0 if all(r["status"] == "ok" for r in results) else 1
