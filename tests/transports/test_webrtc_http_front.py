"""The front of the server's port, sans I/O: routing on the first bytes and the bounded request reader."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apipeline.transports.http_front import HttpError, HttpResponse, RequestReader, render_response, route

PATHS = frozenset({"/webrtc/offer", "/webrtc/config"})


@pytest.mark.parametrize(
    ("prefix", "ours"),
    [
        (b"POST /webrtc/offer HTTP/1.1\r\n", True),
        (b"POST /webrtc/offer?pitch=4 HTTP/1.1\r\n", True),
        (b"GET /webrtc/config?token=t HTTP/1.1\r\n", True),
        (b"OPTIONS /webrtc/offer HTTP/1.1\r\n", True),
        (b"POST /webrtc/offer", None),  # the path may go on
        (b"POST /webrtc/offe", None),
        (b"POS", None),
        (b"", None),
        (b"GET /ws?pitch=4 HTTP/1.1\r\n", False),
        (b"GET /w", None),
        (b"GET /ws", False),  # decided on the first byte that differs: no wait for the line's end
        (b"GET /webrtc/offerx HTTP/1.1\r\n", False),
        (b"GET /webrtc/other HTTP/1.1\r\n", False),
        (b"PUT /webrtc/offer HTTP/1.1\r\n", False),
        (b"POST /health HTTP/1.1\r\n", False),
        (b"\x16\x03\x01", False),  # a TLS hello on a plain port
        (b"\r\n", False),
    ],
)
def test_route_decides_on_the_first_bytes(prefix, ours):
    assert route(prefix, PATHS) is ours


@given(st.binary(max_size=120))
def test_route_never_claims_what_is_not_a_signalling_request_line(data):
    ours = route(data, PATHS)
    line = data.split(b"\n", 1)[0]
    if ours:
        assert any(line.startswith(f"{m} {p}".encode()) for m in ("GET", "POST", "OPTIONS") for p in PATHS)
    if ours is None:
        assert b"\n" not in data and len(data) < 40  # undecided only while a prefix of ours


@given(st.binary(max_size=200))
def test_once_decided_more_bytes_do_not_change_the_route(data):
    first = route(data, PATHS)
    if first is not None:
        assert route(data + b"more bytes\r\n", PATHS) is first


REQUEST = (
    b"POST /webrtc/offer?pitch=4 HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\n"
    b'Content-Length: 11\r\n\r\n{"a": true}'
)


def test_a_request_read_whole_or_a_byte_at_a_time_is_the_same():
    whole = RequestReader().feed(REQUEST)
    reader = RequestReader()
    parts = [reader.feed(REQUEST[i : i + 1]) for i in range(len(REQUEST))]
    assert parts[:-1] == [None] * (len(REQUEST) - 1)
    assert parts[-1] == whole
    assert whole is not None
    assert (whole.method, whole.path, whole.query) == ("POST", "/webrtc/offer", "pitch=4")
    assert whole.headers["content-type"] == "application/json" and whole.body == b'{"a": true}'


@given(st.lists(st.integers(min_value=1, max_value=len(REQUEST)), max_size=6))
def test_any_split_of_a_request_reads_the_same(cuts):
    reader = RequestReader()
    points = [*sorted(set(cuts)), len(REQUEST)]
    start, got = 0, None
    for p in points:
        got = reader.feed(REQUEST[start:p])
        start = p
    assert got == RequestReader().feed(REQUEST)


@pytest.mark.parametrize(
    ("data", "status", "reason"),
    [
        (b"POST /webrtc/offer HTTP/1.1\r\n\r\n", 411, "needs a Content-Length"),
        (b"POST /webrtc/offer HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 411, "Transfer-Encoding"),
        (b"POST /webrtc/offer HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400, "is not a number"),
        (b"POST /webrtc/offer HTTP/1.1\r\nContent-Length: \xd9\xa1\r\n\r\n", 400, "is not a number"),
        (b"POST /webrtc/offer HTTP/1.1\r\nContent-Length: 99999\r\n\r\n", 413, "over the limit"),
        (b"POST /webrtc/offer HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", 400, "twice"),
        (b"POST /webrtc/offer HTTP/1.1\r\nbad header\r\n\r\n", 400, "malformed header"),
        (b"POST /webrtc/offer HTTP/1.1\r\n Folded: x\r\n\r\n", 400, "malformed header"),
        (b"POST /webrtc/offer\r\n\r\n", 400, "malformed request line"),
        (b"POST webrtc HTTP/1.1\r\n\r\n", 400, "malformed request line"),
        (b"POST /webrtc/offer HTTP/1.1\r\nX: " + b"y" * 20000, 431, "header block over"),
    ],
)
def test_requests_the_reader_will_not_take(data, status, reason):
    reader = RequestReader(max_body_bytes=65536)
    with pytest.raises(HttpError) as err:
        reader.feed(data)
    assert err.value.status == status and reason in err.value.reason


@given(st.binary(max_size=600))
def test_hostile_bytes_give_a_request_none_or_an_http_error(data):
    reader = RequestReader(max_header_bytes=256, max_body_bytes=128)
    try:
        request = reader.feed(data)
    except HttpError as exc:
        assert exc.status in (400, 411, 413, 431) and exc.reason
        return
    if request is not None:
        assert len(request.body) <= 128 and request.target.startswith("/")


def test_responses_are_complete_and_refuse_header_injection():
    data = render_response(HttpResponse.text(503, "too many sessions", Allow="POST"))
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0] == b"HTTP/1.1 503 Service Unavailable"
    assert b"Content-Length: 18" in head and b"Connection: close" in head and body == b"too many sessions\n"
    with pytest.raises(ValueError, match="line break"):
        render_response(HttpResponse(200, headers={"X": "a\r\nSet-Cookie: b"}))
