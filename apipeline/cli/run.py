"""``apipeline run GRAPH``: build a graph and run it once, with progress and a summary.

``--input``/``--output`` set the parameters the graph binds (``bind: {input: src.path, output:
sink.path}``), or else the ``path`` of the graph's only file source / sink. On files the display is a
progress bar over the input's duration; with ``--realtime`` (or a paced source) it is a live line of
end-to-end latency, real-time factor (processing time / audio time) and the queue depths of
asynchronous processors.

Outputs follow the one rule of :mod:`apipeline.outputs`: every file sink's path is checked before any
work (not an input, also through links; its folder exists and is writable; folders are never created),
the file is written beside the target and renamed into place when the run ends well; a failed run
leaves no output and never touches an existing file. Ctrl-C cancels the run cleanly and exits 130: the
sinks close their files, and a partial output is kept (valid, everything up to the stop) only where no
file existed before; the command says which.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from apipeline.errors import GraphError, OutputPathError
from apipeline.graph.build import BuiltGraph, build_pipeline
from apipeline.graph.loader import load_graph, read_data
from apipeline.graph.model import Graph
from apipeline.graph.registry import default_registry
from apipeline.outputs import AtomicOutput, check_output_path


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


def file_paths(graph: Graph) -> tuple[dict[str, str], list[str]]:
    """(file sink node id -> output path, the files the graph reads), from the graph's parameters.

    Inputs are every parameter of a node other than a sink that names an existing file (sources'
    ``path`` and model files alike), so no output can overwrite anything the graph reads.
    """
    registry = default_registry()
    outputs: dict[str, str] = {}
    inputs: list[str] = []
    for node in graph.nodes:
        spec = registry.get(node.type) if node.type in registry else None
        if spec is not None and spec.role == "sink" and "path" in spec.params:
            path = node.params.get("path", spec.params["path"].default)
            if path is not None:
                outputs[node.id] = str(path)
            continue
        for value in node.params.values():
            if isinstance(value, (str, Path)) and str(value) and Path(value).is_file():
                inputs.append(str(value))
    return outputs, inputs


def check_outputs(graph: Graph) -> None:
    """Every file output of ``graph`` may be written: checked before any work (OutputPathError)."""
    outputs, inputs = file_paths(graph)
    seen: list[str] = []
    for node_id, path in outputs.items():
        check_output_path(path, inputs=inputs, what=f"output of {node_id!r}")
        for other in seen:
            if Path(other).resolve() == Path(path).resolve():
                raise OutputPathError(f"two sinks write the same file {path!r}")
        seen.append(path)


def load(graph_path: str, args: argparse.Namespace, input: str | None, output: str | None) -> Graph:
    """Load, bind ``input``/``output`` and validate the graph without creating a processor or reading
    an input (GraphError lists every problem)."""
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
    return graph


def prepare(graph_path: str, args: argparse.Namespace, input: str | None, output: str | None) -> BuiltGraph:
    """Load and validate the graph, check its outputs (before any work), then build it."""
    graph = load(graph_path, args, input, output)
    check_outputs(graph)
    return build_pipeline(graph, auto_convert=True if args.auto_convert else None)


def _validate_audio(path: Path) -> None:
    import soundfile

    soundfile.info(str(path))


def open_outputs(built: BuiltGraph) -> dict[str, AtomicOutput]:
    """Point every file sink at a temporary file beside its target (checked first); see finish."""
    outputs, inputs = file_paths(built.graph)
    opened: dict[str, AtomicOutput] = {}
    try:
        for node_id, path in outputs.items():
            proc = built.processors.get(node_id)
            if proc is None or not hasattr(proc, "path"):
                continue
            atomic = AtomicOutput(path, inputs=inputs, validate=_validate_audio)
            proc.path = atomic.path  # type: ignore[attr-defined]
            opened[node_id] = atomic
    except BaseException:
        for atomic in opened.values():
            atomic.finish("failed")
        raise
    return opened


def finish_outputs(built: BuiltGraph, opened: dict[str, AtomicOutput], status: str) -> list[str]:
    """Rename, keep or drop each output by the run's ``status``; give the sinks back their paths.

    Returns what the user must be told (a kept partial file, an existing file left unchanged).
    """
    notes = []
    for node_id, atomic in opened.items():
        proc = built.processors[node_id]
        outcome = atomic.finish(status if status in ("ok", "interrupted") else "failed")  # type: ignore[arg-type]
        proc.path = atomic.final  # type: ignore[attr-defined]
        if status == "interrupted":
            if outcome == "kept_partial":
                notes.append(f"output kept up to the stop in {atomic.final}")
            elif atomic.message:
                notes.append(atomic.message.removeprefix("interrupted: "))
        elif status != "ok" and atomic.final.exists():
            notes.append(f"{atomic.final} was left unchanged")
    return notes


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
    opened = open_outputs(built)
    status = "failed"
    t0 = time.monotonic()
    try:
        with Progress(built.graph.name, total, enabled=progress) as bar:

            async def monitor() -> None:
                while True:
                    await asyncio.sleep(0.25)
                    bar.update(
                        _emitted_seconds(built), live_line(built, task, time.monotonic() - t0, realtime)
                    )

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
        status = "interrupted" if runner.signalled else "failed" if task.errors else "ok"
    except (KeyboardInterrupt, asyncio.CancelledError):
        status = "interrupted"
        raise
    finally:
        notes = finish_outputs(built, opened, status)
    wall = time.monotonic() - t0
    audio = _emitted_seconds(built)
    outputs = {
        p.name: {"path": str(p.path), "frames": p.frames_written}
        for p in built.processors.values()
        if hasattr(p, "frames_written") and hasattr(p, "path")
    }
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
        "notes": notes,
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
    for note in summary["notes"]:
        print(f"apipeline run: {summary['status']}; {note}", file=sys.stderr)
    if summary["status"] == "interrupted":
        return 130
    return 1 if summary["status"] == "failed" else 0
