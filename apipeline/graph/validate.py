"""Validation of a graph model against the registry: every problem, each with its place.

:func:`validate_graph` checks, without creating any processor: duplicate ids; unknown types (with the
closest registered names); types a file cannot create; unknown, wrongly typed and missing parameters;
flow references to unknown nodes, nodes used twice or not at all; dangling links and unknown ports;
cycles; DAGs that cannot be lowered to serial/parallel structure; ``bind`` entries that name no
parameter. Format compatibility needs the processors themselves and is checked by
:func:`apipeline.graph.build.build_pipeline` (``apipeline graph check`` runs both).
"""

from __future__ import annotations

import difflib
from typing import Any

from apipeline.graph.annotations import ParamTypeError, check_value
from apipeline.graph.lower import LoweringError, find_cycle, lower_links
from apipeline.graph.model import Graph, Node, Problem, walk_flow
from apipeline.graph.registry import ProcessorSpec, Registry, default_registry


def _closest(word: str, choices: list[str]) -> str:
    near = difflib.get_close_matches(word, choices, n=3, cutoff=0.5)
    return f" (did you mean {', '.join(repr(n) for n in near)}?)" if near else ""


def param_place(graph: Graph, node: Node, param: str | None = None) -> str:
    """Where a node's parameter is written (modulespack2 writes them as inputs)."""
    if param is None:
        return f"{node.place}.params" if graph.front_end == "native" else node.place
    if graph.front_end == "modulespack2" and node.inputs and param in node.inputs:
        return f"{node.place}.input.{param}"
    return f"{node.place}.params.{param}"


def checked_params(graph: Graph, node: Node, spec: ProcessorSpec) -> tuple[dict[str, Any], list[Problem]]:
    """The node's parameters converted for the constructor, and the problems with them."""
    out: dict[str, Any] = {}
    problems: list[Problem] = []
    for key, value in node.params.items():
        where = param_place(graph, node, key)
        p = spec.params.get(key)
        if p is None:
            known = list(spec.params)
            problems.append(
                graph.problem(
                    where,
                    f"unknown parameter {key!r} for type {spec.name!r}"
                    f"{_closest(key, known)}; parameters: {', '.join(known) or 'none'}",
                )
            )
        elif not p.settable:
            problems.append(
                graph.problem(
                    where,
                    f"parameter {key!r} of {spec.name!r} ({p.type_name}) cannot be set from a graph file",
                )
            )
        else:
            try:
                out[key] = check_value(value, p.annotation)
            except ParamTypeError as exc:
                problems.append(graph.problem(where, f"parameter {key!r} of {spec.name!r}: {exc}"))
    for p in spec.params.values():
        if p.required and p.name not in node.params:
            problems.append(
                graph.problem(
                    param_place(graph, node),
                    f"missing required parameter {p.name!r} "
                    f"({p.type_name}) for type {spec.name!r} (node {node.id!r})",
                )
            )
    return out, problems


def node_ports(node: Node, registry: Registry) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(inputs, outputs) of a node: declared by the file, else by its type."""
    try:
        spec = registry.get(node.type)
        ins, outs = spec.input_ports, spec.output_ports
    except KeyError:
        ins, outs = (), ()
    return (node.inputs if node.inputs is not None else ins), (
        node.outputs if node.outputs is not None else outs
    )


def validate_graph(graph: Graph, registry: Registry | None = None) -> list[Problem]:
    """Every problem of ``graph`` that can be found without creating processors."""
    registry = registry or default_registry()
    problems: list[Problem] = []
    ids: dict[str, Node] = {}
    for node in graph.nodes:
        if node.id in ids:
            problems.append(
                graph.problem(
                    f"{node.place}.id" if graph.front_end == "native" else node.place,
                    f"duplicate node id {node.id!r} (first at {ids[node.id].place})",
                )
            )
            continue
        ids[node.id] = node
        problems += _check_node(graph, node, registry)
    names = list(ids)
    flow = graph.effective_flow()
    if flow is not None:
        seen: dict[str, str] = {}
        for ref, place in walk_flow(flow):
            if ref not in ids:
                problems.append(
                    graph.problem(place, f"dangling reference: no node {ref!r}{_closest(ref, names)}")
                )
            elif ref in seen:
                problems.append(
                    graph.problem(
                        place,
                        f"node {ref!r} appears twice in the flow (also at {seen[ref]}); "
                        "a processor has one place in a pipeline",
                    )
                )
            else:
                seen[ref] = place
        for node_id, node in ids.items():
            if node_id not in seen:
                problems.append(graph.problem(node.place, f"node {node_id!r} is not used in the flow"))
        if not flow.items:
            problems.append(graph.problem("flow", "the flow is empty"))
    else:
        problems += _check_links(graph, ids, registry)
    for key, target in graph.bind.items():
        node_id, _, param = target.partition(".")
        if node_id not in ids:
            problems.append(graph.problem(f"bind.{key}", f"no node {node_id!r}{_closest(node_id, names)}"))
        elif ids[node_id].type in registry:
            try:
                known = list(registry.get(ids[node_id].type).params)
            except KeyError:
                continue
            if param not in known:
                problems.append(
                    graph.problem(
                        f"bind.{key}", f"node {node_id!r} has no parameter {param!r}{_closest(param, known)}"
                    )
                )
    return problems


def _check_node(graph: Graph, node: Node, registry: Registry) -> list[Problem]:
    where = f"{node.place}.type" if graph.front_end == "native" else f"{node.place}.module"
    if node.type not in registry:
        return [
            graph.problem(
                where,
                f"unknown processor type {node.type!r}{_closest(node.type, registry.names())}"
                "; `apipeline list` shows the registered types",
            )
        ]
    try:
        spec = registry.get(node.type)
    except KeyError as exc:
        return [
            graph.problem(where, f"processor type {node.type!r} is registered but unusable: {exc.args[0]}")
        ]
    problems = []
    if spec.usable is not None:
        problems.append(
            graph.problem(where, f"type {node.type!r} cannot be created from a graph file: {spec.usable}")
        )
    return problems + checked_params(graph, node, spec)[1]


def _check_links(graph: Graph, ids: dict[str, Node], registry: Registry) -> list[Problem]:
    problems: list[Problem] = []
    names = list(ids)
    good = []
    for link in graph.links or []:
        ok = True
        for end, node_id, port, side in (
            ("from", link.src, link.src_port, 1),
            ("to", link.dst, link.dst_port, 0),
        ):
            where = link.place if graph.front_end != "native" else f"{link.place}.{end}"
            if node_id not in ids:
                problems.append(
                    graph.problem(
                        where, f"dangling link {link}: no node {node_id!r}{_closest(node_id, names)}"
                    )
                )
                ok = False
                continue
            ports = node_ports(ids[node_id], registry)[side]
            kind = "output" if side else "input"
            if port is not None and ports and port not in ports:
                problems.append(
                    graph.problem(
                        where, f"node {node_id!r} has no {kind} {port!r} ({kind}s: {', '.join(ports)})"
                    )
                )
                ok = False
            elif port is None and len(ports) > 1:
                problems.append(
                    graph.problem(
                        where,
                        f"node {node_id!r} has several {kind}s ({', '.join(ports)}): "
                        f"name one, e.g. '{node_id}.{ports[0]}'",
                    )
                )
                ok = False
        if link.src == link.dst and link.src in ids:
            problems.append(graph.problem(link.place, f"link {link} links a node to itself (a cycle)"))
            ok = False
        if ok:
            good.append(link)
    cycle = find_cycle(names, [x for x in good if x.src != x.dst])
    if cycle:
        first = next(x for x in good if x.src == cycle[0] and x.dst == cycle[1])
        problems.append(
            graph.problem(first.place, f"cycle: {' -> '.join(cycle)}; a pipeline must be acyclic")
        )
    elif not problems:
        inputs = {n: node_ports(ids[n], registry)[0] for n in names}
        try:
            lower_links(names, good, join=graph.join, input_ports=inputs)
        except LoweringError as exc:
            problems.append(graph.problem("links", str(exc)))
    return problems
