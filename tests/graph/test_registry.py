"""The registry: parameter schemas from constructors, lazy imports, plug-ins by entry point."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata

import pytest

from apipeline.graph import registry as registry_module
from apipeline.graph.registry import Registry, params_of
from tests.graph.conftest import Pass, Required


def test_params_from_signature_annotations_and_docstring():
    params = params_of(Pass)
    assert list(params) == ["gain", "mode"]  # ``name`` is the node id, never a parameter
    assert (
        params["gain"].type_name == "float" and params["gain"].default == 1.0 and not params["gain"].required
    )
    assert params["gain"].description == "a number that is only stored."
    assert params_of(Required)["size"].required


def test_lazy_types_are_not_imported_by_the_graph_package():
    code = (
        "import sys, apipeline.graph as g; r = g.default_registry(); names = r.names(); "
        "print(any(m.startswith('apipeline.processors.audio') or m == 'torch' for m in sys.modules), "
        "'audio.resample' in names)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]


def test_broken_lazy_entry_is_reported_not_raised():
    reg = Registry(entry_points=False)
    reg.register_lazy("ghost", "apipeline.no_such_module:Thing")
    assert "ghost" in reg and list(reg.specs()) == []
    assert "cannot import apipeline.no_such_module:Thing: ModuleNotFoundError" in reg.broken()["ghost"]
    with pytest.raises(KeyError, match="cannot import"):
        reg.get("ghost")


def test_only_processors_register():
    with pytest.raises(TypeError, match="expected a FrameProcessor subclass"):
        Registry(entry_points=False).register("x", dict)


def test_plugins_come_from_entry_points(monkeypatch):
    ep = metadata.EntryPoint(
        name="thirdparty.pass", value="tests.graph.conftest:Pass", group="apipeline.processors"
    )

    def entry_points(group: str):
        return [ep] if group == "apipeline.processors" else []

    monkeypatch.setattr(registry_module.metadata, "entry_points", entry_points)
    reg = Registry()
    assert "thirdparty.pass" in reg.names()
    spec = reg.get("thirdparty.pass")
    assert spec.cls is Pass and spec.origin.startswith("plugin")
