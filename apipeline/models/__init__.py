"""Model services: a lifecycle protocol for backend models, a registry that drives it, and neural runners.

Map of the package:

* ``standard_protocol``, ``simple_protocol``, ``minimal_protocol`` -- the decorators services are written
  with (seed 001); ``_protocol`` holds what they share.
* ``info`` -- the service-info dict (name, description, resources, methods and their params), parsed and
  used to validate call parameters.
* ``definition`` -- one service's callables, collected from a module or written as a class.
* ``state`` -- the lifecycle state machine as a pure transition table.
* ``resources`` -- what the machine offers and the check a service must pass before loading.
* ``backend`` -- the ``ModelBackend`` seam and the in-process ``LocalBackend`` (bounded thread pool).
* ``ray_backend`` -- ``RayBackend``: Ray actor pools shared by many streams (``apipeline[ray]``; ray is
  imported when it starts); ``backends.backend_from_address`` picks one from a CLI/graph option;
  ``batching`` -- ``@batchable`` methods a pool batches across streams.
* ``registry`` -- ``ModelRegistry``: register, ready, run, unload, cleanup, LRU under a memory budget.
* ``runners`` -- ONNX/TorchScript runners for content encoders, so-vits-svc, RVC and NSF-HiFiGAN.
* ``services`` -- ready-made services around the runners and the F0 estimators.

Importing this package imports neither onnxruntime nor torch.
"""

from __future__ import annotations

from apipeline.models._protocol import Hook as Hook
from apipeline.models._protocol import ProtocolKind as ProtocolKind
from apipeline.models._protocol import service_method as service_method
from apipeline.models.backend import LocalBackend as LocalBackend
from apipeline.models.backend import ModelBackend as ModelBackend
from apipeline.models.backends import backend_from_address as backend_from_address
from apipeline.models.batching import batchable as batchable
from apipeline.models.definition import ServiceDefinition as ServiceDefinition
from apipeline.models.definition import collect_services as collect_services
from apipeline.models.info import ServiceInfo as ServiceInfo
from apipeline.models.ray_backend import RayBackend as RayBackend
from apipeline.models.registry import ModelRegistry as ModelRegistry
from apipeline.models.registry import ServiceStats as ServiceStats
from apipeline.models.resources import MachineResources as MachineResources
from apipeline.models.resources import probe_machine as probe_machine
from apipeline.models.state import ServiceState as ServiceState

__all__ = [
    "Hook",
    "LocalBackend",
    "MachineResources",
    "ModelBackend",
    "ModelRegistry",
    "ProtocolKind",
    "RayBackend",
    "ServiceDefinition",
    "ServiceInfo",
    "ServiceState",
    "ServiceStats",
    "backend_from_address",
    "batchable",
    "collect_services",
    "probe_machine",
    "service_method",
]
