"""Server statistics and their Prometheus text exposition (format 0.0.4), with no client library.

Per session, :class:`SessionCounters` is a handful of numbers the transport processors bump (one
attribute add per message: the per-frame path stays cheap). :class:`ServerStats` owns the counters of
live sessions and the totals of finished ones, folds the processors' ``MetricsFrame`` records into
per-processor latency, and renders everything as Prometheus text at scrape time:

* ``apipeline_sessions_active{transport}``, ``apipeline_sessions_total{transport,outcome}``
* ``apipeline_handshakes_refused_total{transport,reason}``
* ``apipeline_session_duration_seconds`` (histogram)
* ``apipeline_latency_seconds`` (histogram): per output frame, from its ``pts`` (the server's arrival
  time of the input it was made from) to the moment it is handed to the client's connection
* ``apipeline_frames_received_total``, ``apipeline_frames_sent_total``, ``apipeline_send_drops_total``
* ``apipeline_audio_seconds_received_total``, ``apipeline_compute_seconds_total`` and their ratio
  ``apipeline_realtime_factor`` (compute time per second of audio; < 1 keeps real time)
* ``apipeline_processor_latency_seconds{processor}`` (summary: count, sum) and its recent
  ``..._p50_seconds``/``..._p99_seconds`` gauges. Processor labels drop the ``#id`` suffix of instance
  names, so label cardinality stays bounded however many sessions come and go.
* ``apipeline_process_resident_memory_bytes{process}``, ``apipeline_process_cpu_seconds_total{process}``

Several worker processes (``apipeline serve --workers N``) each write :meth:`ServerStats.snapshot`; any
of them renders the sum with :meth:`ServerStats.merged` (see :mod:`apipeline.transports.workers`).
"""

from __future__ import annotations

import os
import re
import time
from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass, field, fields
from typing import Any

_INSTANCE_SUFFIX = re.compile(r"#\d+")

#: histogram bucket upper bounds, seconds
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0)
DURATION_BUCKETS = (1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)


@dataclass(slots=True)
class SessionCounters:
    """What one session moved so far."""

    frames_in: int = 0
    frames_out: int = 0
    drops: int = 0
    audio_seconds_in: float = 0.0
    compute_ns: int = 0
    latency_buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    latency_sum: float = 0.0

    def observe_latency(self, seconds: float) -> None:
        self.latency_buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.latency_sum += seconds

    def add(self, other: SessionCounters) -> None:
        for f in fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            if isinstance(mine, list):
                for i, n in enumerate(theirs):
                    mine[i] += n
            else:
                setattr(self, f.name, mine + theirs)


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
        self.duration_buckets = [0] * (len(DURATION_BUCKETS) + 1)
        self.duration_sum = 0.0
        #: open sessions of other processes (merged stats), by transport
        self.other_active: Counter[str] = Counter()
        #: per process: (RSS bytes, CPU seconds); this process's is read at render time
        self.processes: dict[str, tuple[float, float]] = {}
        #: open sessions per process (merged stats of several workers)
        self.process_sessions: dict[str, int] = {}
        self._started: dict[int, float] = {}
        # (session key, processor instance) -> (count, total ns) already folded in
        self._seen: dict[tuple[int, str], tuple[int, int]] = {}

    def refused(self, transport: str, reason: str) -> None:
        """Count a refused handshake (``reason``: a short fixed label such as ``invalid_token``)."""
        self.refusals[(transport, reason)] += 1

    def session_started(self, transport: str) -> tuple[int, SessionCounters]:
        counters = SessionCounters()
        key = id(counters)
        self.active[key] = (transport, counters)
        self._started[key] = time.monotonic()
        return key, counters

    def session_ended(self, key: int, outcome: str) -> None:
        transport, c = self.active.pop(key)
        self.finished.add(c)
        self.outcomes[(transport, outcome)] += 1
        duration = time.monotonic() - self._started.pop(key)
        self.duration_buckets[bisect_left(DURATION_BUCKETS, duration)] += 1
        self.duration_sum += duration
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
        t = SessionCounters()
        t.add(self.finished)
        for _, c in self.active.values():
            t.add(c)
        return t

    # -- several processes -----------------------------------------------------------------------------

    def snapshot(self, process: str = "") -> dict[str, Any]:
        """Everything :meth:`render` shows, as plain data (JSON-able), with this process's RSS and CPU."""
        t = self.totals()
        active = Counter(transport for transport, _ in self.active.values())
        return {
            "totals": {f.name: getattr(t, f.name) for f in fields(t)},
            "active": dict(active),
            "outcomes": [[k[0], k[1], n] for k, n in self.outcomes.items()],
            "refusals": [[k[0], k[1], n] for k, n in self.refusals.items()],
            "processors": {k: [v.count, v.sum_ns, v.p50_ns, v.p99_ns] for k, v in self.processors.items()},
            "duration_buckets": list(self.duration_buckets),
            "duration_sum": self.duration_sum,
            "process": [process or str(os.getpid()), *process_usage()],
        }

    @classmethod
    def merged(cls, snapshots: list[dict[str, Any]]) -> ServerStats:
        """One :class:`ServerStats` that renders the sum of several processes' snapshots."""
        out = cls()
        for snap in snapshots:
            totals = SessionCounters(**snap["totals"])
            out.finished.add(totals)
            out.other_active.update(snap["active"])
            for transport, outcome, n in snap["outcomes"]:
                out.outcomes[(transport, outcome)] += n
            for transport, reason, n in snap["refusals"]:
                out.refusals[(transport, reason)] += n
            for name, (count, sum_ns, p50, p99) in snap["processors"].items():
                s = out.processors.setdefault(name, _ProcessorStats())
                s.count += count
                s.sum_ns += sum_ns
                s.p50_ns, s.p99_ns = max(s.p50_ns, p50), max(s.p99_ns, p99)
            for i, n in enumerate(snap["duration_buckets"]):
                out.duration_buckets[i] += n
            out.duration_sum += snap["duration_sum"]
            name, rss, cpu = snap["process"]
            out.processes[name] = (rss, cpu)
            out.process_sessions[name] = sum(snap["active"].values())
        return out

    # -- exposition ------------------------------------------------------------------------------------

    def render(self) -> str:
        """Prometheus text exposition of everything above."""
        out: list[str] = []
        active = Counter(transport for transport, _ in self.active.values()) + self.other_active
        _family(out, "apipeline_sessions_active", "gauge", "Sessions open now.")
        for transport in sorted(set(active) | {"websocket", "grpc"}):
            _sample(out, "apipeline_sessions_active", active.get(transport, 0), transport=transport)
        _family(out, "apipeline_sessions_total", "counter", "Finished sessions by transport and outcome.")
        for (transport, outcome), n in sorted(self.outcomes.items()):
            _sample(out, "apipeline_sessions_total", n, transport=transport, outcome=outcome)
        _family(out, "apipeline_handshakes_refused_total", "counter", "Refused handshakes by reason.")
        for (transport, reason), n in sorted(self.refusals.items()):
            _sample(out, "apipeline_handshakes_refused_total", n, transport=transport, reason=reason)
        _histogram(
            out,
            "apipeline_session_duration_seconds",
            "Durations of finished sessions.",
            DURATION_BUCKETS,
            self.duration_buckets,
            self.duration_sum,
        )
        t = self.totals()
        _histogram(
            out,
            "apipeline_latency_seconds",
            "Per output frame: server arrival of its input (pts) to its hand-over to the connection.",
            LATENCY_BUCKETS,
            t.latency_buckets,
            t.latency_sum,
        )
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
        processes = self.processes or {str(os.getpid()): process_usage()}
        _family(out, "apipeline_process_resident_memory_bytes", "gauge", "Resident memory of each process.")
        for proc, (rss, _) in sorted(processes.items()):
            _sample(out, "apipeline_process_resident_memory_bytes", rss, process=proc)
        _family(
            out, "apipeline_process_cpu_seconds_total", "counter", "CPU time (user + system) of each process."
        )
        for proc, (_, cpu) in sorted(processes.items()):
            _sample(out, "apipeline_process_cpu_seconds_total", cpu, process=proc)
        if self.process_sessions:
            _family(out, "apipeline_process_sessions", "gauge", "Open sessions of each worker process.")
            for proc, n in sorted(self.process_sessions.items()):
                _sample(out, "apipeline_process_sessions", n, process=proc)
        return "\n".join(out) + "\n"


def process_usage() -> tuple[float, float]:
    """``(resident memory bytes, CPU seconds)`` of this process (RSS 0 where /proc is missing)."""
    rss = 0.0
    try:
        with open("/proc/self/statm") as f:
            rss = float(int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE"))
    except (OSError, ValueError, IndexError):
        pass
    t = os.times()
    return rss, t.user + t.system


def _family(out: list[str], name: str, kind: str, doc: str) -> None:
    out.append(f"# HELP {name} {doc}")
    out.append(f"# TYPE {name} {kind}")


def _histogram(
    out: list[str], name: str, doc: str, bounds: tuple[float, ...], counts: list[int], total: float
) -> None:
    _family(out, name, "histogram", doc)
    running = 0
    for bound, n in zip(bounds, counts):
        running += n
        _sample(out, name + "_bucket", running, le=f"{bound:g}")
    running += counts[-1]
    _sample(out, name + "_bucket", running, le="+Inf")
    _sample(out, name + "_count", running)
    _sample(out, name + "_sum", total)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _sample(out: list[str], name: str, value: float, **labels: str) -> None:
    text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
    out.append(f"{name}{{{text}}} {float(value)!r}" if text else f"{name} {float(value)!r}")
