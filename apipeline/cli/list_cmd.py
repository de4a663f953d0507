"""``apipeline list [TYPE ...] [--json]``: the registered processor types, parameters and formats."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from apipeline.graph.registry import ProcessorSpec, default_registry


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "list",
        help="list the registered processor types",
        description="List processor types a graph file can use, with their parameters, "
        "formats, ports and latency (built-in types and plug-ins).",
    )
    p.add_argument("types", nargs="*", metavar="TYPE", help="only these types")
    p.add_argument("--json", action="store_true", help="print as JSON")


def _fmt(fmt: Any) -> str:
    return "any (set per instance)" if fmt is None else str(fmt)


def describe(spec: ProcessorSpec) -> list[str]:
    lines = [f"{spec.name}  ({spec.cls.__module__}.{spec.cls.__qualname__})"]
    if spec.summary:
        lines.append(f"    {spec.summary}")
    if spec.usable:
        lines.append(f"    not usable from a file: {spec.usable}")
    lines.append(
        f"    formats: in {_fmt(spec.input_format)}; out {_fmt(spec.output_format)}"
        "  (class defaults; parameters may fix them)"
    )
    if spec.input_ports != ("in",) or spec.output_ports != ("out",):
        lines.append(f"    ports: in {', '.join(spec.input_ports)}; out {', '.join(spec.output_ports)}")
    for p in spec.params.values():
        default = "required" if p.required else f"default {p.default!r}"
        note = "" if p.settable else " [not settable from a file]"
        desc = f" - {p.description}" if p.description else ""
        lines.append(f"    {p.name}: {p.type_name} ({default}){note}{desc}")
    return lines


def run(args: argparse.Namespace) -> int:
    registry = default_registry()
    names = args.types or registry.names()
    unknown = [n for n in names if n not in registry]
    if unknown:
        from apipeline.cli.main import did_you_mean

        known = registry.names()
        words = ", ".join(n + did_you_mean(n, known) for n in unknown)
        print(f"apipeline list: unknown type(s): {words}", file=sys.stderr)
        return 2
    specs = []
    for name in names:
        try:
            specs.append(registry.get(name))
        except KeyError:
            pass
    broken = {k: v for k, v in registry.broken().items() if k in names}
    if args.json:
        print(json.dumps({"types": [s.to_json() for s in specs], "unavailable": broken}, indent=2))
        return 0
    for spec in specs:
        print("\n".join(describe(spec)))
    for name, why in broken.items():
        print(f"{name}  (unavailable: {why})")
    return 0
