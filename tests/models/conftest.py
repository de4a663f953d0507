"""Fixtures for model-service tests: service modules written to disk and imported by module path."""

from __future__ import annotations

import itertools
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

_COUNTER = itertools.count()


@pytest.fixture
def service_module(tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """Write ``source`` as a fresh module on sys.path and return its import path."""
    created: list[str] = []
    sys.path.insert(0, str(tmp_path))

    def write(source: str) -> str:
        name = f"_apipeline_test_services_{next(_COUNTER)}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        created.append(name)
        return name

    yield write
    sys.path.remove(str(tmp_path))
    for name in created:
        sys.modules.pop(name, None)


STANDARD_SERVICE = """
from apipeline.models.standard_protocol import (
    cleanup_func, get_service_info_func, load_func, prepare_func, service_func, test_func, unload_func)

CALLS = []
TEST_RESULT = [True]

@get_service_info_func("adder")
def info():
    return {
        "service_name": "adder",
        "service_desc": "adds numbers",
        "resources": {"cpu": 1, "memory": 100 * 2**20},
        "methods": [
            {"name": "add", "desc": "a + b",
             "params": [{"name": "a", "type": "int", "type_desc": "integer", "desc": "left"},
                        {"name": "b", "type": "int|float", "type_desc": "number", "desc": "right"},
                        {"name": "scale", "type": "float", "type_desc": "number", "desc": "factor",
                         "required": False}],
             "return": {"type": "float|int", "type_desc": "number", "desc": "the sum"}},
            {"name": "concat", "desc": "a b",
             "params": [{"name": "a", "type": "str"}, {"name": "b", "type": "str"}],
             "return": {"type": "str"}},
        ],
    }

@prepare_func("adder")
def prepare():
    CALLS.append("prepare")
    return True

@load_func("adder")
def load():
    CALLS.append("load")
    return True

@test_func("adder")
def self_test():
    CALLS.append("test")
    return TEST_RESULT[0]

@unload_func("adder")
def unload():
    CALLS.append("unload")
    return True

@cleanup_func("adder")
def cleanup():
    CALLS.append("cleanup")
    return True

@service_func("add", "adder")
def add(a, b, scale=1.0):
    return (a + b) * scale

@service_func("concat", "adder")
def concat(a, b):
    return a + " " + b
"""


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny models of tools/make_tiny_models.py, built once per test session (about 2 s, torch CPU).

    Generated rather than committed: no binary blobs in git, and the generator is exercised on every run.
    """
    pytest.importorskip("torch")
    import importlib.util

    tool = Path(__file__).resolve().parents[2] / "tools" / "make_tiny_models.py"
    spec = importlib.util.spec_from_file_location("make_tiny_models", tool)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    paths: dict[str, Path] = module.build_all(tmp_path_factory.mktemp("tiny_models"), seed=0)
    return paths
