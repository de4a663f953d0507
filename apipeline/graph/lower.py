"""Lowering a DAG of links to serial/parallel structure, and finding cycles.

A frame pipeline nests: a :class:`~apipeline.pipeline.Pipeline` is a chain, a
:class:`~apipeline.pipeline.ParallelPipeline` fans every frame out to branches and merges them again.
So a DAG can run only if it is *series-parallel*: reducible to one edge by repeatedly

* **series**: replacing ``u -> v -> w`` (``v`` with exactly one link in and one out) by ``u -> w``
  whose label is ``[..., v, ...]``;
* **parallel**: replacing several ``u -> w`` edges by one whose label is a branch block.

Several sources (or sinks) are first tied to a virtual input (output), so they become parallel branches.
Branch order follows the join node's input-port order where links name ports (``svc.f0`` before
``svc.spectrum`` if ``svc`` declares them so), else the order of the links in the file. A DAG that
does not reduce (the "N" shape: ``a -> c``, ``a -> d``, ``b -> d``) raises :class:`LoweringError`
naming the links that remain crossed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from apipeline.graph.model import Branches, Chain, FlowItem, Link

_IN = "(input)"
_OUT = "(output)"


class LoweringError(ValueError):
    """A DAG that is not series-parallel; the message names the links left crossed."""


@dataclass
class _Edge:
    src: str
    dst: str
    label: list[FlowItem]
    port: str | None
    seq: int


def find_cycle(nodes: Sequence[str], links: Sequence[Link]) -> list[str] | None:
    """A cycle as a node list ``[a, b, c, a]``, or ``None`` when the links form a DAG."""
    succ: dict[str, list[str]] = {n: [] for n in nodes}
    for link in links:
        if link.src in succ and link.dst in succ:
            succ[link.src].append(link.dst)
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in succ[n]:
            if state.get(m) == 1:
                return [*stack[stack.index(m) :], m]
            if m not in state and (found := visit(m)):
                return found
        stack.pop()
        state[n] = 2
        return None

    for n in nodes:
        if n not in state and (found := visit(n)):
            return found
    return None


def lower_links(
    nodes: Sequence[str],
    links: Sequence[Link],
    *,
    join: str = "sync_parallel",
    input_ports: dict[str, tuple[str, ...]] | None = None,
) -> Chain:
    """The flow tree equivalent to a DAG; raises :class:`LoweringError` when there is none."""
    input_ports = input_ports or {}
    edges: list[_Edge] = []
    seen: set[tuple[str, str]] = set()
    for link in links:
        if (link.src, link.dst) not in seen:  # repeated links between two nodes carry the same frames
            seen.add((link.src, link.dst))
            edges.append(_Edge(link.src, link.dst, [], link.dst_port, len(edges)))
    has_in = {e.dst for e in edges}
    has_out = {e.src for e in edges}
    for n in nodes:
        if n not in has_in:
            edges.append(_Edge(_IN, n, [], None, len(edges)))
        if n not in has_out:
            edges.append(_Edge(n, _OUT, [], None, len(edges)))
    changed = True
    while changed:
        changed = _parallel(edges, join, input_ports) or _series(edges, nodes)
    if len(edges) == 1 and edges[0].src == _IN and edges[0].dst == _OUT:
        return Chain(edges[0].label, place="links")
    remaining = ", ".join(
        f"{e.src} -> {_summary(e.label)}{e.dst}" for e in sorted(edges, key=lambda e: e.seq)
    )
    raise LoweringError(
        "links cannot be lowered to serial/parallel pipelines: branches cross instead of nesting "
        f"(after merging chains and branches, these links remain: {remaining}); "
        "make every fork join again before its branches link elsewhere"
    )


def _summary(label: list[FlowItem]) -> str:
    names = [
        item if isinstance(item, str) else "[branches]" if isinstance(item, Branches) else item.name
        for item in label
    ]
    return "".join(f"{n} -> " for n in names)


def _parallel(edges: list[_Edge], join: str, input_ports: dict[str, tuple[str, ...]]) -> bool:
    groups: dict[tuple[str, str], list[_Edge]] = {}
    for e in edges:
        groups.setdefault((e.src, e.dst), []).append(e)
    for (src, dst), group in groups.items():
        if len(group) < 2:
            continue
        order = input_ports.get(dst, ())

        def rank(e: _Edge, order: tuple[str, ...] = order) -> tuple[int, int]:
            return (order.index(e.port) if e.port in order else len(order), e.seq)

        group.sort(key=rank)
        kind = "parallel" if src == _IN or dst == _OUT else join  # independent sources/sinks: no sync
        merged = _Edge(src, dst, [Branches(kind, [Chain(e.label) for e in group])], None, group[0].seq)
        for e in group:
            edges.remove(e)
        edges.append(merged)
        return True
    return False


def _series(edges: list[_Edge], nodes: Sequence[str]) -> bool:
    for n in nodes:
        ins = [e for e in edges if e.dst == n]
        outs = [e for e in edges if e.src == n]
        if len(ins) == 1 and len(outs) == 1:
            a, b = ins[0], outs[0]
            merged = _Edge(a.src, b.dst, [*a.label, n, *b.label], b.port, min(a.seq, b.seq))
            edges.remove(a)
            edges.remove(b)
            edges.append(merged)
            return True
    return False
