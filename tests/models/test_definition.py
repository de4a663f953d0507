"""Collecting services from modules and classes; every way to write one wrongly is refused clearly."""

from __future__ import annotations

import pytest

from apipeline.errors import ServiceDefinitionError
from apipeline.models import ProtocolKind, collect_services, service_method
from apipeline.models.standard_protocol import load_func, service_func
from tests.models.conftest import STANDARD_SERVICE


def test_collects_standard_service_from_module_path(service_module):
    path = service_module(STANDARD_SERVICE)
    (d,) = collect_services(path)
    assert d.name == "adder"
    assert d.protocol is ProtocolKind.STANDARD
    assert set(d.methods) == {"add", "concat"}
    assert d.source == path


def test_protocols_work_side_by_side_in_one_module(service_module):
    path = service_module("""
        from apipeline.models import simple_protocol as sp, minimal_protocol as mp

        @sp.get_service_info_func("s1")
        def info1():
            return {"service_name": "s1", "methods": [{"name": "f", "params": []}]}
        @sp.prepare_func("s1")
        def prep(): return True
        @sp.cleanup_func("s1")
        def clean(): return True
        @sp.service_func("f", "s1")
        def f1(): return 1

        @mp.get_service_info_func("s2")
        def info2():
            return {"service_name": "s2", "methods": [{"name": "f", "params": []}]}
        @mp.service_func("f", "s2")
        def f2(): return 2
    """)
    kinds = {d.name: d.protocol for d in collect_services(path)}
    assert kinds == {"s1": ProtocolKind.SIMPLE, "s2": ProtocolKind.MINIMAL}


def test_mixing_protocols_in_one_service_is_refused(service_module):
    path = service_module("""
        from apipeline.models import simple_protocol as sp, standard_protocol as st
        @sp.get_service_info_func("mixed")
        def info():
            return {"service_name": "mixed", "methods": [{"name": "f"}]}
        @st.service_func("f", "mixed")
        def f(): return 1
    """)
    with pytest.raises(ServiceDefinitionError, match=r"mixes protocols.*one service uses one protocol"):
        collect_services(path)


def test_one_function_marked_for_two_protocols_is_refused_at_decoration():
    from apipeline.models import minimal_protocol

    @service_func("f", "x")
    def f():
        return 1

    with pytest.raises(ServiceDefinitionError, match="standard protocol and now for the minimal"):
        minimal_protocol.service_func("g", "x")(f)


@pytest.mark.parametrize("bad", ["", None, 3])
def test_decorator_names_must_be_strings(bad):
    with pytest.raises(ServiceDefinitionError, match="non-empty string"):
        load_func(bad)


def test_missing_hook_is_named(service_module):
    path = service_module(STANDARD_SERVICE.replace('@unload_func("adder")', ""))
    with pytest.raises(ServiceDefinitionError, match="lacks the unload hook"):
        collect_services(path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ('"name": "concat", "desc": "a b"', '"name": "other", "desc": "a b"'),
            "in its info but not implemented",
        ),
        (('{"name": "a", "type": "str"}', '{"name": "c", "type": "str"}'), "does not take"),
        (
            ('"type": "int", "type_desc": "integer"', '"type": "integer32", "type_desc": "integer"'),
            "unknown type",
        ),
        (('"service_name": "adder"', '"service_name": "other"'), "returns info for service_name 'other'"),
        (('"cpu": 1', '"cpu": -2'), "resources.cpu must be a positive"),
        (('"memory": 100 * 2**20', '"memory": "lots"'), "resources.memory must be bytes"),
    ],
)
def test_info_inconsistent_with_code_is_refused(service_module, change, message):
    path = service_module(STANDARD_SERVICE.replace(*change))
    with pytest.raises(ServiceDefinitionError, match=message):
        collect_services(path)


def test_undeclared_required_argument_is_refused(service_module):
    path = service_module(STANDARD_SERVICE.replace("def concat(a, b):", "def concat(a, b, c):"))
    with pytest.raises(ServiceDefinitionError, match="requires 'c' but the info does not declare it"):
        collect_services(path)


def test_module_without_services_is_refused(service_module):
    with pytest.raises(ServiceDefinitionError, match="defines no service"):
        collect_services(service_module("X = 1\n"))
    with pytest.raises(ServiceDefinitionError, match="cannot import service module"):
        collect_services("no_such_module_for_apipeline_tests")


class Echo:
    """A minimal-protocol service written as a class."""

    def info(self) -> dict:
        return {
            "service_name": "echo",
            "methods": [{"name": "echo", "params": [{"name": "x", "type": "any"}]}],
        }

    @service_method()
    def echo(self, x):
        return x


def test_class_protocol_is_inferred_and_can_be_declared():
    (d,) = collect_services(Echo)
    assert (d.name, d.protocol, list(d.methods)) == ("echo", ProtocolKind.MINIMAL, ["echo"])

    class WithLoad(Echo):
        protocol = "simple"

        def load(self) -> bool:
            return True

    with pytest.raises(ServiceDefinitionError, match="simple protocol, which has no load hook"):
        collect_services(WithLoad())

    class BadKind(Echo):
        protocol = "fancy"

    with pytest.raises(ServiceDefinitionError, match="protocol must be one of"):
        collect_services(BadKind)


def test_class_needing_arguments_asks_for_an_instance():
    class NeedsPath(Echo):
        def __init__(self, path: str) -> None:
            self.path = path

    with pytest.raises(ServiceDefinitionError, match="register an instance instead"):
        collect_services(NeedsPath)
    assert collect_services(NeedsPath("x"))[0].name == "echo"
