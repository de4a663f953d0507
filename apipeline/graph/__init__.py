"""Declarative graphs: processors named by registered type, linked in a file, built into pipelines.

* :mod:`~apipeline.graph.registry`: the processor-type registry (:func:`register_processor`, plug-ins
  through the ``apipeline.processors`` entry-point group), parameter schemas from constructors.
* :mod:`~apipeline.graph.annotations`: checking file values against constructor annotations.
* :mod:`~apipeline.graph.model`: the graph model (:class:`Graph`, :class:`Node`, :class:`Link`, flow trees).
* :mod:`~apipeline.graph.loader`: YAML/JSON graph files in and out (:func:`load_graph`, :func:`dump_graph`).
* :mod:`~apipeline.graph.modulespack`: the modulespack2-style JSON front end.
* :mod:`~apipeline.graph.validate`: every problem with its place, before anything runs.
* :mod:`~apipeline.graph.lower`: DAG links to serial/parallel structure; cycle detection.
* :mod:`~apipeline.graph.build`: instantiate, negotiate formats (auto converters), assemble pipelines.
* :mod:`~apipeline.graph.draw`: DOT, Mermaid, PNG/SVG.
* :mod:`~apipeline.graph.schema`: the JSON Schema of the format.

Importing this package imports no audio or model processor: they register by import path.
"""

from apipeline.graph.build import BuiltGraph as BuiltGraph
from apipeline.graph.build import build_pipeline as build_pipeline
from apipeline.graph.build import check_graph as check_graph
from apipeline.graph.draw import render as render
from apipeline.graph.draw import to_dot as to_dot
from apipeline.graph.draw import to_mermaid as to_mermaid
from apipeline.graph.loader import dump_graph as dump_graph
from apipeline.graph.loader import load_graph as load_graph
from apipeline.graph.loader import parse_graph as parse_graph
from apipeline.graph.model import Branches as Branches
from apipeline.graph.model import Chain as Chain
from apipeline.graph.model import Graph as Graph
from apipeline.graph.model import Group as Group
from apipeline.graph.model import Link as Link
from apipeline.graph.model import Node as Node
from apipeline.graph.model import Problem as Problem
from apipeline.graph.modulespack import parse_modulespack as parse_modulespack
from apipeline.graph.registry import ProcessorSpec as ProcessorSpec
from apipeline.graph.registry import Registry as Registry
from apipeline.graph.registry import default_registry as default_registry
from apipeline.graph.registry import register_processor as register_processor
from apipeline.graph.schema import graph_schema as graph_schema
from apipeline.graph.validate import validate_graph as validate_graph

__all__ = [
    "Branches",
    "BuiltGraph",
    "Chain",
    "Graph",
    "Group",
    "Link",
    "Node",
    "ProcessorSpec",
    "Problem",
    "Registry",
    "build_pipeline",
    "check_graph",
    "default_registry",
    "dump_graph",
    "graph_schema",
    "load_graph",
    "parse_graph",
    "parse_modulespack",
    "register_processor",
    "render",
    "to_dot",
    "to_mermaid",
    "validate_graph",
]
