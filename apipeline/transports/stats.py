"""Server statistics and their Prometheus text exposition (format 0.0.4), with no client library.

Per session, :class:`SessionCounters` is a handful of integers the transport processors bump (one
attribute add per message: the per-frame path stays cheap). :class:`ServerStats` owns the counters of
live sessions and the totals of finished ones, folds the processors' ``MetricsFrame`` records into
per-processor latency, and renders everything as Prometheus text at scrape time:

* ``apipeline_sessions_active{transport}``, ``apipeline_sessions_total{transport,outcome}``
* ``apipeline_frames_received_total``, ``apipeline_frames_sent_total``, ``apipeline_send_drops_total``
* ``apipeline_audio_seconds_received_total``, ``apipeline_compute_seconds_total`` and their ratio
  ``apipeline_realtime_factor`` (compute time per second of audio; < 1 keeps real time)
* ``apipeline_processor_latency_seconds{processor}`` (summary: count, sum) and its recent
  ``..._p50_seconds``/``..._p99_seconds`` gauges. Processor labels drop the ``#id`` suffix of instance
  names, so label cardinality stays bounded however many sessions come and go.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

_INSTANCE_SUFFIX = re.compile(r"#\d+")


@dataclass(slots=True)
class SessionCounters:
    """What one session moved so far."""

    frames_in: int = 0
    frames_out: int = 0
    drops: int = 0
    audio_seconds_in: float = 0.0
    compute_ns: int = 0


@dataclass(slots=True)
class _ProcessorStats:
    count: int = 0
    sum_ns: int = 0
    p50_ns: int = 0
    p99_ns: int = 0


class ServerStats:
    """Live and finished sessions of one server, rendered as Prometheus text."""

    def __init__(self) -> None:
        self.active: dict[int, tuple[str, SessionCounters]] = {}
        self.finished = SessionCounters()
        self.outcomes: Counter[tuple[str, str]] = Counter()
        #: handshakes refused, by (transport, reason)
        self.refusals: Counter[tuple[str, str]] = Counter()
        self.processors: dict[str, _ProcessorStats] = {}
        # (session key, processor instance) -> (count, total ns) already folded in
        self._seen: dict[tuple[int, str], tuple[int, int]] = {}

    def refused(self, transport: str, reason: str) -> None:
        """Count a refused handshake (``reason``: a short fixed label such as ``invalid_token``)."""
        self.refusals[(transport, reason)] += 1

    def session_started(self, transport: str) -> tuple[int, SessionCounters]:
        counters = SessionCounters()
        key = id(counters)
        self.active[key] = (transport, counters)
        return key, counters

    def session_ended(self, key: int, outcome: str) -> None:
        transport, c = self.active.pop(key)
        f = self.finished
        f.frames_in += c.frames_in
        f.frames_out += c.frames_out
        f.drops += c.drops
        f.audio_seconds_in += c.audio_seconds_in
        f.compute_ns += c.compute_ns
        self.outcomes[(transport, outcome)] += 1
        for seen in [k for k in self._seen if k[0] == key]:
            del self._seen[seen]

    def observe_metrics(self, key: int, records: list[dict[str, Any]]) -> None:
        """Fold ``MetricsFrame`` records (cumulative per processor instance) into the totals."""
        entry = self.active.get(key)
        for record in records:
            processing = record.get("processing")
            name = record.get("processor")
            if not isinstance(processing, dict) or not isinstance(name, str):
                continue
            count = int(processing.get("count", 0))
            total = int(processing.get("mean_ns", 0)) * count
            last_count, last_total = self._seen.get((key, name), (0, 0))
            self._seen[(key, name)] = (count, total)
            stats = self.processors.setdefault(_INSTANCE_SUFFIX.sub("", name), _ProcessorStats())
            stats.count += max(0, count - last_count)
            stats.sum_ns += max(0, total - last_total)
            stats.p50_ns = int(processing.get("p50_ns", 0))
            stats.p99_ns = int(processing.get("p99_ns", 0))
            if entry is not None:
                entry[1].compute_ns += max(0, total - last_total)

    def totals(self) -> SessionCounters:
        """Finished plus live sessions."""
        t = SessionCounters(**{k: getattr(self.finished, k) for k in SessionCounters.__slots__})
        for _, c in self.active.values():
            t.frames_in += c.frames_in
            t.frames_out += c.frames_out
            t.drops += c.drops
            t.audio_seconds_in += c.audio_seconds_in
            t.compute_ns += c.compute_ns
        return t

    def render(self) -> str:
        """Prometheus text exposition of everything above."""
        out: list[str] = []
        active = Counter(transport for transport, _ in self.active.values())
        _family(out, "apipeline_sessions_active", "gauge", "Sessions open now.")
        for transport in sorted(set(active) | {"websocket", "grpc"}):
            _sample(out, "apipeline_sessions_active", active.get(transport, 0), transport=transport)
        _family(out, "apipeline_sessions_total", "counter", "Finished sessions by transport and outcome.")
        for (transport, outcome), n in sorted(self.outcomes.items()):
            _sample(out, "apipeline_sessions_total", n, transport=transport, outcome=outcome)
        _family(out, "apipeline_handshakes_refused_total", "counter", "Refused handshakes by reason.")
        for (transport, reason), n in sorted(self.refusals.items()):
            _sample(out, "apipeline_handshakes_refused_total", n, transport=transport, reason=reason)
        t = self.totals()
        for name, kind, doc, value in (
            ("apipeline_frames_received_total", "counter", "Messages received from clients.", t.frames_in),
            ("apipeline_frames_sent_total", "counter", "Messages sent to clients.", t.frames_out),
            ("apipeline_send_drops_total", "counter", "Data frames dropped by full send queues.", t.drops),
            (
                "apipeline_audio_seconds_received_total",
                "counter",
                "Seconds of audio received.",
                t.audio_seconds_in,
            ),
            (
                "apipeline_compute_seconds_total",
                "counter",
                "Processor time spent on data frames.",
                t.compute_ns / 1e9,
            ),
            (
                "apipeline_realtime_factor",
                "gauge",
                "Compute seconds per second of audio received.",
                t.compute_ns / 1e9 / t.audio_seconds_in if t.audio_seconds_in else 0.0,
            ),
        ):
            _family(out, name, kind, doc)
            _sample(out, name, value)
        base = "apipeline_processor_latency_seconds"
        _family(out, base, "summary", "Per-processor time per data frame (own time, downstream excluded).")
        for proc, s in sorted(self.processors.items()):
            _sample(out, base + "_count", s.count, processor=proc)
            _sample(out, base + "_sum", s.sum_ns / 1e9, processor=proc)
        for q in ("p50", "p99"):
            name = f"apipeline_processor_latency_{q}_seconds"
            _family(out, name, "gauge", f"Recent {q} per-frame time of each processor.")
            for proc, s in sorted(self.processors.items()):
                _sample(out, name, getattr(s, f"{q}_ns") / 1e9, processor=proc)
        return "\n".join(out) + "\n"


def _family(out: list[str], name: str, kind: str, doc: str) -> None:
    out.append(f"# HELP {name} {doc}")
    out.append(f"# TYPE {name} {kind}")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _sample(out: list[str], name: str, value: float, **labels: str) -> None:
    text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
    out.append(f"{name}{{{text}}} {float(value)!r}" if text else f"{name} {float(value)!r}")
