"""Entry point of the ``apipeline`` command: subcommands are modules found by name.

Each module in :data:`SUBCOMMANDS` (``apipeline.cli.<name>``), and each entry point of the group
``apipeline.cli`` (a module path), exposes ``add_parser(subparsers) -> None`` and ``run(args) -> int``.
A module that is absent is skipped (``voice_changer`` and ``serve`` are written separately); one that
fails to import still gets a subcommand, which reports the import error when used instead of breaking
every other command.

Exit codes: 0 success; 1 runtime failure; 2 usage or validation error (bad arguments, a graph file that
does not validate, an output that must not or cannot be written: a ``ConfigurationError`` found before
any work); 130 interrupted by Ctrl-C (a partial output is kept only where no file existed before).
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import logging
import re
import sys
import typing
from collections.abc import Callable, Sequence
from importlib import metadata
from types import ModuleType
from typing import Any

from apipeline import __version__
from apipeline.errors import ApipelineError, ConfigurationError, GraphError

SUBCOMMANDS = (
    "run", "convert", "graph", "list_cmd", "bench",
    "voice_changer", "serve", "talking_head", "chat", "devices",
)  # fmt: skip
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


_ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")
_LITERAL = re.compile(r"``([^`]+)``")
_UNRECOGNIZED = re.compile(r"unrecognized arguments: (.*)$")
_CHOICE = re.compile(r"invalid choice: '([^']*)' \(choose from (.*)\)$")


def plain_text(text: str) -> str:
    """Docstring markup made plain for a terminal: ``x`` and :role:`~a.b.C` read as x and C."""
    text = _ROLE.sub(lambda m: m.group(1).rsplit(".", 1)[-1] if "~" in m.group(0) else m.group(1), text)
    return _LITERAL.sub(r"\1", text)


def did_you_mean(word: str, choices: list[str]) -> str:
    """`` (did you mean 'x'?)`` with the closest of ``choices``, or nothing."""
    near = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean {near[0]!r}?)" if near else ""


class Parser(argparse.ArgumentParser):
    """The argument parser of every subcommand (subparsers inherit it): help without docstring markup,
    and a "did you mean" for an unknown option, subcommand or choice."""

    def format_help(self) -> str:
        return plain_text(super().format_help())

    def _options(self) -> list[str]:
        found: list[str] = []
        for action in self._actions:
            found += [o for o in action.option_strings if o.startswith("--")]
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    found += sub._options() if isinstance(sub, Parser) else []
        return found

    def error(self, message: str) -> typing.NoReturn:
        if m := _UNRECOGNIZED.search(message):
            options = self._options()
            words = [w + did_you_mean(w, options) if w.startswith("-") else w for w in m.group(1).split()]
            message = f"unrecognized arguments: {' '.join(words)}"
        elif m := _CHOICE.search(message):
            choices = [c.strip().strip("'") for c in m.group(2).split(",")]
            message += did_you_mean(m.group(1), choices)
        super().error(message)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
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
            _accept_verbose(sub.choices[name])
    return parser


def _accept_verbose(parser: argparse.ArgumentParser) -> None:
    """``-v`` also after the subcommand (``apipeline run g.yaml -v``), where the subcommand has no -v."""
    if "-v" not in parser._option_string_actions:
        parser.add_argument(
            "-v", "--verbose", action="count", default=argparse.SUPPRESS, help="more logging (-vv for debug)"
        )
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _accept_verbose(child)


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
    except ConfigurationError as exc:  # a bad option, parameter or output path: found before any work
        print(f"apipeline: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ApipelineError as exc:
        print(f"apipeline: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
