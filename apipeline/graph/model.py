"""The graph model: what a graph file says, as dataclasses, whichever front end read it.

A :class:`Graph` has :class:`Node` s (a registered type and its parameters, named by an ``id``) and one
way of connecting them:

* ``flow``: a structure tree — a :class:`Chain` (serial) whose items are node ids, :class:`Branches`
  (``parallel`` or ``sync_parallel``, each branch a chain) and :class:`Group` s (a named nested chain);
* ``links``: a general DAG of :class:`Link` s, optionally between named ports
  (``{from: f0.f0, to: svc.f0}``), lowered to serial/parallel structure when built;
* neither: the nodes form one chain, in the order they are listed.

Every element remembers its ``place`` (``nodes[3].params``) so problems can point into the file; places
and line numbers never take part in equality, so a graph dumped and loaded again compares equal.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

BranchKind = Literal["parallel", "sync_parallel"]
BRANCH_KINDS: tuple[str, ...] = ("parallel", "sync_parallel")


@dataclass(frozen=True)
class Problem:
    """One validation problem: where it is (path in the file, line if known) and what is wrong."""

    path: str
    message: str
    line: int | None = None
    file: str | None = None

    def __str__(self) -> str:
        where = self.path or "graph"
        if self.line is not None:
            prefix = f"{self.file}:{self.line}" if self.file else f"line {self.line}"
            return f"{prefix}: {where}: {self.message}"
        if self.file:
            return f"{self.file}: {where}: {self.message}"
        return f"{where}: {self.message}"


@dataclass
class Node:
    """A processor of a registered ``type`` with its ``params``; ``id`` names it in links and logs.

    ``inputs``/``outputs`` are port names declared by the file itself (the modulespack2 front end does);
    ``None`` means "the ports the type declares". ``auto`` marks converters inserted by negotiation.
    """

    id: str
    type: str
    params: dict[str, Any] = field(default_factory=dict)
    inputs: tuple[str, ...] | None = None
    outputs: tuple[str, ...] | None = None
    auto: bool = False
    place: str = field(default="", compare=False, repr=False)


@dataclass
class Link:
    """An edge ``src[.src_port] -> dst[.dst_port]`` of a DAG graph."""

    src: str
    dst: str
    src_port: str | None = None
    dst_port: str | None = None
    place: str = field(default="", compare=False, repr=False)

    def __str__(self) -> str:
        a = f"{self.src}.{self.src_port}" if self.src_port else self.src
        b = f"{self.dst}.{self.dst_port}" if self.dst_port else self.dst
        return f"{a} -> {b}"


@dataclass
class Chain:
    """Items in series: node ids, branch blocks and groups."""

    items: list[FlowItem] = field(default_factory=list)
    place: str = field(default="", compare=False, repr=False)


@dataclass
class Branches:
    """Branches side by side; ``sync_parallel`` collects every branch's output for each input frame."""

    kind: str
    branches: list[Chain] = field(default_factory=list)
    place: str = field(default="", compare=False, repr=False)


@dataclass
class Group:
    """A named nested chain (built as a named :class:`~apipeline.pipeline.Pipeline`)."""

    name: str
    chain: Chain = field(default_factory=Chain)
    place: str = field(default="", compare=False, repr=False)


FlowItem = str | Branches | Group


@dataclass
class Graph:
    """A whole graph file. See the module docstring for the three ways of connecting nodes."""

    nodes: list[Node] = field(default_factory=list)
    flow: Chain | None = None
    links: list[Link] | None = None
    name: str = "graph"
    description: str = ""
    auto_convert: bool = False
    backend: str = "local"
    ray_address: str | None = None
    #: with ``backend: ray``, how the model stages are hosted (``serve``, ``replicas``, ``min_replicas``...)
    ray: dict[str, Any] = field(default_factory=dict)
    join: str = "sync_parallel"
    bind: dict[str, str] = field(default_factory=dict)
    front_end: str = field(default="native", compare=False)
    lines: dict[str, int] = field(default_factory=dict, compare=False, repr=False)
    file: str | None = field(default=None, compare=False)

    def node(self, node_id: str) -> Node:
        for n in self.nodes:
            if n.id == node_id:
                return n
        from apipeline.errors import UnknownNameError

        raise UnknownNameError(f"no node {node_id!r} in graph {self.name!r}")

    def node_ids(self) -> list[str]:
        return [n.id for n in self.nodes]

    def problem(self, path: str, message: str) -> Problem:
        """A :class:`Problem` at ``path`` with the line of ``path`` or of its nearest known ancestor."""
        return Problem(path, message, line_of(self.lines, path), self.file)

    def effective_flow(self) -> Chain | None:
        """The flow tree (the implicit chain when neither ``flow`` nor ``links`` is given)."""
        if self.flow is not None:
            return self.flow
        if self.links is None:
            return Chain([n.id for n in self.nodes], place="nodes")
        return None


def line_of(lines: dict[str, int], path: str) -> int | None:
    """Line of ``path`` or of its closest ancestor path (``a.b[2].c`` -> ``a.b[2]`` -> ``a.b`` -> ``a``)."""
    p = path
    while p:
        if p in lines:
            return lines[p]
        cut = max(p.rfind("."), p.rfind("["))
        if cut <= 0:
            return lines.get(p)
        p = p[:cut]
    return None


def walk_flow(chain: Chain) -> Iterator[tuple[str, str]]:
    """Every node reference in a flow tree, as ``(node_id, place)``, in order."""
    for i, item in enumerate(chain.items):
        if isinstance(item, str):
            yield item, f"{chain.place}[{i}]"
        elif isinstance(item, Branches):
            for b in item.branches:
                yield from walk_flow(b)
        else:
            yield from walk_flow(item.chain)


@dataclass
class FlowEdge:
    """An edge implied by a flow tree, and where a converter for it would go (``chain.items[index]``)."""

    src: str
    dst: str
    chain: Chain
    index: int


def flow_edges(chain: Chain) -> list[FlowEdge]:
    """The producer -> consumer edges a flow tree implies (a branch block fans out and joins again)."""
    edges: list[FlowEdge] = []
    _chain_edges(chain, [], edges)
    return edges


def _chain_edges(
    chain: Chain, entry: list[tuple[str, Chain, int]], edges: list[FlowEdge]
) -> list[tuple[str, Chain, int]]:
    """Add the edges inside ``chain`` fed by ``entry`` producers; return the producers leaving it.

    A producer carries the chain and index where a converter placed after it (and before the
    consumer) would go. ``entry`` producers are inserted at the start of ``chain``.
    """
    current = [(src, chain, 0) for src, _, _ in entry]
    for i, item in enumerate(chain.items):
        if isinstance(item, str):
            for src, site_chain, site_index in current:
                index = i if site_chain is chain else site_index
                edges.append(FlowEdge(src, item, site_chain, index))
            current = [(item, chain, i + 1)]
        elif isinstance(item, Branches):
            leaving: list[tuple[str, Chain, int]] = []
            for b in item.branches:
                leaving.extend(_chain_edges(b, current, edges))
            current = leaving
        else:
            current = _chain_edges(item.chain, current, edges)
    return current
