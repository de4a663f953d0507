"""The state machine table: every allowed transition gives its target, every other pair is refused."""

from __future__ import annotations

import pytest

from apipeline.errors import ServiceStateError
from apipeline.models import ProtocolKind, ServiceState
from apipeline.models.state import TRANSITIONS, Action, allowed_actions, next_state

S, A = ServiceState, Action

EXPECTED = {
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
    ProtocolKind.MINIMAL: {(S.REGISTERED, A.PREPARE): S.READY},
}

CASES = [(p, s, a) for p in ProtocolKind for s in ServiceState for a in Action]


def test_table_is_the_documented_one():
    assert TRANSITIONS == EXPECTED


@pytest.mark.parametrize(("protocol", "state", "action"), CASES, ids=lambda v: getattr(v, "value", v))
def test_every_pair_is_allowed_or_refused(protocol, state, action):
    target = EXPECTED[protocol].get((state, action))
    if target is not None:
        assert next_state(protocol, state, action, "svc") is target
    else:
        with pytest.raises(ServiceStateError) as info:
            next_state(protocol, state, action, "svc")
        msg = str(info.value)
        assert f"'svc' ({protocol.value} protocol) is {state.value}" in msg
        assert f"{action.value} is not allowed" in msg
        allowed = allowed_actions(protocol, state)
        assert (", ".join(a.value for a in allowed) or "nothing") in msg
