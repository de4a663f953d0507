"""Decorators of the minimal protocol: info and service methods only; the methods load what they need."""

from __future__ import annotations

from apipeline.models._protocol import (
    Hook,
    ProtocolKind,
    make_hook_decorator,
    make_service_decorator,
)

_P = ProtocolKind.MINIMAL

service_func = make_service_decorator(_P)
get_service_info_func = make_hook_decorator(_P, Hook.INFO)

__all__ = ["get_service_info_func", "service_func"]
