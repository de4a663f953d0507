"""``apipeline graph show|check|schema``: draw a graph, validate it, print the format's JSON Schema.

* ``show GRAPH [--format dot|mermaid|yaml|json|png|svg] [-o FILE] [--resolved]``: the drawing (or the
  native file, which converts a modulespack2 file); ``--resolved`` builds the graph first, so the
  converters ``auto_convert`` inserts and the lowered structure are shown.
* ``check GRAPH [--set ...] [--json]``: every problem with its place (exit 2), or the latency report.
* ``schema [-o FILE]``: the JSON Schema of graph files for the registered types.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from apipeline.errors import GraphError, MissingDependencyError, RenderError
from apipeline.graph.build import build_pipeline
from apipeline.graph.draw import render, to_dot, to_mermaid
from apipeline.graph.loader import dump_graph, load_graph
from apipeline.graph.schema import schema_text
from apipeline.outputs import AtomicOutput, check_output_path

FORMATS = ("dot", "mermaid", "yaml", "json", "png", "svg")


def add_parser(subparsers: Any) -> None:
    from apipeline.cli.run import add_common_options

    p = subparsers.add_parser(
        "graph",
        help="draw, check or describe graph files",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="graph_command", metavar="ACTION", required=True)
    show = sub.add_parser(
        "show", help="draw a graph (DOT, Mermaid, PNG/SVG) or print it in the native format"
    )
    show.add_argument("graph")
    show.add_argument(
        "-f",
        "--format",
        choices=FORMATS,
        default=None,
        help="output format (default: from -o's extension, else dot)",
    )
    show.add_argument("-o", "--output", help="write to this file instead of stdout")
    show.add_argument("--resolved", action="store_true", help="build first: show inserted converters")
    add_common_options(show)
    check = sub.add_parser("check", help="validate a graph: every problem with its place in the file")
    check.add_argument("graph")
    check.add_argument("--json", action="store_true", help="print the result as JSON")
    add_common_options(check)
    schema = sub.add_parser("schema", help="print the JSON Schema of graph files")
    schema.add_argument("-o", "--output", help="write to this file instead of stdout")


def _format(args: argparse.Namespace) -> str:
    if args.format:
        return str(args.format)
    suffix = Path(args.output).suffix.lstrip(".").lower() if args.output else ""
    return {"mmd": "mermaid", "yml": "yaml", "gv": "dot"}.get(suffix, suffix if suffix in FORMATS else "dot")


def write_output(path: str, data: bytes, inputs: tuple[str, ...] = ()) -> None:
    """Write ``data`` to ``path`` by the one output rule (checked, written beside, renamed)."""
    with AtomicOutput(path, inputs=inputs) as out:
        out.path.write_bytes(data)


def _show(args: argparse.Namespace) -> int:
    if args.output:
        check_output_path(args.output, inputs=[args.graph])  # before any work
    graph = load_graph(args.graph, overrides=args.set, check_formats=False)
    if args.resolved:
        graph = build_pipeline(graph, auto_convert=True if args.auto_convert else None).graph
    fmt = _format(args)
    if fmt in ("png", "svg"):
        try:
            data = render(graph, fmt)
        except (MissingDependencyError, RenderError) as exc:
            print(f"apipeline graph show: {exc}", file=sys.stderr)
            return 1
        if args.output:
            write_output(args.output, data, (args.graph,))
        elif fmt == "svg":
            sys.stdout.write(data.decode())
        else:
            print("apipeline graph show: PNG output needs -o FILE", file=sys.stderr)
            return 2
        return 0
    text = (
        {"dot": to_dot, "mermaid": to_mermaid}[fmt](graph)
        if fmt in ("dot", "mermaid")
        else dump_graph(graph, fmt=fmt)
    )
    if args.output:
        write_output(args.output, text.encode("utf-8"), (args.graph,))
    else:
        sys.stdout.write(text)
    return 0


def _check(args: argparse.Namespace) -> int:
    try:
        graph = load_graph(args.graph, overrides=args.set, check_formats=False)
        built = build_pipeline(graph, auto_convert=True if args.auto_convert else None)
    except GraphError as exc:
        if args.json:
            print(json.dumps({"graph": args.graph, "ok": False, "problems": exc.problems}, indent=2))
        else:
            print(f"{args.graph}: {len(exc.problems)} problem(s):", file=sys.stderr)
            for problem in exc.problems:
                print(f"  {problem}", file=sys.stderr)
        return 2
    report = {
        "graph": args.graph,
        "ok": True,
        "nodes": len(built.graph.nodes),
        "inserted_converters": built.inserted,
        "algorithmic_latency_ms": round(1000 * built.latency, 2),
        "latency_path": [{"processor": n, "ms": round(1000 * x, 2)} for n, x in built.latency_path()],
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(
            f"{args.graph}: ok ({report['nodes']} nodes, "
            f"algorithmic latency {report['algorithmic_latency_ms']} ms)"
        )
        if built.inserted:
            print(f"  converters inserted: {', '.join(built.inserted)}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.graph_command == "schema":
        if args.output:
            check_output_path(args.output)
        text = schema_text()
        if args.output:
            write_output(args.output, text.encode("utf-8"))
        else:
            sys.stdout.write(text)
        return 0
    if not Path(args.graph).is_file():
        print(f"apipeline graph {args.graph_command}: {args.graph}: no such graph file", file=sys.stderr)
        return 2
    return _show(args) if args.graph_command == "show" else _check(args)
