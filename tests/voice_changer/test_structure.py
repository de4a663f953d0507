"""Item 7: one package, no name defined twice, one home for the defaults, no import cycle."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import apipeline

ROOT = Path(apipeline.__file__).resolve().parent


def _classes() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in ROOT.rglob("*.py"):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef):
                found.setdefault(node.name, []).append(str(path.relative_to(ROOT)))
    return found


def test_voice_changer_class_names_are_defined_once():
    classes = _classes()
    for name in ("VoiceChangerSettings", "F0Processor", "VocoderProcessor", "BlockGate", "InputGuard"):
        assert len(classes.get(name, [])) == 1, (name, classes.get(name))


def test_the_crossfade_default_is_written_once():
    hits = [
        str(p.relative_to(ROOT))
        for p in ROOT.rglob("*.py")
        for line in p.read_text().splitlines()
        if "14.5" in line and not line.lstrip().startswith("#") and "ms" in line and "=" in line
    ]
    assert hits == ["audio/voice_changer.py"], hits


def _imports(module: str) -> set[str]:
    path = ROOT.parent / (module.replace(".", "/") + ".py")
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def test_local_and_remote_builders_do_not_import_each_other():
    assert not any(
        m.startswith("apipeline.voice_changer.remote") for m in _imports("apipeline.voice_changer.local")
    )
    assert not any(
        m.startswith("apipeline.voice_changer.local") for m in _imports("apipeline.voice_changer.remote")
    )
    assert not any(
        m.startswith("apipeline.voice_changer.build") for m in _imports("apipeline.voice_changer.dag")
    )


def test_old_public_names_still_import_from_apps():
    apps = importlib.import_module("apipeline.apps")
    vc = importlib.import_module("apipeline.voice_changer")
    for name in apps.__all__:
        assert getattr(apps, name) is getattr(vc, name)


def test_graph_nodes_share_the_schema_defaults_and_bounds():
    import inspect

    import pytest

    from apipeline.errors import ParameterError
    from apipeline.voice_changer.nodes import BlockGateNode, ReblockNode, SolaNode, VocoderNode
    from apipeline.voice_changer.settings import GEOMETRY_KEYS, VoiceChangerSettings

    schema = VoiceChangerSettings.schema()
    for node in (ReblockNode, BlockGateNode, SolaNode, VocoderNode):
        params = inspect.signature(node.__init__).parameters
        for key in GEOMETRY_KEYS:
            assert params[key].default == schema[key].default
        with pytest.raises(ParameterError, match="search_ms must be within"):
            node(sample_rate=22050, search_ms=-5.0)


def test_graph_node_parameters_named_like_settings_have_their_bounds():
    import pytest

    from apipeline.errors import ParameterError
    from apipeline.voice_changer.nodes import BlockGateNode

    with pytest.raises(ParameterError, match="silence_db must be within"):
        BlockGateNode(sample_rate=22050, silence_db=20.0)
    with pytest.raises(ParameterError, match="did you mean 'adaptive'"):
        BlockGateNode(sample_rate=22050, gate="adaptiv")
