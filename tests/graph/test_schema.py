"""The JSON Schema: generated from the registry, shipped, and accepting the example graphs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from apipeline.graph.schema import SHIPPED, builtin_registry, graph_schema, schema_text

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "graphs"


def test_shipped_schema_is_up_to_date():
    registry = builtin_registry()
    list(registry.specs())
    if registry.broken():
        pytest.skip(f"some built-in types do not import here: {registry.broken()}")
    assert json.loads(SHIPPED.read_text()) == json.loads(schema_text(registry)), (
        "regenerate with: python -c 'from apipeline.graph.schema import write_shipped_schema as w; w()'"
    )


def test_schema_validates_examples_and_rejects_bad_params():
    jsonschema = pytest.importorskip("jsonschema")
    schema = graph_schema(builtin_registry())
    validator = jsonschema.Draft202012Validator(schema)
    for path in EXAMPLES.glob("*.yaml"):
        validator.validate(yaml.safe_load(path.read_text()))
    bad = {"nodes": [{"id": "r", "type": "audio.resample", "params": {"out_rate": "fast"}}]}
    errors = list(validator.iter_errors(bad))
    assert errors and any("'fast' is not of type 'integer'" in e.message for e in errors)
    assert list(validator.iter_errors({"nodes": [{"id": "x", "type": "nope"}]}))
