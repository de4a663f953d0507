"""What a hostile 16 MiB message costs before a serializer refuses it (memory and time).

Each case runs in a fresh subprocess (so peak RSS is its own) and prints the traced Python allocation
peak (tracemalloc), the growth of the peak RSS over the RSS before the call (Linux; it also sees the
protobuf parser's C allocations), the time to the verdict and the verdict. Run by hand:

    PYTHONPATH=. python benchmarks/serializer_limits.py            # all cases
    PYTHONPATH=. python benchmarks/serializer_limits.py json-list  # one case

Cases: ``json-list`` a top-level ``[{},{},...]``; ``json-metrics`` a MetricsFrame whose data is
``[{},{},...]``; ``pb-shape`` an image whose packed ``shape`` has 16 million entries; ``pb-metadata``
an Envelope whose ``metadata_json`` is ``{"k":[{},{},...]}``.
"""

from __future__ import annotations

import subprocess
import sys
import time
import tracemalloc

MiB = 1 << 20
SIZE = 16 * MiB - 4096
CASES = ("json-list", "json-metrics", "pb-shape", "pb-metadata")


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _dicts(size: int) -> str:
    return "[" + "{}," * (size // 3) + "{}]"  # no list of pieces: building it must not raise the peak


def build(case: str) -> bytes | str:
    if case == "json-list":
        return _dicts(SIZE)
    if case == "json-metrics":
        return '{"type":"MetricsFrame","fields":{"data":' + _dicts(SIZE - 64) + "}}"
    if case == "pb-shape":
        shape = _field(2, b"\x00" * (SIZE - 64))
        return _field(32, _field(2, _field(1, b"uint8") + shape))
    if case == "pb-metadata":
        return _field(4, ('{"k":' + _dicts(SIZE - 64) + "}").encode()) + _field(30, b"")
    raise SystemExit(f"unknown case {case!r}; expected one of {CASES}")


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {key} in /proc/self/status")


def _reset_peak_rss() -> int:
    """Reset the peak RSS to the current RSS (Linux), so building the message does not count."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _status_kib("VmRSS")


def run_one(case: str) -> None:
    from apipeline.errors import SerializationError
    from apipeline.serializers import JsonFrameSerializer, ProtobufFrameSerializer

    message = build(case)
    serializer = JsonFrameSerializer() if case.startswith("json") else ProtobufFrameSerializer()
    rss0 = _reset_peak_rss()
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        frame = serializer.deserialize(message)
        verdict = f"ACCEPTED as {type(frame).__name__}"
    except SerializationError as e:
        verdict = f"refused: {str(e)[:90]}"
    seconds = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss = (_status_kib("VmHWM") - rss0) / 1024
    print(
        f"{case:13s} {len(message) / MiB:5.1f} MiB  traced peak +{peak / MiB:7.1f} MiB  "
        f"peak RSS +{rss:7.1f} MiB  {seconds * 1000:9.1f} ms  {verdict}",
        flush=True,
    )


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--one":
        run_one(sys.argv[2])
        return
    for case in sys.argv[1:] or CASES:
        subprocess.run([sys.executable, __file__, "--one", case], check=False)


if __name__ == "__main__":
    main()
