"""Entry point of the ``apipeline`` command: subcommands are modules found by name.

Each module in :data:`SUBCOMMANDS` (``apipeline.cli.<name>``), and each entry point of the group
``apipeline.cli`` (a module path), exposes ``add_parser(subparsers) -> None`` and ``run(args) -> int``.
A module that is absent is skipped (``voice_changer`` and ``serve`` are written separately); one that
fails to import still gets a subcommand, which reports the import error when used instead of breaking
every other command.

Exit codes: 0 success; 1 runtime failure; 2 usage or validation error (bad arguments, a graph file that
does not validate); 130 interrupted by Ctrl-C (what was written so far is kept).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence
from importlib import metadata
from types import ModuleType
from typing import Any

from apipeline import __version__
from apipeline.errors import ApipelineError, GraphError

SUBCOMMANDS = ("run", "convert", "graph", "list_cmd", "bench", "voice_changer", "serve", "devices")
ENTRY_POINT_GROUP = "apipeline.cli"
EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def _import(path: str) -> ModuleType | BaseException | None:
    """The module, ``None`` when it does not exist, or the exception its import raised."""
    try:
        return importlib.import_module(path)
    except ModuleNotFoundError as exc:
        if exc.name == path:
            return None
        return exc
    except Exception as exc:
        return exc


def _modules() -> list[tuple[str, ModuleType | BaseException]]:
    found: list[tuple[str, ModuleType | BaseException]] = []
    paths = [f"apipeline.cli.{name}" for name in SUBCOMMANDS]
    paths += [ep.value for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)]
    for path in paths:
        mod = _import(path)
        if mod is not None:
            found.append((path, mod))
    return found


def _broken(path: str, exc: BaseException) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        print(
            f"apipeline: this subcommand is unavailable: importing {path} failed: "
            f"{type(exc).__name__}: {exc}",
            file=sys.stderr,
        )
        return EXIT_FAILURE

    return run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="apipeline",
        description="Run, check and draw apipeline graphs; list processors; run benchmarks.",
        epilog="Exit codes: 0 ok, 1 runtime failure, 2 usage/validation error, 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"apipeline {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for path, mod in _modules():
        before = set(sub.choices)
        if isinstance(mod, BaseException):
            name = path.rsplit(".", 1)[-1].replace("_", "-")
            p = sub.add_parser(name, help=f"(unavailable: {type(mod).__name__})")
            p.set_defaults(_run=_broken(path, mod))
            continue
        try:
            mod.add_parser(sub)
        except Exception as exc:
            print(
                f"apipeline: warning: {path}.add_parser failed: {type(exc).__name__}: {exc}", file=sys.stderr
            )
            continue
        for name in set(sub.choices) - before:
            sub.choices[name].set_defaults(_run=mod.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (the console script exits with it)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=[logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)],
        format="%(levelname)s %(name)s: %(message)s",
    )
    run: Any = getattr(args, "_run", None)
    if run is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(run(args))
    except GraphError as exc:
        print("apipeline: the graph does not validate:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("apipeline: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except ApipelineError as exc:
        print(f"apipeline: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
