"""The parameter schema refuses what it does not declare and keeps values in range."""

import math

import pytest

from apipeline.errors import ConfigurationError, ParameterError
from apipeline.params import Param, ParamSchema

SCHEMA = ParamSchema(
    [
        Param("pitch", float, 0.0, minimum=-24, maximum=24, live=True, unit="semitones"),
        Param("block_ms", float, 35.0, minimum=10, maximum=200, unit="ms"),
        Param("f0", str, "dio", choices=("dio", "harvest")),
        Param("vad", bool, True),
        Param("jobs", int, 1, minimum=1, maximum=8),
        Param("sample_rate", int, None, nullable=True, minimum=8000, maximum=96000),
    ]
)


def test_valid_values_are_converted():
    assert SCHEMA.check({"pitch": 3, "jobs": 2.0}) == {"pitch": 3.0, "jobs": 2}
    out = SCHEMA.check(
        {"pitch": "-3.5", "vad": "off", "sample_rate": "none", "f0": "harvest"}, from_text=True
    )
    assert out == {"pitch": -3.5, "vad": False, "sample_rate": None, "f0": "harvest"}


@pytest.mark.parametrize(
    ("values", "needle"),
    [
        ({"pitch": 99}, "pitch must be within -24..24 semitones"),
        ({"pitch": math.nan}, "finite"),
        ({"pitch": 1e308}, "within"),
        ({"pitch": True}, "must be a number"),
        ({"jobs": 1.5}, "integer"),
        ({"f0": "harvset"}, "did you mean 'harvest'"),
        ({"pitchh": 1}, "unknown parameter 'pitchh' (did you mean 'pitch'?)"),
        ({"push_frame": 1}, "unknown parameter 'push_frame'"),
        ({"vad": None}, "must not be null"),
    ],
)
def test_bad_values_are_refused_with_a_precise_message(values, needle):
    with pytest.raises(ParameterError) as err:
        SCHEMA.check(values)
    assert needle in str(err.value)
    assert isinstance(err.value, ConfigurationError) and isinstance(err.value, ValueError)


def test_text_that_is_not_a_number_is_refused():
    with pytest.raises(ParameterError, match="block_ms must be a number"):
        SCHEMA.check({"block_ms": "lots"}, from_text=True)
    with pytest.raises(ParameterError, match="must be within"):
        SCHEMA.check({"block_ms": "1000000"}, from_text=True)
    with pytest.raises(ParameterError, match="finite"):
        SCHEMA.check({"block_ms": "nan"}, from_text=True)


def test_live_updates_refuse_fixed_parameters_and_report_every_problem():
    with pytest.raises(ParameterError) as err:
        SCHEMA.check({"block_ms": 20, "pitch": 50, "nope": 1}, live=True)
    assert len(err.value.problems) == 3
    assert "block_ms cannot change mid-stream" in str(err.value)
    assert SCHEMA.check({"pitch": 5}, live=True) == {"pitch": 5.0}


def test_schema_describes_itself():
    js = SCHEMA.json_schema()
    assert js["additionalProperties"] is False
    assert js["properties"]["pitch"]["maximum"] == 24
    assert js["properties"]["sample_rate"]["type"] == ["integer", "null"]
    assert SCHEMA.defaults()["f0"] == "dio"
    assert SCHEMA.live_names() == ("pitch",)
    assert ("f0", "'dio' | 'harvest'", "dio", False, "") in SCHEMA.describe()


def test_a_schema_whose_default_breaks_its_bounds_is_refused():
    with pytest.raises(ParameterError):
        Param("x", float, 5.0, maximum=1.0)
    with pytest.raises(TypeError):
        Param("x", list, [])
    with pytest.raises(TypeError):
        ParamSchema([Param("a", int, 1), Param("a", int, 2)])
