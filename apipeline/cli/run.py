"""``apipeline run GRAPH``: build a graph and run it once, with progress and a summary.

``--input``/``--output`` set the parameters the graph binds (``bind: {input: src.path, output:
sink.path}``), or else the ``path`` of the graph's only file source / sink. On files the display is a
progress bar over the input's duration; with ``--realtime`` (or a paced source) it is a live line of
end-to-end latency, real-time factor (processing time / audio time) and the queue depths of
asynchronous processors. Ctrl-C cancels the run cleanly: sinks close their files, which stay valid and
hold everything written up to the stop; the exit code is then 130.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from apipeline.errors import GraphError
from apipeline.graph.build import BuiltGraph, build_pipeline
from apipeline.graph.loader import load_graph, read_data
from apipeline.graph.model import Graph
from apipeline.graph.registry import default_registry


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "run",
        help="run a graph file once",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("graph", help="graph file (YAML or JSON, native or modulespack2)")
    add_common_options(p)
    p.add_argument("-i", "--input", help="input file (sets the bound input parameter)")
    p.add_argument("-o", "--output", help="output file (sets the bound output parameter)")
    p.add_argument(
        "--realtime", action="store_true", help="pace sources in real time (sources with 'realtime')"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress display")
    p.add_argument(
        "--ray-address",
        default=None,
        metavar="ADDRESS",
        help="place the graph's model stages on Ray (as 'backend: ray' in the file): local (start Ray "
        "here), auto, host:port or ray://host:port",
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")


def add_common_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NODE.PARAM=VALUE",
        help="override a node parameter (value read as YAML: 4, true, [1, 2], text); repeatable",
    )
    p.add_argument(
        "--auto-convert",
        action="store_true",
        help="insert resampler/channel mixer/sample-type converters where formats differ",
    )


def _parse(path: str) -> Graph:
    from apipeline.graph.loader import parse_graph
    from apipeline.graph.modulespack import is_modulespack, parse_modulespack

    data, lines, file = read_data(path)
    graph, _ = (parse_modulespack if is_modulespack(data) else parse_graph)(data, lines=lines, file=file)
    return graph


def bound_param(graph: Graph, key: str, role: str) -> str:
    """``node.param`` that ``--input``/``--output`` set: ``bind``, else the only source/sink's ``path``."""
    if key in graph.bind:
        return graph.bind[key]
    registry = default_registry()
    found = []
    for node in graph.nodes:
        try:
            spec = registry.get(node.type)
        except KeyError:
            continue
        if spec.role == role and "path" in spec.params:
            found.append(node.id)
    if len(found) != 1:
        what = "no" if not found else f"{len(found)} ({', '.join(found)})"
        raise GraphError(
            [
                f"{graph.file or 'graph'}: --{key} needs one file {role}, the graph has {what}; "
                f"add 'bind: {{{key}: node.param}}' to the graph"
            ]
        )
    return f"{found[0]}.path"


def prepare(graph_path: str, args: argparse.Namespace, input: str | None, output: str | None) -> BuiltGraph:
    """Load, bind ``input``/``output``, validate and build the graph (GraphError lists every problem)."""
    parsed = _parse(graph_path)
    settings: dict[str, Any] = {}
    if input is not None:
        settings[bound_param(parsed, "input", "source")] = input
    if output is not None:
        settings[bound_param(parsed, "output", "sink")] = output
    if getattr(args, "realtime", False):
        registry = default_registry()
        for node in parsed.nodes:
            if node.type in registry and "realtime" in registry.get(node.type).params:
                settings[f"{node.id}.realtime"] = True
    graph = load_graph(graph_path, overrides=args.set, settings=settings, check_formats=False)
    address = getattr(args, "ray_address", None)
    if address is not None:
        graph.backend, graph.ray_address = "ray", address
    return build_pipeline(graph, auto_convert=True if args.auto_convert else None)


def _input_seconds(built: BuiltGraph) -> float | None:
    total = 0.0
    for proc in built.processors.values():
        path, rate = getattr(proc, "path", None), getattr(proc, "sample_rate", None)
        if hasattr(proc, "frames_emitted") and path is not None and rate:
            import soundfile

            total += soundfile.info(str(path)).frames / rate
    return total or None


def _emitted_seconds(built: BuiltGraph) -> float:
    return sum(
        getattr(p, "frames_emitted") / getattr(p, "sample_rate")  # noqa: B009 - duck-typed sources
        for p in built.processors.values()
        if hasattr(p, "frames_emitted") and getattr(p, "sample_rate", None)
    )


def _compute_seconds(built: BuiltGraph) -> float:
    return sum(p.metrics.total_ns for p in built.pipeline.walk() if p.metrics is not None) / 1e9


def _queues(built: BuiltGraph) -> dict[str, int]:
    from apipeline.processors.async_frame_processor import AsyncFrameProcessor

    return {
        p.name: p.queue_statistics().depth
        for p in built.pipeline.walk()
        if isinstance(p, AsyncFrameProcessor)
    }


def live_line(built: BuiltGraph, task: Any, wall: float, realtime: bool) -> str:
    audio = _emitted_seconds(built)
    parts = []
    if realtime:
        lat = task.latency_percentiles()
        if lat["count"]:
            parts.append(f"latency p50 {lat['p50_ms']:.0f} ms p99 {lat['p99_ms']:.0f} ms")
    if audio > 0:
        parts.append(f"rtf {_compute_seconds(built) / audio:.3f}")
        if not realtime and wall > 0:
            parts.append(f"speed {audio / wall:.1f}x")
    queues = _queues(built)
    if queues:
        parts.append("queues " + " ".join(f"{k}={v}" for k, v in queues.items()))
    return "  ".join(parts)


async def run_built(
    built: BuiltGraph, *, progress: bool, realtime: bool, handle_sigint: bool = True
) -> dict[str, Any]:
    """Run a built graph to its end (or Ctrl-C); return the summary."""
    from apipeline.cli.progress import Progress
    from apipeline.pipeline import PipelineParams, PipelineRunner, PipelineTask

    realtime = realtime or any(getattr(p, "realtime", False) for p in built.processors.values())
    for proc in built.processors.values():
        if hasattr(proc, "passthrough") and hasattr(proc, "write_frame"):
            proc.passthrough = True  # sinks hand frames on to the task, which measures end-to-end latency
    task = PipelineTask(
        built.pipeline, PipelineParams(enable_metrics=True, metrics_interval_s=5.0), name=built.graph.name
    )
    runner = PipelineRunner(handle_sigint=handle_sigint)
    total = None if realtime else _input_seconds(built)
    t0 = time.monotonic()
    with Progress(built.graph.name, total, enabled=progress) as bar:

        async def monitor() -> None:
            while True:
                await asyncio.sleep(0.25)
                bar.update(_emitted_seconds(built), live_line(built, task, time.monotonic() - t0, realtime))

        mon = asyncio.get_running_loop().create_task(monitor())
        try:
            await runner.run(task)
        finally:
            mon.cancel()
            try:
                await mon
            except asyncio.CancelledError:
                pass
            await close_backends(built)
    wall = time.monotonic() - t0
    audio = _emitted_seconds(built)
    outputs = {
        p.name: {"path": str(p.path), "frames": p.frames_written}
        for p in built.processors.values()
        if hasattr(p, "frames_written") and hasattr(p, "path")
    }
    status = "interrupted" if runner.signalled else "failed" if task.errors else "ok"
    return {
        "graph": built.graph.name,
        "status": status,
        "errors": [e.error for e in task.errors],
        "timeouts": list(task.timeouts),
        "audio_s": round(audio, 4),
        "wall_s": round(wall, 4),
        "rtf": round(_compute_seconds(built) / audio, 4) if audio else None,
        "algorithmic_latency_ms": round(1000 * built.latency, 2),
        "latency_path": [{"processor": n, "ms": round(1000 * x, 2)} for n, x in built.latency_path()],
        "end_to_end_latency_ms": task.latency_percentiles() if realtime else None,
        "inserted_converters": list(built.inserted),
        "outputs": outputs,
    }


async def close_backends(built: BuiltGraph) -> None:
    """Close what model stages opened (registries, Ray actors and instances), even after a failed run.

    Stages that hold a backend have an ``aclose()`` coroutine method; each is idempotent.
    """
    for proc in built.pipeline.walk():
        close = getattr(proc, "aclose", None)
        if close is not None and asyncio.iscoroutinefunction(close):
            await close()


def print_summary(summary: dict[str, Any]) -> None:
    print(
        f"{summary['graph']}: {summary['status']}: {summary['audio_s']:.2f} s of audio "
        f"in {summary['wall_s']:.2f} s"
        f" (rtf {summary['rtf'] if summary['rtf'] is not None else '-'})"
    )
    path = ", ".join(f"{x['processor']} {x['ms']:.1f} ms" for x in summary["latency_path"]) or "none declared"
    print(f"algorithmic latency {summary['algorithmic_latency_ms']:.1f} ms ({path})")
    if summary["inserted_converters"]:
        print(f"inserted converters: {', '.join(summary['inserted_converters'])}")
    for name, out in summary["outputs"].items():
        print(f"{name}: wrote {out['frames']} frames to {out['path']}")


def run(args: argparse.Namespace) -> int:
    if not Path(args.graph).is_file():
        print(f"apipeline run: {args.graph}: no such graph file", file=sys.stderr)
        return 2
    built = prepare(args.graph, args, args.input, args.output)
    summary = asyncio.run(
        run_built(built, progress=not (args.no_progress or args.json), realtime=args.realtime)
    )
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print_summary(summary)
    for error in summary["errors"]:
        print(f"apipeline run: error: {error}", file=sys.stderr)
    if summary["status"] == "interrupted":
        print("apipeline run: interrupted; output kept up to the stop", file=sys.stderr)
        return 130
    return 1 if summary["status"] == "failed" else 0
