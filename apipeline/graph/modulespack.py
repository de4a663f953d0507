"""The modulespack2-style JSON front end: the same graph model from a module-graph file.

modulespack2 (a 2019 framework that runs voice-conversion modules as a static graph in topological
order) describes a graph as::

    {"version": {"author": "...", "nodeNum": 3},
     "node": [
       {"startNode": "True", "name": "src", "module": "audio.file_source",
        "input": {"path": "None"}, "output": {"audio": 0}},
       {"name": "rs", "module": "audio.resample",
        "input": {"audio": "src/audio", "out_rate": {"out_rate": 16000}}, "output": {"audio": 0}}],
     "feed": {"src": {"path": "in.wav"}}}

Each node names a module (here: a registered processor type) and its named inputs and outputs. An
input is either ``"other/output"`` (a link from another node's output), ``"None"`` (fed at run time:
the value comes from the feed dict, ``{"node": {"input": value}}``, given beside the file or under the
``feed`` key) or a constant (``{"name": value}`` or a plain number/bool). Fed and constant inputs become
the processor's parameters; links become :class:`~apipeline.graph.model.Link` s between named ports,
lowered like any DAG. ``version.nodeNum`` must match the number of nodes (modulespack2 trusts it and
silently ignores nodes past it; we report the mismatch).
"""

from __future__ import annotations

from typing import Any

from apipeline.graph.model import Graph, Link, Node, Problem

NODE_KEYS = ("startNode", "name", "module", "input", "output", "params")


MODULESPACK_KEYS = ("version", "node", "feed")


def is_modulespack(data: Any) -> bool:
    """Whether loaded data is in the modulespack2 shape: only its top-level keys (``version``, ``node``,
    ``feed``), and nodes written with ``module`` (or a ``version`` mapping). A native file that says
    ``node:`` instead of ``nodes:`` is therefore read as native, and told about its typo."""
    if not isinstance(data, dict) or "node" not in data or not set(data) <= set(MODULESPACK_KEYS):
        return False
    nodes = data["node"]
    with_module = isinstance(nodes, list) and any(isinstance(n, dict) and "module" in n for n in nodes)
    return with_module or isinstance(data.get("version"), dict)


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def parse_modulespack(
    data: dict[str, Any],
    *,
    feed: dict[str, dict[str, Any]] | None = None,
    lines: dict[str, int] | None = None,
    file: str | None = None,
) -> tuple[Graph, list[Problem]]:
    """Build a :class:`Graph` (links form) from modulespack2 data; return it with the problems found."""
    g = Graph(links=[], lines=lines or {}, file=file, front_end="modulespack2")
    problems: list[Problem] = []

    def bad(path: str, message: str) -> None:
        problems.append(g.problem(path, message))

    version = data.get("version", {})
    g.name = str(version.get("name", "modulespack2")) if isinstance(version, dict) else "modulespack2"
    nodes = data.get("node")
    if not isinstance(nodes, list):
        bad("node", f"expected a list of nodes, got {nodes!r}")
        return g, problems
    declared = version.get("nodeNum") if isinstance(version, dict) else None
    if declared is not None and declared != len(nodes):
        bad("version.nodeNum", f"says {declared} node(s) but 'node' lists {len(nodes)}")
    feed = {**(data.get("feed") or {}), **(feed or {})}
    outputs: dict[str, tuple[str, ...]] = {}
    pending: list[tuple[str, str, str, str, str]] = []  # (src, src_port, dst, dst_port, place)
    for i, raw in enumerate(nodes):
        path = f"node[{i}]"
        if not isinstance(raw, dict):
            bad(path, f"expected a node mapping, got {raw!r}")
            continue
        for key in raw:
            if key not in NODE_KEYS:
                bad(f"{path}.{key}", f"unknown node key {key!r}; expected {', '.join(NODE_KEYS)}")
        name, module = raw.get("name"), raw.get("module")
        if not isinstance(name, str) or not name or "/" in name or "." in name:
            bad(f"{path}.name", f"expected a node name without '/' or '.', got {name!r}")
            continue
        if not isinstance(module, str) or not module:
            bad(f"{path}.module", f"missing module (processor type) for node {name!r}")
            continue
        start = _truthy(raw.get("startNode", False))
        inputs = raw.get("input", {}) or {}
        outs = raw.get("output", {}) or {}
        params = dict(raw.get("params", {}) or {})
        if not isinstance(inputs, dict) or not isinstance(outs, dict):
            bad(path, "'input' and 'output' must be mappings of port names")
            continue
        node_feed = feed.get(name, {})
        for key, value in inputs.items():
            where = f"{path}.input.{key}"
            if value is None or value == "None":
                if key in node_feed:
                    params[key] = node_feed[key]
                elif start:
                    bad(
                        where,
                        f'input {key!r} of start node {name!r} is fed ("None") but the feed dict has no '
                        f"value for {name}.{key}",
                    )
            elif isinstance(value, str):
                src, sep, port = value.partition("/")
                if not sep or not src or not port:
                    bad(where, f"expected 'node/output', 'None' or a constant, got {value!r}")
                elif start:
                    bad(where, f"start node {name!r} takes its inputs from the feed dict, not from {value!r}")
                else:
                    pending.append((src, port, name, key, where))
            elif isinstance(value, dict):
                if len(value) != 1:
                    bad(where, f"a constant input is written {{name: value}}, got {value!r}")
                else:
                    params[key] = next(iter(value.values()))
            else:
                params[key] = value
        outputs[name] = tuple(outs)
        g.nodes.append(Node(name, module, params, tuple(inputs), tuple(outs), place=path))
    for src, port, dst, dst_port, where in pending:
        # an unknown src is left for validation, which reports it as a dangling link with close names
        if src in outputs and port not in outputs[src]:
            bad(where, f"node {src!r} has no output {port!r} (outputs: {', '.join(outputs[src]) or 'none'})")
            continue
        g.links.append(Link(src, dst, port, dst_port, place=where))  # type: ignore[union-attr]
    for name in feed:
        if name not in outputs:
            bad(f"feed.{name}", f"the feed dict names node {name!r}, which the graph does not have")
    return g, problems
