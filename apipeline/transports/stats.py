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
* ``apipeline_event_loop_lag_seconds`` (histogram): how late a sleep of ``LOOP_LAG_PERIOD_S`` wakes up
  (:meth:`ServerStats.watch_loop`): the time the loop was held by something that did not yield (a
  session's block compute, a collection, a build), which every session of the process waited out

Several worker processes (``apipeline serve --workers N``): :class:`MultiprocessMetrics` copies each
worker's numbers into prometheus_client's multiprocess mode (one file per metric and process in a
directory private to the run), and any worker renders the sum over every process from there, with the
same names (see :mod:`apipeline.transports.workers`).
"""

from __future__ import annotations

import asyncio
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
LOOP_LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
#: how often the event-loop lag is sampled (a sleep of this length, and how late it wakes)
LOOP_LAG_PERIOD_S = 0.1


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
        self.loop_lag_buckets = [0] * (len(LOOP_LAG_BUCKETS) + 1)
        self.loop_lag_sum = 0.0
        self._started: dict[int, float] = {}
        # (session key, processor instance) -> (count, total ns) already folded in
        self._seen: dict[tuple[int, str], tuple[int, int]] = {}

    def observe_loop_lag(self, seconds: float) -> None:
        self.loop_lag_buckets[bisect_left(LOOP_LAG_BUCKETS, seconds)] += 1
        self.loop_lag_sum += seconds

    async def watch_loop(self, period: float = LOOP_LAG_PERIOD_S) -> None:
        """Sample the event loop's lag for ever (run it as a task; cancel it to stop)."""
        while True:
            start = time.monotonic()
            await asyncio.sleep(period)
            self.observe_loop_lag(max(0.0, time.monotonic() - start - period))

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

    def active_by_transport(self) -> Counter[str]:
        return Counter(transport for transport, _ in self.active.values())

    def totals(self) -> SessionCounters:
        """Finished plus live sessions."""
        t = SessionCounters()
        t.add(self.finished)
        for _, c in self.active.values():
            t.add(c)
        return t

    # -- exposition ------------------------------------------------------------------------------------

    def render(self) -> str:
        """Prometheus text exposition of everything above."""
        out: list[str] = []
        active = self.active_by_transport()
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
        _histogram(
            out,
            "apipeline_event_loop_lag_seconds",
            "How late the event loop woke from a short sleep (time held by work that did not yield).",
            LOOP_LAG_BUCKETS,
            self.loop_lag_buckets,
            self.loop_lag_sum,
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
        processes = {str(os.getpid()): process_usage()}
        _family(out, "apipeline_process_resident_memory_bytes", "gauge", "Resident memory of each process.")
        for proc, (rss, _) in sorted(processes.items()):
            _sample(out, "apipeline_process_resident_memory_bytes", rss, process=proc)
        _family(
            out, "apipeline_process_cpu_seconds_total", "counter", "CPU time (user + system) of each process."
        )
        for proc, (_, cpu) in sorted(processes.items()):
            _sample(out, "apipeline_process_cpu_seconds_total", cpu, process=proc)
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


class MultiprocessMetrics:
    """One worker's :class:`ServerStats` in prometheus_client's multiprocess mode, and the sum over every
    process of the run.

    prometheus_client keeps each process's values in memory-mapped files under
    ``PROMETHEUS_MULTIPROC_DIR``, which must be set before the package is first imported (the supervisor
    sets it in each worker's environment; a missing or different one is a ConfigurationError here).
    :meth:`sync` (every half second, and before each scrape) adds what changed since the last sync, so
    the per-frame path keeps its plain counters. Counters and histograms of a worker that exited keep
    counting in the sums (they happened); its gauges (open sessions, RSS, CPU) go with it, once the
    supervisor calls ``mark_process_dead``: they use the ``live*`` modes.

    Histograms and summaries are fed bucket counts, not single observations: their per-process values
    are incremented directly (prometheus_client's ``_buckets``/``_sum``/``_count`` values; the tests of
    ``--workers`` read the sums back, so a change there fails them).
    """

    def __init__(self, path: str, process: str) -> None:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR") != path:
            from apipeline.errors import ConfigurationError

            raise ConfigurationError(
                f"PROMETHEUS_MULTIPROC_DIR must be {path!r} before prometheus_client is imported "
                f"(it is {os.environ.get('PROMETHEUS_MULTIPROC_DIR')!r})"
            )
        from prometheus_client import Counter as PCounter
        from prometheus_client import Gauge, Histogram, Summary

        self.path = path
        self.process = process
        r = None  # not registered: the scrape reads every process's files (MultiProcessCollector)
        self.active = Gauge(
            "apipeline_sessions_active",
            "Sessions open now.",
            ["transport"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self.outcomes = PCounter(
            "apipeline_sessions_total",
            "Finished sessions by transport and outcome.",
            ["transport", "outcome"],
            registry=r,
        )
        self.refusals = PCounter(
            "apipeline_handshakes_refused_total",
            "Refused handshakes by reason.",
            ["transport", "reason"],
            registry=r,
        )
        self.duration = Histogram(
            "apipeline_session_duration_seconds",
            "Durations of finished sessions.",
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.latency = Histogram(
            "apipeline_latency_seconds",
            "Per output frame: server arrival of its input (pts) to its hand-over to the connection.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.loop_lag = Histogram(
            "apipeline_event_loop_lag_seconds",
            "How late the event loop woke from a short sleep (time held by work that did not yield).",
            buckets=LOOP_LAG_BUCKETS,
            registry=r,
        )
        self.totals = {
            name: PCounter(metric, doc, registry=r)
            for name, metric, doc in (
                ("frames_in", "apipeline_frames_received_total", "Messages received from clients."),
                ("frames_out", "apipeline_frames_sent_total", "Messages sent to clients."),
                ("drops", "apipeline_send_drops_total", "Data frames dropped by full send queues."),
                ("audio_seconds_in", "apipeline_audio_seconds_received_total", "Seconds of audio received."),
                ("compute_ns", "apipeline_compute_seconds_total", "Processor time spent on data frames."),
            )
        }
        self.processors = Summary(
            "apipeline_processor_latency_seconds",
            "Per-processor time per data frame (own time, downstream excluded).",
            ["processor"],
            registry=r,
        )
        self.quantiles = {
            q: Gauge(
                f"apipeline_processor_latency_{q}_seconds",
                f"Recent {q} per-frame time of each processor.",
                ["processor"],
                registry=r,
                multiprocess_mode="livemax",
            )
            for q in ("p50", "p99")
        }
        self.rss = Gauge(
            "apipeline_process_resident_memory_bytes",
            "Resident memory of each process.",
            ["process"],
            registry=r,
            multiprocess_mode="liveall",
        )
        self.cpu = Gauge(
            "apipeline_process_cpu_seconds_total",
            "CPU time (user + system) of each process.",
            ["process"],
            registry=r,
            multiprocess_mode="liveall",
        )
        self.sessions = Gauge(
            "apipeline_process_sessions",
            "Open sessions of each worker process.",
            ["process"],
            registry=r,
            multiprocess_mode="liveall",
        )
        self._last_totals = SessionCounters()
        self._last_outcomes: Counter[tuple[str, str]] = Counter()
        self._last_refusals: Counter[tuple[str, str]] = Counter()
        self._last_duration = [0] * (len(DURATION_BUCKETS) + 1)
        self._last_duration_sum = 0.0
        self._last_loop_lag = [0] * (len(LOOP_LAG_BUCKETS) + 1)
        self._last_loop_lag_sum = 0.0
        #: per processor: its (summary, p50, p99) children, then count, sum, p50, p99 as last copied
        self._last_processors: dict[str, list[Any]] = {}
        self._transports: set[str] = {"websocket", "grpc"}

    def sync(self, stats: ServerStats) -> None:
        """Add what ``stats`` counted since the last call; set the gauges to their values now."""
        t, last = stats.totals(), self._last_totals
        for name, counter in self.totals.items():
            delta = getattr(t, name) - getattr(last, name)
            if delta > 0:
                counter.inc(delta / 1e9 if name == "compute_ns" else delta)
        _add_buckets(self.latency, t.latency_buckets, last.latency_buckets, t.latency_sum - last.latency_sum)
        self._last_totals = t
        _add_counts(self.outcomes, stats.outcomes, self._last_outcomes)
        _add_counts(self.refusals, stats.refusals, self._last_refusals)
        self._last_outcomes, self._last_refusals = Counter(stats.outcomes), Counter(stats.refusals)
        _add_buckets(
            self.duration,
            stats.duration_buckets,
            self._last_duration,
            stats.duration_sum - self._last_duration_sum,
        )
        self._last_duration, self._last_duration_sum = list(stats.duration_buckets), stats.duration_sum
        _add_buckets(
            self.loop_lag,
            stats.loop_lag_buckets,
            self._last_loop_lag,
            stats.loop_lag_sum - self._last_loop_lag_sum,
        )
        self._last_loop_lag, self._last_loop_lag_sum = list(stats.loop_lag_buckets), stats.loop_lag_sum
        for name, p in stats.processors.items():
            entry = self._last_processors.get(name)
            if entry is None:
                children = (
                    self.processors.labels(processor=name),
                    self.quantiles["p50"].labels(processor=name),
                    self.quantiles["p99"].labels(processor=name),
                )
                entry = self._last_processors[name] = [children, 0, 0, -1, -1]
            (summary, p50, p99), count, total, last_p50, last_p99 = entry
            if p.count > count:
                summary._count.inc(p.count - count)
                summary._sum.inc((p.sum_ns - total) / 1e9)
            if p.p50_ns != last_p50:
                p50.set(p.p50_ns / 1e9)
            if p.p99_ns != last_p99:
                p99.set(p.p99_ns / 1e9)
            entry[1:] = [p.count, p.sum_ns, p.p50_ns, p.p99_ns]
        active = stats.active_by_transport()
        self._transports |= set(active)
        for transport in self._transports:
            self.active.labels(transport=transport).set(active.get(transport, 0))
        rss, cpu = process_usage()
        self.rss.labels(process=self.process).set(rss)
        self.cpu.labels(process=self.process).set(cpu)
        self.sessions.labels(process=self.process).set(sum(active.values()))

    def render(self) -> str:
        """Prometheus text of every process's values (this one's as of the last :meth:`sync`)."""
        from prometheus_client import CollectorRegistry, generate_latest
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry()
        registry.register(_WithRealtimeFactor(MultiProcessCollector(None, path=self.path)))
        return generate_latest(registry).decode()


class _WithRealtimeFactor:
    """The collected families plus ``apipeline_realtime_factor`` computed from the summed totals."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def collect(self) -> Any:
        from prometheus_client.core import GaugeMetricFamily

        families = list(self.inner.collect())
        sums = {s.name: s.value for f in families for s in f.samples}
        audio = sums.get("apipeline_audio_seconds_received_total", 0.0)
        compute = sums.get("apipeline_compute_seconds_total", 0.0)
        yield from families
        yield GaugeMetricFamily(
            "apipeline_realtime_factor",
            "Compute seconds per second of audio received.",
            value=compute / audio if audio else 0.0,
        )


def _add_buckets(histogram: Any, now: list[int], before: list[int], sum_delta: float) -> None:
    if now == before:
        return
    for value, n, m in zip(histogram._buckets, now, before):
        if n > m:
            value.inc(n - m)
    histogram._sum.inc(sum_delta)


def _add_counts(counter: Any, now: Counter[tuple[str, str]], before: Counter[tuple[str, str]]) -> None:
    for labels, n in now.items():
        if n > before.get(labels, 0):
            counter.labels(*labels).inc(n - before.get(labels, 0))
