"""The service state machine, as a pure transition table per protocol.

Standard protocol::

    REGISTERED --prepare--> PREPARED --load--> LOADED --test passed--> READY --unload--> UNLOADED
        |                      |                  `----test failed--> UNUSABLE --unload--^   |
        |                      |                                                             |
        `------cleanup---------+-------------------------cleanup------------------------------+--> CLEANED
    UNLOADED --load--> LOADED      CLEANED --prepare--> PREPARED

Simple protocol (prepare also loads, cleanup also unloads, no self-test)::

    REGISTERED --prepare--> READY --cleanup--> CLEANED --prepare--> READY;   REGISTERED --cleanup--> CLEANED

Minimal protocol: REGISTERED --prepare--> READY (no hook runs; the methods load what they need).

A hook that fails (returns False or raises) leaves the state where it was, except the self-test, whose
failure is the UNUSABLE state. Service calls are allowed in READY only.
"""

from __future__ import annotations

import enum

from apipeline.errors import ServiceStateError
from apipeline.models._protocol import ProtocolKind


class ServiceState(enum.Enum):
    REGISTERED = "registered"
    PREPARED = "prepared"
    LOADED = "loaded"
    READY = "ready"
    UNUSABLE = "unusable"
    UNLOADED = "unloaded"
    CLEANED = "cleaned"


class Action(enum.Enum):
    PREPARE = "prepare"
    LOAD = "load"
    TEST_PASSED = "test passed"
    TEST_FAILED = "test failed"
    UNLOAD = "unload"
    CLEANUP = "cleanup"


S, A = ServiceState, Action

TRANSITIONS: dict[ProtocolKind, dict[tuple[ServiceState, Action], ServiceState]] = {
    ProtocolKind.STANDARD: {
        (S.REGISTERED, A.PREPARE): S.PREPARED,
        (S.CLEANED, A.PREPARE): S.PREPARED,
        (S.PREPARED, A.LOAD): S.LOADED,
        (S.UNLOADED, A.LOAD): S.LOADED,
        (S.LOADED, A.TEST_PASSED): S.READY,
        (S.LOADED, A.TEST_FAILED): S.UNUSABLE,
        (S.LOADED, A.UNLOAD): S.UNLOADED,
        (S.READY, A.UNLOAD): S.UNLOADED,
        (S.UNUSABLE, A.UNLOAD): S.UNLOADED,
        (S.REGISTERED, A.CLEANUP): S.CLEANED,
        (S.PREPARED, A.CLEANUP): S.CLEANED,
        (S.UNLOADED, A.CLEANUP): S.CLEANED,
    },
    ProtocolKind.SIMPLE: {
        (S.REGISTERED, A.PREPARE): S.READY,
        (S.CLEANED, A.PREPARE): S.READY,
        (S.READY, A.CLEANUP): S.CLEANED,
        (S.REGISTERED, A.CLEANUP): S.CLEANED,
    },
    ProtocolKind.MINIMAL: {
        (S.REGISTERED, A.PREPARE): S.READY,
    },
}

#: States in which a service holds its model in memory (counted against the memory budget).
LOADED_STATES = frozenset({S.LOADED, S.READY, S.UNUSABLE})


def allowed_actions(protocol: ProtocolKind, state: ServiceState) -> list[Action]:
    return [a for (s, a) in TRANSITIONS[protocol] if s is state]


def next_state(protocol: ProtocolKind, state: ServiceState, action: Action, service: str) -> ServiceState:
    """The state after ``action``; raises ServiceStateError naming what is allowed when it is refused."""
    try:
        return TRANSITIONS[protocol][(state, action)]
    except KeyError:
        allowed = ", ".join(a.value for a in allowed_actions(protocol, state)) or "nothing"
        raise ServiceStateError(
            f"service {service!r} ({protocol.value} protocol) is {state.value}: "
            f"{action.value} is not allowed there (allowed: {allowed})"
        ) from None
