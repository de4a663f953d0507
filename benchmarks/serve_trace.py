"""Per-stage timestamps of ``apipeline serve --workers N`` under :mod:`serve_load` (``--trace``).

Where does an output's round trip go? Every process on this host reads one clock (``CLOCK_MONOTONIC``),
and a client's ``pts`` is its send time on that clock, so the client's and the workers' records join on
it. Each worker of the traced server (:func:`traced_setup`, the normal worker setup plus recording)
writes, per input chunk and per output frame:

* ``arrive``: the server's arrival time of a client chunk (``ClientClock.record``: after the socket read
  and decode, before the input pacing);
* ``enter`` / ``leave``: the time the chunk enters the voice changer and the time an output made from it
  leaves it (two pass-through processors around the voice changer);
* ``send``: the moment the output leaves the session's send queue for the socket (``ClientClock.client_pts``
  is called right there);
* ``lag``: event-loop lag (how late a 2 ms sleep wakes up) and ``gc``: every cycle-collector pause.

so a client output splits into client send → server arrival → voice changer in → out → send → client
receive. :func:`report` prints each stage's p50/p99 and, for the slowest 1 % of outputs, which stage
their time went to. Recording costs a few list appends per frame; it is a diagnostic, not the product.
"""

from __future__ import annotations

import asyncio
import atexit
import gc
import os
import pickle
import time
from pathlib import Path
from typing import Any

import numpy as np

from apipeline.frames import AudioRawFrame, Frame
from apipeline.pipeline.pipeline import Pipeline
from apipeline.processors.frame_processor import FrameDirection, FrameProcessor
from apipeline.transports.processors import ClientClock

#: where each worker writes its records (set by serve_load.py --trace)
TRACE_DIR_ENV = "APIPELINE_SERVE_TRACE"

_events: dict[str, list[tuple[int, ...]]] = {k: [] for k in ("arrive", "enter", "leave", "send", "lag", "gc")}


class _Stamp(FrameProcessor):
    def __init__(self, kind: str, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.log = _events[kind]

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, AudioRawFrame) and frame.pts is not None:
            self.log.append((time.monotonic_ns(), frame.pts))
        await self.push_frame(frame, direction)


class _TracedFactory:
    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.needs_audio_format = inner.needs_audio_format
        self.settings_schema = inner.settings_schema
        self._lag: asyncio.Task[None] | None = None

    def check_settings(self, settings: dict[str, Any]) -> dict[str, Any]:
        return self.inner.check_settings(settings)  # type: ignore[no-any-return]

    def build(self, spec: Any) -> FrameProcessor:
        vc = self.inner.build(spec)
        return Pipeline(
            [
                _Stamp("enter", name=f"{spec.session_id}.enter"),
                vc,
                _Stamp("leave", name=f"{spec.session_id}.leave"),
            ]
        )

    async def warm_up(self) -> None:
        await self.inner.warm_up()
        self._lag = asyncio.get_running_loop().create_task(_loop_lag())


async def _loop_lag(period_s: float = 0.002) -> None:
    log = _events["lag"]
    while True:
        t0 = time.monotonic_ns()
        await asyncio.sleep(period_s)
        t1 = time.monotonic_ns()
        log.append((t1, t1 - t0 - int(period_s * 1e9)))


def traced_setup(args: Any) -> Any:
    """The normal worker setup (``apipeline.cli.serve:worker_setup``) with recording switched on."""
    from apipeline.cli.serve import worker_setup

    config, session, tls, factory = worker_setup(args)
    record, client_pts = ClientClock.record, ClientClock.client_pts

    def traced_record(self: ClientClock, arrival_ns: int, pts: int) -> None:
        _events["arrive"].append((arrival_ns, pts))
        record(self, arrival_ns, pts)

    def traced_client_pts(self: ClientClock, server_pts: int) -> int | None:
        out = client_pts(self, server_pts)
        _events["send"].append((time.monotonic_ns(), server_pts, out if out is not None else -1))
        return out

    ClientClock.record = traced_record  # type: ignore[method-assign]
    ClientClock.client_pts = traced_client_pts  # type: ignore[method-assign]
    gc_start = [0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        now = time.monotonic_ns()
        if phase == "start":
            gc_start[0] = now
        else:
            _events["gc"].append((gc_start[0], now - gc_start[0], info.get("generation", -1)))

    gc.callbacks.append(on_gc)
    out = Path(os.environ[TRACE_DIR_ENV]) / f"worker-{os.getpid()}.pickle"
    atexit.register(lambda: out.write_bytes(pickle.dumps({k: np.array(v) for k, v in _events.items()})))
    return config, session, tls, _TracedFactory(factory)


def _first(pairs: np.ndarray, key_col: int, val_col: int) -> dict[int, int]:
    d: dict[int, int] = {}
    for row in pairs:
        d.setdefault(int(row[key_col]), int(row[val_col]))
    return d


def report(trace_dir: Path, sessions: list[list[tuple[int, int]]], client_lag: list[int]) -> None:
    """Join the workers' records with each session's ``(client pts, receive ns)`` and print the stages."""
    client = [(cp, recv) for outputs in sessions for cp, recv in outputs]
    first = {cp: outputs[0][0] for outputs in sessions if outputs for cp, _ in outputs}
    workers = [pickle.loads(p.read_bytes()) for p in sorted(trace_dir.glob("worker-*.pickle"))]
    arrive: dict[int, int] = {}  # client pts -> server arrival
    enter: dict[int, int] = {}  # server pts -> enters the voice changer
    leave: dict[int, list[int]] = {}  # server pts -> outputs leave the voice changer
    send: dict[int, list[tuple[int, int]]] = {}  # client pts -> (send ns, server pts)
    for w in workers:
        if len(w["arrive"]):
            for a, p in w["arrive"]:
                arrive.setdefault(int(p), int(a))
        if len(w["enter"]):
            enter.update({k: v for k, v in _first(w["enter"], 1, 0).items() if k not in enter})
        for t, sp in w["leave"]:
            leave.setdefault(int(sp), []).append(int(t))
        for t, sp, cp in w["send"]:
            send.setdefault(int(cp), []).append((int(t), int(sp)))
    stages = ("client→arrival", "arrival→vc in", "vc in→out", "vc out→send", "send→client", "total")
    rows: list[list[float]] = []
    seen: dict[int, int] = {}
    for cp, recv in client:
        k = seen.get(cp, 0)
        seen[cp] = k + 1
        sends = send.get(cp)
        if cp not in arrive or not sends or k >= len(sends):
            continue
        s, sp = sends[k]
        a = arrive[cp]
        e = enter.get(sp)
        leaves = leave.get(sp, [])
        l_ = leaves[min(k, len(leaves) - 1)] if leaves else None
        if e is None or l_ is None:
            continue
        rows.append(
            [
                (cp - first[cp]) / 1e9,  # seconds into its session
                (a - cp) / 1e6,
                (e - a) / 1e6,
                (l_ - e) / 1e6,
                (s - l_) / 1e6,
                (recv - s) / 1e6,
                (recv - cp) / 1e6,
            ]
        )
    if not rows:
        print("trace: no outputs could be joined")
        return
    m = np.array(rows)
    print(f"trace: {len(m)} of {len(client)} outputs joined; per stage, ms")
    print(f"  {'stage':<16}{'p50':>8}{'p99':>8}{'max':>8}   share of the slowest 1 % (mean ms)")
    slow = m[m[:, -1] >= np.percentile(m[:, -1], 99)]
    for i, name in enumerate(stages, start=1):  # column 0: the output's time into its session
        col = m[:, i]
        print(
            f"  {name:<16}{np.percentile(col, 50):8.1f}{np.percentile(col, 99):8.1f}{col.max():8.1f}"
            f"   {slow[:, i].mean():8.1f}"
        )
    early = m[:, 0] < 1.0  # the session's first second
    later = np.percentile(m[~early, -1], 99) if (~early).any() else 0.0
    print(
        f"  the slowest 1 %: {np.mean(slow[:, 0] < 1.0):.0%} in their session's first second; "
        f"p99 of the outputs after it {later:.1f} ms"
    )
    for i, w in enumerate(workers):
        lag = w["lag"][:, 1] / 1e6 if len(w["lag"]) else np.zeros(1)
        g = w["gc"]
        if len(g) and len(w["arrive"]):  # only the pauses while this worker had sessions
            g = g[(g[:, 0] >= w["arrive"][:, 0].min()) & (g[:, 0] <= w["arrive"][:, 0].max())]
        pauses = g[:, 1] / 1e6 if len(g) else np.zeros(0)
        full = g[g[:, 2] == 2][:, 1] / 1e6 if len(g) else np.zeros(0)
        most = pauses.max() if len(pauses) else 0.0
        print(
            f"  worker {i}: loop lag p50 {np.percentile(lag, 50):.1f} p99 {np.percentile(lag, 99):.1f} "
            f"max {lag.max():.1f} ms; gc while serving: {len(pauses)} pauses, max {most:.1f} ms, "
            f"{len(full)} full ({', '.join(f'{p:.0f}' for p in full)} ms)"
        )
    cl = np.array(client_lag) / 1e6 if client_lag else np.zeros(1)
    print(
        f"  client process: loop lag p50 {np.percentile(cl, 50):.1f} p99 {np.percentile(cl, 99):.1f} "
        f"max {cl.max():.1f} ms"
    )


def main() -> int:
    """Run ``apipeline serve ARGS...`` with every worker traced (serve_load.py starts this)."""
    import sys

    from apipeline.cli.main import build_parser
    from apipeline.transports.workers import supervise

    args = build_parser().parse_args(["serve", *sys.argv[1:]])
    return asyncio.run(supervise(args, args.workers, setup="serve_trace:traced_setup"))


if __name__ == "__main__":
    raise SystemExit(main())
