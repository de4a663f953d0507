"""DAG lowering to serial/parallel structure, and cycle detection."""

from __future__ import annotations

import pytest

from apipeline.graph.lower import LoweringError, find_cycle, lower_links
from apipeline.graph.model import Branches, Chain, Link


def links(*pairs: str) -> list[Link]:
    out = []
    for pair in pairs:
        a, b = pair.split(">")
        src, _, sp = a.partition(".")
        dst, _, dp = b.partition(".")
        out.append(Link(src, dst, sp or None, dp or None))
    return out


def test_chain():
    assert lower_links(["a", "b", "c"], links("a>b", "b>c")) == Chain(["a", "b", "c"])


def test_diamond_becomes_sync_parallel_ordered_by_input_ports():
    flow = lower_links(
        ["s", "f0", "sp", "svc", "out"],
        links("s>sp", "s>f0", "sp>svc.spectrum", "f0>svc.f0", "svc>out"),
        input_ports={"svc": ("f0", "spectrum")},
    )
    assert flow == Chain(["s", Branches("sync_parallel", [Chain(["f0"]), Chain(["sp"])]), "svc", "out"])


def test_skip_link_is_an_empty_branch_and_join_kind_is_configurable():
    flow = lower_links(["a", "b", "c"], links("a>b", "b>c", "a>c"), join="parallel")
    assert flow == Chain(["a", Branches("parallel", [Chain(["b"]), Chain([])]), "c"])


def test_nested_diamonds():
    flow = lower_links(list("abcdef"), links("a>b", "a>e", "b>c", "b>d", "c>f", "d>f", "e>f"))
    inner = Branches("sync_parallel", [Chain(["c"]), Chain(["d"])])
    assert flow == Chain(["a", Branches("sync_parallel", [Chain(["b", inner]), Chain(["e"])]), "f"])


def test_several_sources_and_sinks_run_side_by_side():
    flow = lower_links(["m1", "m2", "mix", "s1", "s2"], links("m1>mix", "m2>mix", "mix>s1", "mix>s2"))
    assert flow == Chain(
        [
            Branches("parallel", [Chain(["m1"]), Chain(["m2"])]),
            "mix",
            Branches("parallel", [Chain(["s1"]), Chain(["s2"])]),
        ]
    )


def test_repeated_links_between_two_nodes_count_once():
    assert lower_links(["a", "b"], links("a.y>b.x1", "a.y>b.x2")) == Chain(["a", "b"])


def test_n_shape_is_refused_with_the_crossing_links():
    with pytest.raises(LoweringError) as info:
        lower_links(["a", "b", "c", "d"], links("a>c", "a>d", "b>d"))
    message = str(info.value)
    assert "branches cross instead of nesting" in message
    assert "these links remain: a -> c -> (output), a -> d, (input) -> b -> d" in message


def test_find_cycle():
    assert find_cycle(["a", "b", "c"], links("a>b", "b>c")) is None
    assert find_cycle(["a", "b", "c"], links("a>b", "b>c", "c>b")) == ["b", "c", "b"]
