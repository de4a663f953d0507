"""File values checked against constructor annotations, and their JSON Schema."""

from __future__ import annotations

from typing import Literal

import pytest

from apipeline.audio.format import AudioFormat
from apipeline.frames import AudioRawFrame, Frame, TextFrame
from apipeline.graph.annotations import ParamTypeError, check_value, json_schema, settable, to_plain


@pytest.mark.parametrize(
    ("value", "annotation", "expected"),
    [
        (3, float, 3.0),
        (None, int | None, None),
        ("b", Literal["a", "b"], "b"),
        ([1, 2], tuple[int, ...], (1, 2)),
        ("TextFrame", tuple[type[Frame], ...], (TextFrame,)),
        (["AudioRawFrame"], tuple[type[Frame], ...], (AudioRawFrame,)),
        ({"sample_rate": 16000}, AudioFormat, AudioFormat(16000)),
    ],
)
def test_values_convert(value, annotation, expected):
    assert check_value(value, annotation) == expected


@pytest.mark.parametrize(
    ("value", "annotation", "message"),
    [
        (True, int, "expected integer, got boolean True"),
        ("x", float, "expected number, got string 'x'"),
        ("c", Literal["a", "b"], "expected one of 'a', 'b', got 'c'"),
        ([1, "x"], list[int], "item 1: expected integer, got string 'x'"),
        ("Nope", tuple[type[Frame], ...], "item 0: expected the name of a Frame class"),
        ({"rate": 1}, AudioFormat, "expected a mapping with sample_rate, channels, dtype"),
    ],
)
def test_wrong_values_say_what_was_expected(value, annotation, message):
    with pytest.raises(ParamTypeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_value(value, annotation)


def test_plain_round_trip_and_schema():
    assert to_plain((TextFrame,)) == ["TextFrame"]
    assert to_plain(AudioFormat(16000, 1)) == {"sample_rate": 16000, "channels": 1}
    assert json_schema(int | None) == {"anyOf": [{"type": "integer"}, {"type": "null"}]}
    assert not settable(type(print))
