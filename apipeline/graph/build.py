"""From a graph model to a runnable pipeline: instantiate, lower, negotiate formats, assemble.

:func:`build_pipeline` validates the graph, creates one processor per node (named by the node id),
lowers ``links`` to a flow tree when the graph is a DAG, checks every edge's formats — inserting
converter nodes when ``auto_convert`` is on, so they appear in the graph it returns and in its drawing
— and assembles :class:`~apipeline.pipeline.Pipeline` / ``ParallelPipeline`` / ``SyncParallelPipeline``
objects. Every problem found on the way is collected and raised as one
:class:`~apipeline.errors.GraphError`.
"""

from __future__ import annotations

import copy
import itertools
import sys
from dataclasses import dataclass, field
from typing import Any

from apipeline.audio.format import AudioFormat
from apipeline.errors import GraphError, LinkError, UnknownNameError
from apipeline.graph.lower import LoweringError, lower_links
from apipeline.graph.model import Branches, Chain, Graph, Group, Link, Node, Problem, flow_edges, walk_flow
from apipeline.graph.registry import Registry, default_registry
from apipeline.graph.validate import checked_params, node_ports, validate_graph
from apipeline.pipeline import negotiation
from apipeline.pipeline.negotiation import converter_specs, latency_path, link_message, output_of
from apipeline.processors.frame_processor import FrameProcessor


@dataclass
class BuiltGraph:
    """A built graph: the runnable root, its processors by node id, and what negotiation added."""

    graph: Graph
    pipeline: FrameProcessor
    processors: dict[str, FrameProcessor]
    flow: Chain
    inserted: list[str] = field(default_factory=list)
    formats: dict[str, AudioFormat | None] = field(default_factory=dict)

    @property
    def latency(self) -> float:
        """Algorithmic latency (s) along the slowest path, known before the run."""
        return sum(x for _, x in latency_path(self.pipeline))

    def latency_path(self) -> list[tuple[str, float]]:
        return latency_path(self.pipeline)


def resolve_flow(graph: Graph, registry: Registry) -> Chain:
    """The graph's flow tree, lowering ``links`` when it is a DAG (raises LoweringError)."""
    flow = graph.effective_flow()
    if flow is not None:
        return flow
    inputs = {n.id: node_ports(n, registry)[0] for n in graph.nodes}
    return lower_links(graph.node_ids(), graph.links or [], join=graph.join, input_ports=inputs)


def instantiate(graph: Graph, registry: Registry) -> tuple[dict[str, FrameProcessor], list[Problem]]:
    """One processor per node; constructor failures become problems at the node's place.

    With ``backend: ray`` a node whose type takes ``ray_address`` and leaves it unset gets the graph's
    (``local`` when the graph names none).
    """
    procs: dict[str, FrameProcessor] = {}
    problems: list[Problem] = []
    for node in graph.nodes:
        spec = registry.get(node.type)
        params, _ = checked_params(graph, node, spec)
        if graph.backend == "ray" and "ray_address" in spec.params and params.get("ray_address") is None:
            params["ray_address"] = graph.ray_address or "local"  # the graph places its model stages
            if graph.ray and "ray_options" in spec.params and params.get("ray_options") is None:
                params["ray_options"] = dict(graph.ray)
        try:
            procs[node.id] = spec.cls(**params, name=node.id)
        except Exception as exc:
            hint = ""
            if isinstance(exc, ModuleNotFoundError) and exc.name:
                from apipeline.extras import install_hint

                hint = f" ({install_hint(exc.name)})"  # the extra to install, said before any work
            problems.append(
                graph.problem(
                    node.place, f"cannot create {node.type} {node.id!r}: {type(exc).__name__}: {exc}{hint}"
                )
            )
    return procs, problems


def negotiate(
    graph: Graph, flow: Chain, procs: dict[str, FrameProcessor], registry: Registry, *, auto_convert: bool
) -> tuple[list[Problem], list[str], dict[str, AudioFormat | None]]:
    """Check the format of every edge; insert converter nodes when ``auto_convert``.

    Returns (problems, inserted node ids, format leaving each node). Mutates ``graph``, ``flow`` and
    ``procs`` when it inserts.
    """
    inserted: list[str] = []
    places = {node_id: place for node_id, place in walk_flow(flow)}
    link_places = {(x.src, x.dst): x.place for x in graph.links or []}
    while True:
        edges = flow_edges(flow)
        preds: dict[str, list[str]] = {}
        for e in edges:
            preds.setdefault(e.dst, []).append(e.src)
        formats: dict[str, AudioFormat | None] = {}
        joined: dict[str, AudioFormat | None] = {}
        for node_id, _ in walk_flow(flow):
            ins = [formats.get(u) for u in preds.get(node_id, [])]
            joined[node_id] = fmt_in = ins[0] if ins and all(f == ins[0] for f in ins) else None
            formats[node_id] = output_of(procs[node_id], fmt_in)
        bad = []
        for e in edges:
            produced, accepted = formats[e.src], procs[e.dst].input_format
            if produced is not None and accepted is not None and not produced.is_compatible(accepted):
                bad.append((e, produced, accepted))
        if not bad:
            return [], inserted, formats
        if not auto_convert:
            problems = []
            for e, produced, accepted in bad:
                place = link_places.get((e.src, e.dst)) or places.get(e.dst, "flow")
                problems.append(
                    graph.problem(
                        place,
                        "incompatible formats: "
                        + link_message(e.src, produced, e.dst, accepted)
                        + "; set auto_convert: true to insert converters",
                    )
                )
            return problems, inserted, formats
        e, produced, accepted = bad[0]
        try:
            specs = converter_specs(produced, accepted)
        except LinkError as exc:
            place = link_places.get((e.src, e.dst)) or places.get(e.dst, "flow")
            return (
                [graph.problem(place, f"{link_message(e.src, produced, e.dst, accepted)}: {exc}")],
                inserted,
                formats,
            )
        ports = {x.dst_port for x in graph.links or [] if x.dst == e.dst}
        # branches that join with one format get one converter after the join, not one per branch:
        # each branch passes the same audio frames, which must be converted once
        at_join = len(preds[e.dst]) > 1 and joined[e.dst] is not None and len(ports) <= 1
        new_ids = []
        for type_name, params in specs:
            base = f"{'' if at_join else e.src + '_'}to_{e.dst}_{type_name.rsplit('.', 1)[-1]}"
            node_id = _unique(base, procs)
            graph.nodes.append(Node(node_id, type_name, params, auto=True, place=places.get(e.dst, "")))
            procs[node_id] = registry.create(type_name, params, node_id=node_id)
            places[node_id] = places.get(e.dst, "")
            new_ids.append(node_id)
        if at_join:
            chain, index = _locate(flow, e.dst)
            chain.items[index:index] = new_ids
            if graph.links is not None:
                _splice_before(graph, e.dst, new_ids)
        else:
            e.chain.items[e.index : e.index] = new_ids
            if graph.links is not None:
                _splice_links(graph, e.src, e.dst, new_ids)
        inserted.extend(new_ids)


def formats_entering(flow: Chain, formats: dict[str, AudioFormat | None]) -> dict[str, AudioFormat | None]:
    """The format entering each node (``None`` when unknown or when joined branches disagree)."""
    preds: dict[str, list[str]] = {}
    for e in flow_edges(flow):
        preds.setdefault(e.dst, []).append(e.src)
    entering: dict[str, AudioFormat | None] = {}
    for node_id, _ in walk_flow(flow):
        ins = [formats.get(u) for u in preds.get(node_id, [])]
        entering[node_id] = ins[0] if ins and all(f == ins[0] for f in ins) else None
    return entering


def settle_latencies(
    flow: Chain, procs: dict[str, FrameProcessor], formats: dict[str, AudioFormat | None]
) -> None:
    """Tell each processor the format negotiation found entering it, so a latency that depends on it
    (a resampler's hold-back depends on the input rate) is known before the run, as ``graph check``
    reports it. A processor takes it through an optional ``negotiated_input(fmt)`` method."""
    for node_id, fmt in formats_entering(flow, formats).items():
        proc = procs[node_id]
        if fmt is None:
            continue
        hook = getattr(proc, "negotiated_input", None)
        if callable(hook):
            hook(fmt)
        else:
            _resampler_latency(proc, fmt)


def _resampler_latency(proc: FrameProcessor, fmt: AudioFormat) -> None:
    # ResampleProcessor learns its input rate on the first frame; until it implements
    # negotiated_input itself (handed off), the graph builder computes the same hold-back here.
    module = sys.modules.get("apipeline.processors.audio.resample")  # not imported: not a resampler
    if module is None or not isinstance(proc, module.ResampleProcessor):
        return
    if fmt.sample_rate is None or proc.latency:
        return
    from apipeline.audio.resample import StreamingResampler

    proc.latency = StreamingResampler(fmt.sample_rate, proc.out_rate, 1, proc.quality).delay_seconds


def _unique(base: str, taken: dict[str, Any]) -> str:
    name, i = base, 2
    while name in taken:
        name, i = f"{base}{i}", i + 1
    return name


def _locate(chain: Chain, node_id: str) -> tuple[Chain, int]:
    """The chain holding ``node_id`` as a direct item, and its index there."""
    for i, item in enumerate(chain.items):
        if item == node_id:
            return chain, i
        subs = (
            item.branches if isinstance(item, Branches) else [item.chain] if isinstance(item, Group) else []
        )
        for sub in subs:
            try:
                return _locate(sub, node_id)
            except KeyError:
                pass
    raise UnknownNameError(f"no node {node_id!r} in the flow")


def _splice_before(graph: Graph, dst: str, new_ids: list[str]) -> None:
    """Route every link into ``dst`` through ``new_ids`` (one converter chain after the join)."""
    assert graph.links is not None
    out: list[Link] = []
    port = None
    for link in graph.links:
        if link.dst == dst:
            out.append(Link(link.src, new_ids[0], link.src_port, None, place=link.place))
            port = link.dst_port
        else:
            out.append(link)
    out.extend(Link(a, b) for a, b in itertools.pairwise(new_ids))
    out.append(Link(new_ids[-1], dst, None, port))
    graph.links = out


def _splice_links(graph: Graph, src: str, dst: str, new_ids: list[str]) -> None:
    """Replace every link ``src -> dst`` by ``src -> c1 -> ... -> dst`` (outer ports kept)."""
    assert graph.links is not None
    out: list[Link] = []
    done = False
    for link in graph.links:
        if link.src == src and link.dst == dst:
            if not done:
                chain = [src, *new_ids]
                out.append(Link(src, new_ids[0], link.src_port, None, place=link.place))
                out.extend(Link(a, b, place=link.place) for a, b in itertools.pairwise(chain))
                done = True
            out.append(Link(new_ids[-1], dst, None, link.dst_port, place=link.place))
        else:
            out.append(link)
    graph.links = out


def assemble(flow: Chain, procs: dict[str, FrameProcessor], name: str) -> FrameProcessor:
    """Pipelines from a flow tree (a chain becomes a Pipeline, blocks become parallel pipelines)."""
    from apipeline.pipeline.parallel import ParallelPipeline, SyncParallelPipeline
    from apipeline.pipeline.pipeline import Pipeline

    def items(chain: Chain) -> list[FrameProcessor]:
        out: list[FrameProcessor] = []
        for item in chain.items:
            if isinstance(item, str):
                out.append(procs[item])
            elif isinstance(item, Branches):
                cls = SyncParallelPipeline if item.kind == "sync_parallel" else ParallelPipeline
                out.append(cls(*[items(b) for b in item.branches], name=f"{name}.{item.kind}{len(out)}"))
            elif isinstance(item, Group):
                out.append(Pipeline(items(item.chain), name=item.name))
        return out

    return Pipeline(items(flow), name=name)


def build_pipeline(
    graph: Graph, registry: Registry | None = None, *, auto_convert: bool | None = None
) -> BuiltGraph:
    """Validate, instantiate, negotiate and assemble ``graph`` (left unchanged: a copy is built)."""
    registry = registry or default_registry()
    problems = validate_graph(graph, registry)
    if problems:
        raise GraphError([str(p) for p in problems])
    graph = copy.deepcopy(graph)
    procs, problems = instantiate(graph, registry)
    if problems:
        raise GraphError([str(p) for p in problems])
    try:
        flow = resolve_flow(graph, registry)
    except LoweringError as exc:
        raise GraphError([str(graph.problem("links", str(exc)))]) from None
    auto = graph.auto_convert if auto_convert is None else auto_convert
    problems, inserted, formats = negotiate(graph, flow, procs, registry, auto_convert=auto)
    if problems:
        raise GraphError([str(p) for p in problems])
    if graph.flow is None and graph.links is None and inserted:
        graph.flow = flow  # the implicit chain now holds converters: make it explicit
    settle_latencies(flow, procs, formats)
    root = assemble(flow, procs, graph.name)
    return BuiltGraph(graph, root, procs, flow, inserted, formats)


def check_graph(graph: Graph, registry: Registry | None = None) -> list[str]:
    """Every problem of ``graph``, formats included (instantiates the processors, runs nothing)."""
    try:
        build_pipeline(graph, registry)
    except GraphError as exc:
        return list(exc.problems)
    return []


def insert_converters(
    root: FrameProcessor, input_format: AudioFormat | None = None, *, registry: Registry | None = None
) -> tuple[FrameProcessor, list[FrameProcessor]]:
    """A pipeline built in code with converters inserted before every mismatched processor: the
    registry's channel mixer, resampler and sample-type converter
    (:func:`apipeline.pipeline.negotiation.insert_converters` does the walk). Returns the new root and
    the converters inserted."""
    reg = registry or default_registry()

    def make(type_name: str, params: dict[str, Any], name: str) -> FrameProcessor:
        made: FrameProcessor = reg.create(type_name, params, node_id=name)
        return made

    return negotiation.insert_converters(root, input_format, make=make)
