"""The JSON Schema of the native graph format, generated from the registry.

Each registered type contributes an ``if type == T then params match T's schema`` clause, so editors
that read JSON Schema (VS Code's YAML extension, for one) complete and check parameters. The schema
of the built-in types ships as ``apipeline/graph/graph.schema.json``; ``apipeline graph schema``
prints the schema of what is registered now (plug-ins included), and :func:`write_shipped_schema`
regenerates the shipped file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from apipeline.graph.registry import Registry, default_registry

SHIPPED = Path(__file__).with_name("graph.schema.json")
_ID = "^[A-Za-z_][A-Za-z0-9_-]*$"


def graph_schema(registry: Registry | None = None) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a native graph file for the types in ``registry``."""
    registry = registry or default_registry()
    clauses = []
    types = []
    for spec in registry.specs():
        if spec.usable is not None:
            continue
        types.append(spec.name)
        clauses.append(
            {
                "if": {"properties": {"type": {"const": spec.name}}, "required": ["type"]},
                "then": {"properties": {"params": registry.json_schema(spec.name)}},
            }
        )
    endpoint = {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z0-9_]+)?$"}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://apipeline.dev/schemas/graph-1.json",
        "title": "apipeline graph",
        "type": "object",
        "additionalProperties": False,
        "required": ["nodes"],
        "properties": {
            "version": {"const": 1},
            "name": {"type": "string"},
            "description": {"type": "string"},
            "auto_convert": {"type": "boolean"},
            "backend": {"enum": ["local", "ray"]},
            "ray_address": {"type": ["string", "null"]},
            "ray": {"type": "object"},
            "join": {"enum": ["sync_parallel", "parallel"]},
            "bind": {"type": "object", "additionalProperties": {"type": "string", "pattern": r"^[^.]+\..+$"}},
            "nodes": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/node"}},
            "flow": {"$ref": "#/$defs/chain"},
            "links": {"type": "array", "items": {"$ref": "#/$defs/link"}},
        },
        "not": {"required": ["flow", "links"]},
        "$defs": {
            "node": {
                "type": "object",
                "additionalProperties": False,
                "required": ["id", "type"],
                "properties": {
                    "id": {"type": "string", "pattern": _ID},
                    "type": {"enum": types} if types else {"type": "string"},
                    "params": {"type": "object"},
                    "inputs": {"type": "array", "items": {"type": "string"}},
                    "outputs": {"type": "array", "items": {"type": "string"}},
                    "auto": {"type": "boolean"},
                },
                "allOf": clauses,
            },
            "chain": {
                "anyOf": [
                    {"type": "array", "items": {"$ref": "#/$defs/item"}},
                    {"$ref": "#/$defs/item"},
                ]
            },
            "item": {
                "anyOf": [
                    {"type": "string", "pattern": _ID},
                    {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["parallel"],
                        "properties": {"parallel": {"type": "array", "items": {"$ref": "#/$defs/chain"}}},
                    },
                    {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["sync_parallel"],
                        "properties": {
                            "sync_parallel": {"type": "array", "items": {"$ref": "#/$defs/chain"}}
                        },
                    },
                    {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["group"],
                        "properties": {
                            "group": {"type": "string", "pattern": _ID},
                            "flow": {"$ref": "#/$defs/chain"},
                        },
                    },
                ]
            },
            "link": {
                "anyOf": [
                    {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["from", "to"],
                        "properties": {"from": endpoint, "to": endpoint},
                    },
                    {"type": "array", "prefixItems": [endpoint, endpoint], "minItems": 2, "maxItems": 2},
                    {"type": "string", "pattern": "->"},
                ]
            },
        },
    }


def schema_text(registry: Registry | None = None) -> str:
    return json.dumps(graph_schema(registry), indent=2, sort_keys=False) + "\n"


def write_shipped_schema() -> Path:
    """Regenerate the shipped schema file from the built-in registry."""
    SHIPPED.write_text(schema_text(builtin_registry()), encoding="utf-8")
    return SHIPPED


def builtin_registry() -> Registry:
    """A registry with the built-in types only (no plug-ins): what the shipped schema describes."""
    from apipeline.graph.builtins import register_builtins

    registry = Registry(entry_points=False)
    register_builtins(registry)
    return registry
