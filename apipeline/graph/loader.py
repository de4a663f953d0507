"""Reading and writing graph files (YAML or JSON, one schema).

:func:`parse_graph` turns loaded data into a :class:`~apipeline.graph.model.Graph` and the problems of
*shape* it found (a missing ``type``, a flow item that is neither a node id nor a block...); what needs
the registry (types, parameters, formats) is :mod:`~apipeline.graph.validate`'s job. :func:`load_graph`
reads a file (or text), picks the front end (native, or modulespack2 when the top level has ``node``),
records the line of every path for YAML and JSON alike, parses, validates and raises one
:class:`~apipeline.errors.GraphError` carrying every problem. :func:`dump_graph` writes the native form
back; loading what it wrote gives an equal graph.

The native schema::

    version: 1                  # optional
    name: demo
    auto_convert: false         # insert resampler/mixer/sample-type converters on format mismatches
    join: sync_parallel         # how DAG fork/joins are lowered: sync_parallel | parallel
    bind: {input: src.path, output: sink.path}   # what `apipeline run --input/--output` set
    backend: local              # ray: model stages (nodes with a ray_address parameter) run on Ray
    ray_address: null           # with backend: ray -- local (start Ray here), auto, host:port, ray://host:port
    ray: {serve: true, min_replicas: 1, max_replicas: 4, num_cpus: 1}   # with backend: ray -- how model
                                # stages are hosted: serve, replicas, min/max_replicas, num_cpus, num_gpus,
                                # max_ongoing_requests, target_ongoing_requests, max_queued_requests,
                                # data_path, start_timeout (checked at load, like the CLI's --ray-* options)
    nodes:
      - {id: src, type: audio.file_source, params: {path: in.wav}}
    flow: [src, {parallel: [[a], [b, c]]}, {group: post, flow: [d]}, sink]   # or:
    links: [{from: src, to: a}, {from: a.f0, to: svc.f0}]
"""

from __future__ import annotations

import difflib
import json
import re
from pathlib import Path
from typing import Any

import yaml

from apipeline.errors import ConfigurationError, GraphError
from apipeline.graph.model import BRANCH_KINDS, Branches, Chain, Graph, Group, Link, Node, Problem
from apipeline.models.backends import check_ray_options

TOP_KEYS = (
    "version", "name", "description", "auto_convert", "join", "bind", "backend", "ray_address", "ray",
    "nodes", "flow", "links",
)  # fmt: skip
BACKENDS = ("local", "ray")
NODE_KEYS = ("id", "type", "params", "inputs", "outputs", "auto")
ID_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
SCHEMA_VERSION = 1


def _closest(word: str, choices: list[str] | tuple[str, ...]) -> str:
    near = difflib.get_close_matches(word, list(choices), n=3, cutoff=0.5)
    return f" (did you mean {', '.join(repr(n) for n in near)}?)" if near else ""


def line_map(text: str) -> dict[str, int]:
    """``path -> line`` (1-based) for every mapping key and sequence item of a YAML/JSON text."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return {}
    out: dict[str, int] = {}

    def visit(node: yaml.Node, path: str) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode):
                    sub = f"{path}.{key.value}" if path else str(key.value)
                    out.setdefault(sub, key.start_mark.line + 1)
                    visit(value, sub)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                sub = f"{path}[{i}]"
                out.setdefault(sub, item.start_mark.line + 1)
                visit(item, sub)

    if root is not None:
        visit(root, "")
    return out


def parse_graph(
    data: Any, *, lines: dict[str, int] | None = None, file: str | None = None
) -> tuple[Graph, list[Problem]]:
    """Build a :class:`Graph` from native-format data; return it with the shape problems found."""
    g = Graph(lines=lines or {}, file=file)
    problems: list[Problem] = []

    def bad(path: str, message: str) -> None:
        problems.append(g.problem(path, message))

    if not isinstance(data, dict):
        bad("", f"a graph file must hold a mapping at the top level, got {type(data).__name__}")
        return g, problems
    unknown = [key for key in data if key not in TOP_KEYS]  # the shipped schema's keys, checked first
    for key in unknown:
        bad(
            str(key),
            f"unknown key {key!r}{_closest(str(key), TOP_KEYS)}; expected one of {', '.join(TOP_KEYS)}",
        )
    structure = {"nodes", "flow", "links"} - set(data)
    misspelt = [k for k in unknown if set(difflib.get_close_matches(str(k), TOP_KEYS, 1, 0.5)) & structure]
    if misspelt:  # nodes/flow/links under a wrong name: what follows would only echo it ("nodes: None")
        return g, problems
    version = data.get("version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        bad(
            "version", f"unsupported graph version {version!r}; this apipeline reads version {SCHEMA_VERSION}"
        )
    for key, kind, default in (
        ("name", str, "graph"),
        ("description", str, ""),
        ("auto_convert", bool, False),
    ):
        value = data.get(key, default)
        if not isinstance(value, kind):
            bad(key, f"expected {kind.__name__}, got {value!r}")
        else:
            setattr(g, key, value)
    join = data.get("join", "sync_parallel")
    if join not in BRANCH_KINDS:
        bad("join", f"expected one of {', '.join(BRANCH_KINDS)}, got {join!r}")
    else:
        g.join = join
    backend, address = data.get("backend", "local"), data.get("ray_address")
    if backend not in BACKENDS:
        bad("backend", f"expected one of {', '.join(BACKENDS)}, got {backend!r}")
    elif address is not None and (not isinstance(address, str) or not address):
        bad("ray_address", f"expected local, auto, host:port or ray://host:port, got {address!r}")
    elif address is not None and backend != "ray":
        bad("ray_address", "ray_address needs 'backend: ray'")
    else:
        g.backend, g.ray_address = backend, address
    ray = data.get("ray")
    if ray is not None:
        if backend != "ray":
            bad("ray", "ray options need 'backend: ray'")
        else:
            problem = check_ray_options(ray)
            if problem is not None:
                bad("ray", problem)
            else:
                g.ray = dict(ray)
    bind = data.get("bind", {})
    if not isinstance(bind, dict) or not all(isinstance(v, str) and "." in v for v in bind.values()):
        bad("bind", f"expected a mapping of names to 'node.param', got {bind!r}")
    else:
        g.bind = dict(bind)
    nodes = data.get("nodes")
    if not isinstance(nodes, list) or not nodes:
        bad("nodes", f"expected a non-empty list of nodes, got {nodes!r}")
        nodes = []
    for i, raw in enumerate(nodes):
        node = _parse_node(raw, f"nodes[{i}]", bad)
        if node is not None:
            g.nodes.append(node)
    if "flow" in data and "links" in data:
        bad("links", "give either 'flow' (serial/parallel structure) or 'links' (a DAG), not both")
    if "flow" in data:
        g.flow = _parse_chain(data["flow"], "flow", bad)
    elif "links" in data:
        raw_links = data["links"]
        if not isinstance(raw_links, list):
            bad("links", f"expected a list of links, got {raw_links!r}")
            raw_links = []
        g.links = [link for i, r in enumerate(raw_links) if (link := _parse_link(r, f"links[{i}]", bad))]
    return g, problems


def _parse_node(raw: Any, path: str, bad: Any) -> Node | None:
    if not isinstance(raw, dict):
        bad(path, f"a node must be a mapping with 'id' and 'type', got {raw!r}")
        return None
    for key in raw:
        if key not in NODE_KEYS:
            bad(f"{path}.{key}", f"unknown node key {key!r}{_closest(str(key), NODE_KEYS)}")
    node_id, node_type, params = raw.get("id"), raw.get("type"), raw.get("params", {})
    ok = True
    if not isinstance(node_id, str) or not ID_RE.match(node_id):
        bad(
            f"{path}.id",
            f"expected an id of letters, digits, '_' or '-' (not starting with a digit), got {node_id!r}",
        )
        ok = False
    if not isinstance(node_type, str) or not node_type:
        bad(f"{path}.type", f"missing processor type (got {node_type!r})")
        ok = False
    if params is None:
        params = {}
    if not isinstance(params, dict):
        bad(f"{path}.params", f"expected a mapping of parameter names to values, got {params!r}")
        ok = False
    ports: dict[str, tuple[str, ...] | None] = {}
    for key in ("inputs", "outputs"):
        value = raw.get(key)
        if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            bad(f"{path}.{key}", f"expected a list of port names, got {value!r}")
            value = None
        ports[key] = tuple(value) if value is not None else None
    if not ok:
        return None
    assert isinstance(node_id, str) and isinstance(node_type, str)
    return Node(
        node_id,
        node_type,
        dict(params),
        ports["inputs"],
        ports["outputs"],
        bool(raw.get("auto", False)),
        place=path,
    )


def _parse_chain(raw: Any, path: str, bad: Any) -> Chain:
    if isinstance(raw, (str, dict)):
        raw = [raw]  # a branch of one item may be written without brackets
    chain = Chain(place=path)
    if not isinstance(raw, list):
        bad(path, f"expected a list of node ids and blocks, got {raw!r}")
        return chain
    for i, item in enumerate(raw):
        where = f"{path}[{i}]"
        if isinstance(item, str):
            chain.items.append(item)
        elif isinstance(item, dict) and len(set(item) & {"parallel", "sync_parallel", "group"}) == 1:
            kind = next(k for k in ("parallel", "sync_parallel", "group") if k in item)
            extra = set(item) - ({kind, "flow"} if kind == "group" else {kind})
            if extra:
                bad(
                    f"{where}.{sorted(extra)[0]}",
                    f"unexpected key(s) {', '.join(sorted(extra))} in a {kind} block",
                )
            if kind == "group":
                name = item["group"]
                if not isinstance(name, str) or not ID_RE.match(name):
                    bad(f"{where}.group", f"a group needs a name (an id), got {name!r}")
                    name = "group"
                chain.items.append(
                    Group(name, _parse_chain(item.get("flow", []), f"{where}.flow", bad), place=where)
                )
            else:
                branches = item[kind]
                if not isinstance(branches, list) or len(branches) < 1:
                    bad(f"{where}.{kind}", f"expected a list of branches, got {branches!r}")
                    continue
                chain.items.append(
                    Branches(
                        kind,
                        [_parse_chain(b, f"{where}.{kind}[{j}]", bad) for j, b in enumerate(branches)],
                        place=where,
                    )
                )
        else:
            bad(
                where,
                "expected a node id or one of {parallel: ...}, {sync_parallel: ...}, "
                f"{{group: ..., flow: ...}}; "
                f"got {item!r}",
            )
    return chain


def _endpoint(value: Any) -> tuple[str, str | None] | None:
    if not isinstance(value, str) or not value:
        return None
    node, _, port = value.partition(".")
    return node, port or None


def _parse_link(raw: Any, path: str, bad: Any) -> Link | None:
    if isinstance(raw, str) and "->" in raw:
        raw = [part.strip() for part in raw.split("->", 1)]
    if isinstance(raw, list) and len(raw) == 2:
        raw = {"from": raw[0], "to": raw[1]}
    if not isinstance(raw, dict) or set(raw) != {"from", "to"}:
        bad(path, f"expected {{from: node[.port], to: node[.port]}}, [from, to] or 'from -> to', got {raw!r}")
        return None
    a, b = _endpoint(raw["from"]), _endpoint(raw["to"])
    if a is None or b is None:
        bad(path, f"link ends must be 'node' or 'node.port' strings, got {raw['from']!r} -> {raw['to']!r}")
        return None
    return Link(a[0], b[0], a[1], b[1], place=path)


# -- files ------------------------------------------------------------------------------------------


def read_data(
    path: str | Path | None = None, *, text: str | None = None
) -> tuple[Any, dict[str, int], str | None]:
    """Load YAML or JSON (by extension; text is tried as YAML, a superset); return (data, lines, file)."""
    file = str(path) if path is not None else None
    if text is None:
        if path is None:
            raise ConfigurationError("read_data: give a path or text")
        p = Path(path)
        if not p.is_file():
            raise GraphError([f"{p}: no such graph file"])
        text = p.read_text(encoding="utf-8")
    try:
        if file and file.endswith(".json"):
            data = json.loads(text)
        else:
            data = yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise GraphError(
            [f"{file or '<text>'}: not valid {'JSON' if file and file.endswith('.json') else 'YAML'}: {exc}"]
        ) from None
    return data, line_map(text), file


def load_graph(
    path: str | Path | None = None,
    *,
    text: str | None = None,
    overrides: list[str] | None = None,
    settings: dict[str, Any] | None = None,
    registry: Any = None,
    check_formats: bool = True,
) -> Graph:
    """Read, parse and validate a graph file; raise :class:`GraphError` listing every problem.

    With ``check_formats`` (the default) the processors are created once to check every link's
    formats (nothing runs); without it only what the registry knows is checked, and
    :func:`~apipeline.graph.build.build_pipeline` checks formats when it builds.
    ``overrides`` are ``node.param=value`` strings (the CLI's ``--set``); values are read as YAML
    scalars (``4`` is an int, ``true`` a bool, ``[1, 2]`` a list); ``settings`` map ``node.param`` to
    values taken as they are (the CLI's ``--input``/``--output`` paths).
    """
    from apipeline.graph.modulespack import is_modulespack, parse_modulespack
    from apipeline.graph.validate import validate_graph

    data, lines, file = read_data(path, text=text)
    if is_modulespack(data):
        graph, problems = parse_modulespack(data, lines=lines, file=file)
    else:
        graph, problems = parse_graph(data, lines=lines, file=file)
    if problems and not graph.nodes:  # validation would only echo the shape problems
        raise GraphError([str(p) for p in problems])
    problems += apply_overrides(graph, overrides or [], settings)
    problems += validate_graph(graph, registry)
    if problems:
        raise GraphError([str(p) for p in problems])
    if check_formats:
        from apipeline.graph.build import check_graph

        errors = check_graph(graph, registry)
        if errors:
            raise GraphError(errors)
    return graph


def apply_overrides(
    graph: Graph, overrides: list[str], settings: dict[str, Any] | None = None
) -> list[Problem]:
    """Apply ``node.param=value`` overrides and ``{node.param: value}`` settings to the graph's nodes.

    Returns the problems of malformed or misdirected ones.
    """
    problems = []
    for key, value in (settings or {}).items():
        node_id, _, param = key.partition(".")
        try:
            graph.node(node_id).params[param] = value
        except KeyError:
            problems.append(Problem(key, f"no node {node_id!r}{_closest(node_id, graph.node_ids())}"))
    for item in overrides:
        key, sep, raw = item.partition("=")
        node_id, dot, param = key.strip().partition(".")
        where = f"--set {item}"
        if not sep or not dot or not param:
            problems.append(Problem(where, "expected node.param=value"))
            continue
        try:
            node = graph.node(node_id)
        except KeyError:
            problems.append(Problem(where, f"no node {node_id!r}{_closest(node_id, graph.node_ids())}"))
            continue
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        node.params[param] = value
    return problems


def graph_to_data(graph: Graph) -> dict[str, Any]:
    """The native-format data of ``graph`` (what :func:`dump_graph` writes)."""
    from apipeline.graph.annotations import to_plain

    data: dict[str, Any] = {"version": SCHEMA_VERSION, "name": graph.name}
    if graph.description:
        data["description"] = graph.description
    if graph.auto_convert:
        data["auto_convert"] = True
    if graph.join != "sync_parallel":
        data["join"] = graph.join
    if graph.bind:
        data["bind"] = dict(graph.bind)
    if graph.backend != "local":
        data["backend"] = graph.backend
    if graph.ray_address is not None:
        data["ray_address"] = graph.ray_address
    if graph.ray:
        data["ray"] = dict(graph.ray)
    nodes = []
    for n in graph.nodes:
        entry: dict[str, Any] = {"id": n.id, "type": n.type}
        if n.params:
            entry["params"] = to_plain(n.params)
        if n.inputs is not None:
            entry["inputs"] = list(n.inputs)
        if n.outputs is not None:
            entry["outputs"] = list(n.outputs)
        if n.auto:
            entry["auto"] = True
        nodes.append(entry)
    data["nodes"] = nodes
    if graph.flow is not None:
        data["flow"] = _chain_data(graph.flow)
    elif graph.links is not None:
        data["links"] = [
            {"from": _end(x.src, x.src_port), "to": _end(x.dst, x.dst_port)} for x in graph.links
        ]
    return data


def _end(node: str, port: str | None) -> str:
    return f"{node}.{port}" if port else node


def _chain_data(chain: Chain) -> list[Any]:
    out: list[Any] = []
    for item in chain.items:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, Branches):
            out.append({item.kind: [_chain_data(b) for b in item.branches]})
        else:
            out.append({"group": item.name, "flow": _chain_data(item.chain)})
    return out


def dump_graph(graph: Graph, path: str | Path | None = None, *, fmt: str | None = None) -> str:
    """Write ``graph`` in the native schema as YAML (default) or JSON; return the text."""
    data = graph_to_data(graph)
    fmt = fmt or ("json" if path is not None and str(path).endswith(".json") else "yaml")
    if fmt == "json":
        text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    else:
        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=None, width=100)
    if path is not None:
        Path(path).write_text(text, encoding="utf-8")
    return text
