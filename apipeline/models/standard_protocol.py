"""Decorators of the standard protocol: info, prepare, load, self-test, unload, cleanup and service methods.

Lifecycle: prepare (fetch files) -> load (into memory) -> test (run automatically after load; a failure
marks the service unusable) -> service calls -> unload (keeps files) -> cleanup (deletes files).
"""

from __future__ import annotations

from apipeline.models._protocol import (
    Hook,
    ProtocolKind,
    make_hook_decorator,
    make_service_decorator,
)

_P = ProtocolKind.STANDARD

service_func = make_service_decorator(_P)
get_service_info_func = make_hook_decorator(_P, Hook.INFO)
prepare_func = make_hook_decorator(_P, Hook.PREPARE)
load_func = make_hook_decorator(_P, Hook.LOAD)
test_func = make_hook_decorator(_P, Hook.TEST)
unload_func = make_hook_decorator(_P, Hook.UNLOAD)
cleanup_func = make_hook_decorator(_P, Hook.CLEANUP)

__all__ = [
    "cleanup_func",
    "get_service_info_func",
    "load_func",
    "prepare_func",
    "service_func",
    "test_func",
    "unload_func",
]
