"""The wire contract's pure rules: query parsing, typed values, tokens, close-code labels."""

from __future__ import annotations

import pytest

from apipeline.errors import SessionRefused
from apipeline.transports import CloseCode, SessionOutcome, parse_query
from apipeline.transports.session import check_token, parse_value
from apipeline.transports.websocket import close_reason


def test_query_splits_reserved_keys_from_typed_settings():
    q = parse_query("pitch=4&formant=1.1&token=abc&sample_rate=48000&channels=2&f0=harvest&sola=false")
    assert q.token == "abc"
    assert (q.sample_rate, q.num_channels) == (48000, 2)
    assert q.settings == {"pitch": 4, "formant": 1.1, "f0": "harvest", "sola": False}
    assert type(q.settings["pitch"]) is int


@pytest.mark.parametrize(
    ("query", "needle"),
    [
        ("pitch=1&pitch=2", "given twice"),
        ("sample_rate=0", "positive integer"),
        ("sample_rate=16000.5", "positive integer"),
        ("channels=two", "positive integer"),
        ("pitch=inf", "not a finite number"),
    ],
)
def test_bad_queries_are_refused_with_policy_code(query, needle):
    with pytest.raises(SessionRefused) as info:
        parse_query(query)
    assert info.value.code == CloseCode.POLICY_VIOLATION
    assert needle in info.value.reason


def test_parse_value_types():
    assert parse_value("-5") == -5
    assert parse_value("0.25") == 0.25
    assert parse_value("TRUE") is True
    assert parse_value("dio") == "dio"


def test_token_check_answers_401_403_or_none():
    assert check_token(None, None) is None
    assert check_token("s3cret", None) == 401
    assert check_token("s3cret", "") == 401
    assert check_token("s3cret", "guess") == 403
    assert check_token("s3cret", "s3cret") is None


def test_outcome_labels_are_bounded():
    assert SessionOutcome(1000, "", True).label == "ok"
    assert SessionOutcome(1002, "", True).label == "protocol_error"
    assert SessionOutcome(1006, "", False).label == "client_gone"
    assert SessionOutcome(1009, "", False).label == "too_big"
    assert SessionOutcome(4321, "", True).label == "error"


def test_close_reason_fits_a_close_frame():
    text = "é" * 200
    cut = close_reason(text)
    assert len(cut.encode()) <= 123 and cut.endswith("...")
    assert close_reason("short") == "short"
