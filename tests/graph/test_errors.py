"""Errors raised on the public paths of graph/, params and outputs: every one is an ApipelineError
(catch one class for everything of ours) and still the builtin type callers caught before."""

from __future__ import annotations

import pytest

from apipeline.errors import (
    ApipelineError,
    ConfigurationError,
    DefinitionError,
    MissingDependencyError,
    UnknownNameError,
)
from apipeline.graph.loader import parse_graph, read_data
from apipeline.graph.registry import Registry, default_registry
from apipeline.params import Param, ParamSchema


def test_unknown_processor_type_and_node():
    with pytest.raises(UnknownNameError, match="unknown processor type 'nope'") as info:
        default_registry().get("nope")
    assert isinstance(info.value, KeyError) and isinstance(info.value, ApipelineError)
    assert str(info.value) == "unknown processor type 'nope'"  # no KeyError quotes
    graph, _ = parse_graph({"nodes": [{"id": "a", "type": "logger"}]})
    with pytest.raises(UnknownNameError, match="no node 'b'"):
        graph.node("b")


def test_registration_written_wrongly():
    with pytest.raises(DefinitionError, match="expected a FrameProcessor subclass") as info:
        Registry(entry_points=False).register("x", int)
    assert isinstance(info.value, TypeError)
    with pytest.raises(ConfigurationError, match="expected 'module:Class'"):
        Registry(entry_points=False).register_lazy("x", "nocolon")


def test_param_schemas_written_wrongly():
    with pytest.raises(DefinitionError, match="type must be one of"):
        Param("x", list, [])  # type: ignore[arg-type]
    with pytest.raises(DefinitionError, match="needs nullable=True"):
        Param("x", int, None)
    with pytest.raises(DefinitionError, match="duplicate parameter 'x'"):
        ParamSchema([Param("x", int, 1), Param("x", int, 2)])


def test_read_data_and_render_arguments():
    with pytest.raises(ConfigurationError, match="give a path or text"):
        read_data()
    from apipeline.graph.draw import render

    graph, _ = parse_graph({"nodes": [{"id": "a", "type": "logger"}]})
    with pytest.raises(ConfigurationError, match="format must be 'png' or 'svg'"):
        render(graph, "gif")


def test_missing_dependency_is_an_import_error_naming_what_to_install(monkeypatch):
    import shutil

    from apipeline.graph.draw import render

    monkeypatch.setattr(shutil, "which", lambda name: None)
    graph, _ = parse_graph({"nodes": [{"id": "a", "type": "logger"}]})
    with pytest.raises(MissingDependencyError, match="graphviz") as info:
        render(graph, "png")
    assert isinstance(info.value, ImportError) and isinstance(info.value, ApipelineError)


def test_a_constructor_missing_a_package_names_the_extra():
    from apipeline.errors import GraphError
    from apipeline.graph import build_pipeline
    from apipeline.processors import FrameProcessor

    class NeedsSoxr(FrameProcessor):
        def __init__(self, *, name: str | None = None) -> None:
            super().__init__(name=name)
            raise ModuleNotFoundError("No module named 'soxr'", name="soxr")

    registry = Registry(entry_points=False)
    registry.register("needs.soxr", NeedsSoxr)
    graph, _ = parse_graph({"nodes": [{"id": "a", "type": "needs.soxr"}]})
    with pytest.raises(GraphError, match=r"pip install 'apipeline\[audio\]'"):
        build_pipeline(graph, registry)
