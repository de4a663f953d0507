"""Decorators of the simple protocol: info, prepare (which also loads), service methods, cleanup (which
also unloads). There is no self-test and no separate load/unload."""

from __future__ import annotations

from apipeline.models._protocol import (
    Hook,
    ProtocolKind,
    make_hook_decorator,
    make_service_decorator,
)

_P = ProtocolKind.SIMPLE

service_func = make_service_decorator(_P)
get_service_info_func = make_hook_decorator(_P, Hook.INFO)
prepare_func = make_hook_decorator(_P, Hook.PREPARE)
cleanup_func = make_hook_decorator(_P, Hook.CLEANUP)

__all__ = ["cleanup_func", "get_service_info_func", "prepare_func", "service_func"]
