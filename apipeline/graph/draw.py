"""Drawing graphs: DOT and Mermaid text, PNG/SVG through Graphviz ``dot`` when it is installed.

A flow-form graph is drawn with its structure (branch blocks and groups as boxes around their
nodes); a links-form graph as its DAG, with port names on the edges. Converters inserted by format
negotiation (``Node.auto``) are drawn dashed and labelled ``auto``, so a user sees what was added.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator

from apipeline.graph.model import Branches, Chain, Graph, Group, Node, flow_edges


def _edges(graph: Graph) -> list[tuple[str, str, str]]:
    """(src, dst, label) for every edge, label naming ports where the links do."""
    flow = graph.effective_flow()
    if flow is not None:
        seen: list[tuple[str, str, str]] = []
        for e in flow_edges(flow):
            if (e.src, e.dst, "") not in seen:
                seen.append((e.src, e.dst, ""))
        return seen
    out = []
    for link in graph.links or []:
        label = f"{link.src_port or ''}→{link.dst_port or ''}" if link.src_port or link.dst_port else ""
        out.append((link.src, link.dst, label))
    return out


def _label(node: Node) -> str:
    return f"{node.id}\\n{node.type}{' (auto)' if node.auto else ''}"


def _q(text: str) -> str:
    return '"' + text.replace('"', '\\"') + '"'


def to_dot(graph: Graph) -> str:
    """Graphviz DOT text of ``graph``."""
    nodes = {n.id: n for n in graph.nodes}
    lines = [
        f"digraph {_q(graph.name)} {{",
        "  rankdir=LR;",
        '  node [shape=box, style="rounded", fontsize=11];',
    ]
    drawn: set[str] = set()
    counter = iter(range(1_000_000))

    def node_line(node_id: str, indent: str) -> str:
        drawn.add(node_id)
        n = nodes.get(node_id)
        if n is None:
            return f"{indent}{_q(node_id)} [color=red];"
        style = ', style="rounded,dashed", color="#1f6feb"' if n.auto else ""
        return f"{indent}{_q(node_id)} [label={_q(_label(n))}{style}];"

    def chain(c: Chain, indent: str) -> Iterator[str]:
        for item in c.items:
            if isinstance(item, str):
                yield node_line(item, indent)
            elif isinstance(item, Branches):
                k = next(counter)
                yield f"{indent}subgraph cluster_{k} {{"
                yield f'{indent}  label={_q(item.kind)}; style="dashed"; fontsize=10;'
                for j, b in enumerate(item.branches):
                    yield f"{indent}  subgraph cluster_{k}_{j} {{"
                    yield f'{indent}    label={_q(f"branch {j}")}; style="dotted";'
                    yield from chain(b, indent + "    ")
                    yield f"{indent}  }}"
                yield f"{indent}}}"
            elif isinstance(item, Group):
                k = next(counter)
                yield f"{indent}subgraph cluster_{k} {{"
                yield f'{indent}  label={_q(item.name)}; style="rounded";'
                yield from chain(item.chain, indent + "  ")
                yield f"{indent}}}"

    flow = graph.effective_flow()
    if flow is not None:
        lines.extend(chain(flow, "  "))
    for n in graph.nodes:
        if n.id not in drawn:
            lines.append(node_line(n.id, "  "))
    for src, dst, label in _edges(graph):
        attr = f" [label={_q(label)}, fontsize=9]" if label else ""
        lines.append(f"  {_q(src)} -> {_q(dst)}{attr};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _mid(node_id: str) -> str:
    return "n_" + node_id.replace("-", "__")


def to_mermaid(graph: Graph) -> str:
    """Mermaid ``flowchart`` text of ``graph`` (renders on GitHub and in most Markdown viewers)."""
    nodes = {n.id: n for n in graph.nodes}
    lines = ["flowchart LR"]
    drawn: set[str] = set()
    counter = iter(range(1_000_000))

    def node_line(node_id: str, indent: str) -> str:
        drawn.add(node_id)
        n = nodes.get(node_id)
        text = f"{node_id}<br/>{n.type}{' (auto)' if n and n.auto else ''}" if n else node_id
        return f'{indent}{_mid(node_id)}["{text}"]'

    def chain(c: Chain, indent: str) -> Iterator[str]:
        for item in c.items:
            if isinstance(item, str):
                yield node_line(item, indent)
            elif isinstance(item, Branches):
                k = next(counter)
                yield f'{indent}subgraph b{k} ["{item.kind}"]'
                for j, b in enumerate(item.branches):
                    yield f'{indent}  subgraph b{k}_{j} ["branch {j}"]'
                    yield from chain(b, indent + "    ")
                    yield f"{indent}  end"
                yield f"{indent}end"
            elif isinstance(item, Group):
                k = next(counter)
                yield f'{indent}subgraph g{k} ["{item.name}"]'
                yield from chain(item.chain, indent + "  ")
                yield f"{indent}end"

    flow = graph.effective_flow()
    if flow is not None:
        lines.extend(chain(flow, "  "))
    for n in graph.nodes:
        if n.id not in drawn:
            lines.append(node_line(n.id, "  "))
    for src, dst, label in _edges(graph):
        arrow = f"-->|{label}|" if label else "-->"
        lines.append(f"  {_mid(src)} {arrow} {_mid(dst)}")
    auto = [_mid(n.id) for n in graph.nodes if n.auto]
    if auto:
        lines.append("  classDef auto stroke-dasharray: 5 5,stroke:#1f6feb")
        lines.append(f"  class {','.join(auto)} auto")
    return "\n".join(lines) + "\n"


def dot_available() -> bool:
    """Whether Graphviz ``dot`` is on PATH."""
    return shutil.which("dot") is not None


def render(graph: Graph, fmt: str) -> bytes:
    """The graph rendered by Graphviz as ``png`` or ``svg`` bytes.

    Raises:
        ConfigurationError: ``fmt`` is neither.
        MissingDependencyError: Graphviz's ``dot`` is not installed.
        RenderError: ``dot`` failed (with its message).
    """
    from apipeline.errors import ConfigurationError, MissingDependencyError, RenderError

    if fmt not in ("png", "svg"):
        raise ConfigurationError(f"render: format must be 'png' or 'svg', got {fmt!r}")
    exe = shutil.which("dot")
    if exe is None:
        raise MissingDependencyError(
            "Graphviz 'dot' is not installed (e.g. apt-get install graphviz); "
            "use --format dot or mermaid for text output"
        )
    proc = subprocess.run(
        [exe, f"-T{fmt}"], input=to_dot(graph).encode(), capture_output=True, timeout=60, check=False
    )
    if proc.returncode != 0:
        raise RenderError(f"dot -T{fmt} failed: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout
