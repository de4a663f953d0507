"""``apipeline serve --workers N``: several server processes behind one port.

Why not ``SO_REUSEPORT`` alone: the kernel spreads connections by a hash of their addresses, blind to
load, so 8 sessions over 2 workers can land 6 and 2 (measured in ``docs/benchmarks.md``). Here one
supervisor process owns the listening socket, accepts each connection and hands its file descriptor
(``SCM_RIGHTS`` over a Unix socket pair) to the worker with the fewest open connections, counting
the ones handed over but not yet picked up. A worker serves handed-over connections exactly as a
single-process server would (:meth:`WebsocketServer.adopt`).

Shared between the processes, in a private run directory:

* a memory-mapped table, one row per worker: open sessions, readiness. ``--max-sessions`` is checked
  against the sum of the sessions column under a file lock (:class:`SharedAdmission`), so the limit
  holds over every worker and transport;
* the metrics, in prometheus_client's multiprocess mode (``metrics/``, each worker's
  ``PROMETHEUS_MULTIPROC_DIR``): every worker copies its statistics there every ``STATS_PERIOD_S`` and
  before it answers a scrape, so ``/metrics`` in any worker shows the sum over all of them
  (:class:`~apipeline.transports.stats.MultiprocessMetrics`). When a worker exits, the supervisor marks it
  dead there (its gauges leave the sums; what it counted stays) and zeroes its row of the table;
* ``/ready`` answers 200 only when every worker has warmed up.

Shutdown: SIGINT/SIGTERM to the supervisor stops accepting and sends SIGTERM to every worker, which
ends its sessions (close 1001) and exits; workers still running after the grace period are killed.
Each worker loads its own models (the voice changer's are small: WORLD and DIO need no weights); with
``--ray-address`` the heavy per-block work runs on Ray actors that every worker shares.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import gc
import importlib
import logging
import mmap
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from apipeline.transports.session import Admission
from apipeline.transports.stats import MultiprocessMetrics, ServerStats

logger = logging.getLogger("apipeline.serve")

STATS_PERIOD_S = 0.5
_COLUMNS = 2  # sessions, ready
_SESSIONS, _READY = 0, 1


class SharedTable:
    """The per-worker rows in shared memory (int64), and the lock file that serialises admissions."""

    def __init__(self, rundir: Path, workers: int | None = None, *, create: bool = False) -> None:
        self.rundir = rundir
        path = rundir / "table"
        if create:
            assert workers is not None
            path.write_bytes(bytes(8 * _COLUMNS * workers))
        self.workers = path.stat().st_size // (8 * _COLUMNS)
        self._file = open(path, "r+b")
        self._map = mmap.mmap(self._file.fileno(), 0)
        self.cells = memoryview(self._map).cast("q")
        self._lock = open(rundir / "table", "rb")

    def get(self, worker: int, column: int) -> int:
        return int(self.cells[worker * _COLUMNS + column])

    def set(self, worker: int, column: int, value: int) -> None:
        self.cells[worker * _COLUMNS + column] = value

    def total_sessions(self) -> int:
        return sum(self.get(w, _SESSIONS) for w in range(self.workers))

    def all_ready(self) -> bool:
        return all(self.get(w, _READY) for w in range(self.workers))

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock, fcntl.LOCK_UN)

    def close(self) -> None:
        self.cells.release()
        self._map.close()
        self._file.close()
        self._lock.close()


class SharedAdmission(Admission):
    """An :class:`Admission` whose limit counts the sessions of every worker."""

    def __init__(self, table: SharedTable, worker: int, limit: int) -> None:
        super().__init__(limit)
        self.table = table
        self.worker = worker

    def try_acquire(self) -> bool:
        with self.table.locked():
            if self.table.total_sessions() >= self.limit:
                return False
            if not super().try_acquire():
                return False
            self.table.set(self.worker, _SESSIONS, self.count)
        return True

    def release(self) -> None:
        with self.table.locked():
            super().release()
            self.table.set(self.worker, _SESSIONS, self.count)


class Cluster:
    """What a worker's server asks about the others: readiness and the summed metrics."""

    def __init__(self, table: SharedTable, worker: int) -> None:
        self.table = table
        self.worker = worker
        self.metrics = MultiprocessMetrics(str(metrics_dir(table.rundir)), f"worker-{worker}")

    def all_ready(self) -> bool:
        return self.table.all_ready()

    def render_metrics(self, stats: ServerStats) -> str:
        self.metrics.sync(stats)
        return self.metrics.render()

    def sync(self, stats: ServerStats) -> None:
        self.metrics.sync(stats)


def metrics_dir(rundir: Path) -> Path:
    """The run's ``PROMETHEUS_MULTIPROC_DIR``."""
    return rundir / "metrics"


# -- the supervisor ----------------------------------------------------------------------------------------


class _Worker:
    def __init__(self, index: int, process: subprocess.Popen[bytes], channel: socket.socket) -> None:
        self.index = index
        self.process = process
        self.channel = channel
        self.sent = 0
        self.received = 0
        self.open = 0
        self.ready = False
        self.failed: str | None = None
        self.buffer = b""

    @property
    def load(self) -> int:
        """Open connections, counting those handed over and not yet picked up."""
        return self.open + self.sent - self.received


def listen(host: str, port: int) -> socket.socket:
    """The one listening socket every worker's connections come from."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, backlog=1024, reuse_port=False)
    sock.setblocking(False)
    return sock


async def supervise(args: argparse.Namespace, workers: int, *, setup: str) -> int:
    """Run ``workers`` worker processes behind one port until SIGINT/SIGTERM; the exit code.

    ``setup`` (``"module:function"``) turns the pickled ``args`` into ``(config, session config, tls,
    factory)`` in each worker.
    """
    from apipeline.transports.websocket import url_host

    listener = listen(args.host, args.port)
    port = listener.getsockname()[1]
    rundir = Path(tempfile.mkdtemp(prefix="apipeline-serve-"))
    table = SharedTable(rundir, workers, create=True)
    metrics_dir(rundir).mkdir()
    if args.grpc_port == 0:  # every worker must listen on the same gRPC port (gRPC sets SO_REUSEPORT)
        with socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET) as probe:
            probe.bind((args.host, 0))
            args.grpc_port = probe.getsockname()[1]
    _write(rundir / "args.pickle", pickle.dumps(args))
    _write(rundir / "setup.txt", setup.encode())
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    procs: list[_Worker] = []
    try:
        all_ready = asyncio.Event()
        for i in range(workers):
            w = _spawn(rundir, i, workers)
            procs.append(w)
            loop.add_reader(w.channel.fileno(), _on_report, w, procs, all_ready, table)
        scheme = "https" if args.certfile else "http"
        ws = "wss" if args.certfile else "ws"
        where = f"{url_host(args.host)}:{port}"
        print(
            f"apipeline serve: {scheme}://{where}/ (sessions at {ws}://{where}/ws), {workers} workers",
            flush=True,
        )
        if args.grpc_port is not None:
            grpc_at = f"{url_host(args.host)}:{args.grpc_port}"
            print(f"apipeline serve: gRPC apipeline.FrameService/Stream at {grpc_at}", flush=True)
        accepting = loop.create_task(_accept(listener, procs), name="serve.accept")
        ready = loop.create_task(all_ready.wait(), name="serve.ready")
        stopped = loop.create_task(stop.wait(), name="serve.stop")
        await asyncio.wait({ready, stopped}, return_when=asyncio.FIRST_COMPLETED)
        code = 0
        if ready.done() and not stopped.done():
            failed = [w for w in procs if w.failed]
            if failed:
                print(
                    f"apipeline serve: error: worker {failed[0].index}: {failed[0].failed}", file=sys.stderr
                )
                code = 1
            else:
                print("apipeline serve: ready", flush=True)
                await stopped
        ready.cancel()
        print("apipeline serve: shutting down", flush=True)
        accepting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await accepting
        return code
    finally:
        listener.close()
        for w in procs:
            loop.remove_reader(w.channel.fileno())
            if w.process.poll() is None:
                w.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15.0
        for w in procs:
            try:
                await asyncio.to_thread(w.process.wait, max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.warning("worker %d did not stop; killing it", w.index)
                w.process.kill()
                w.process.wait()
            w.channel.close()
        table.close()
        _remove(rundir)


#: the native thread pools a worker's libraries size to every core by default (OpenMP, OpenBLAS, MKL;
#: torch reads OMP_NUM_THREADS): W workers would run W pools of C threads on C cores
THREAD_POOL_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def worker_environment(workers: int, cores: int, metrics: Path | None = None) -> dict[str, str]:
    """The environment of a worker: native thread pools of ``cores // workers`` threads (at least one),
    unless the operator set their size; the run's own ``PROMETHEUS_MULTIPROC_DIR`` (``metrics``)."""
    env = dict(os.environ)
    for name in THREAD_POOL_VARIABLES:
        env.setdefault(name, str(max(1, cores // workers)))
    if metrics is not None:
        env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics)
    return env


def freeze_heap() -> int:
    """Collect once, then move every object alive now (modules, models, warm-up leftovers) to the
    permanent generation, so later full collections scan only what sessions allocate. Returns the number
    of frozen objects.

    Measured with ``benchmarks/serve_load.py --trace``: without it, a full collection during four
    sessions paused a worker for 137-147 ms (the imported libraries' objects were scanned each time),
    every session of that worker stalled meanwhile. Frozen objects are still freed by reference counting;
    finished sessions never rely on the cycle collector (see ``ServerSession._release``).
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def _spawn(rundir: Path, index: int, workers: int) -> _Worker:
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    process = subprocess.Popen(
        [sys.executable, "-m", "apipeline.transports.workers", str(rundir), str(index), str(child.fileno())],
        pass_fds=[child.fileno()],
        start_new_session=True,  # Ctrl-C reaches the supervisor, which stops the workers in order
        env=worker_environment(workers, _cores(), metrics_dir(rundir)),
    )
    child.close()
    parent.setblocking(False)
    return _Worker(index, process, parent)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _write(path: Path, data: bytes) -> None:
    path.write_bytes(data)


def _read(path: Path) -> bytes:
    return path.read_bytes()


def _remove(rundir: Path) -> None:
    shutil.rmtree(rundir, ignore_errors=True)


def _gone(w: _Worker, table: SharedTable) -> None:
    """A worker exited (or closed its channel): its open sessions and its gauges leave the sums."""
    from prometheus_client.multiprocess import mark_process_dead

    with table.locked():
        table.set(w.index, _SESSIONS, 0)
        table.set(w.index, _READY, 0)
    mark_process_dead(w.process.pid, str(metrics_dir(table.rundir)))
    w.open = w.sent = w.received = 0


def _on_report(w: _Worker, procs: list[_Worker], all_ready: asyncio.Event, table: SharedTable) -> None:
    """Lines from a worker: ``ready``, ``failed <why>``, ``load <received> <open>``."""
    try:
        data = w.channel.recv(4096)
    except BlockingIOError:
        return
    except OSError:
        data = b""
    if not data:
        asyncio.get_running_loop().remove_reader(w.channel.fileno())
        _gone(w, table)
        w.failed = w.failed or f"exited with {w.process.poll()}"
        w.ready = True  # nothing more will come: stop waiting for it
        if all(p.ready for p in procs):
            all_ready.set()
        return
    w.buffer += data
    *lines, w.buffer = w.buffer.split(b"\n")
    for line in lines:
        kind, _, rest = line.decode().partition(" ")
        if kind == "ready":
            w.ready = True
        elif kind == "failed":
            w.failed, w.ready = rest, True
        elif kind == "load":
            received, opened = rest.split()
            w.received, w.open = int(received), int(opened)
    if all(p.ready for p in procs):
        all_ready.set()


async def _accept(listener: socket.socket, procs: list[_Worker]) -> None:
    loop = asyncio.get_running_loop()
    while True:
        conn, _ = await loop.sock_accept(listener)
        live = [w for w in procs if w.failed is None and w.process.poll() is None]
        try:
            # the least-loaded first; a worker that died a moment ago (its channel refuses) passes it on
            for target in sorted(live, key=lambda w: (w.load, w.index)):
                try:
                    while True:
                        try:
                            socket.send_fds(target.channel, [b"c"], [conn.fileno()])
                            break
                        except BlockingIOError:
                            await asyncio.sleep(0.001)
                except OSError as exc:
                    logger.warning("cannot hand a connection to worker %d: %s", target.index, exc)
                    continue
                target.sent += 1
                break
        finally:
            conn.close()


# -- a worker ---------------------------------------------------------------------------------------------


def _setup_function(path: str) -> Any:
    """``"module:function"`` → the function (the command that started the workers names it, so this
    layer never imports the command line)."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


async def work(rundir: Path, index: int, fd: int) -> int:
    from apipeline.transports.websocket import WebsocketServer

    args: argparse.Namespace = pickle.loads(_read(rundir / "args.pickle"))
    channel = socket.socket(fileno=fd)
    channel.setblocking(False)
    table = SharedTable(rundir)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def report(line: str) -> None:
        with contextlib.suppress(OSError):
            channel.send(line.encode() + b"\n")

    try:
        setup = _setup_function(_read(rundir / "setup.txt").decode())
        config, session, tls, factory = setup(args)
        cluster = Cluster(table, index)
    except BaseException as exc:
        report(f"failed {type(exc).__name__}: {exc}")
        return 1
    server = WebsocketServer(factory, config, admission=SharedAdmission(table, index, config.max_sessions))
    server.cluster = cluster
    await server.start(handover=True)
    grpc_server: Any = None
    if args.grpc_port is not None:
        from apipeline.transports.grpc_service import start_beside

        grpc_server = await start_beside(server, factory, args, tls, session)
    received = 0
    open_connections = 0

    def closed(_: Any) -> None:
        nonlocal open_connections
        open_connections -= 1
        report(f"load {received} {open_connections}")

    async def adopt(sock: socket.socket) -> None:
        nonlocal open_connections
        try:
            connection = await server.adopt(sock)
        except OSError:
            sock.close()
            open_connections -= 1
            report(f"load {received} {open_connections}")
            return
        connection.connection_lost_waiter.add_done_callback(closed)

    def on_fds() -> None:
        nonlocal received, open_connections
        while True:
            try:
                _, fds, _, _ = socket.recv_fds(channel, 16, 16)
            except BlockingIOError:
                return
            except OSError:
                stop.set()
                return
            if not fds:  # the supervisor is gone
                stop.set()
                return
            for fd in fds:
                received += 1
                open_connections += 1
                sock = socket.socket(fileno=fd)
                sock.setblocking(False)
                task = loop.create_task(adopt(sock), name=f"worker{index}.adopt")
                adopting.add(task)
                task.add_done_callback(adopting.discard)
            report(f"load {received} {open_connections}")

    adopting: set[asyncio.Task[None]] = set()
    loop.add_reader(channel.fileno(), on_fds)

    async def snapshots() -> None:
        while True:
            cluster.sync(server.stats)
            await asyncio.sleep(STATS_PERIOD_S)

    snapshotting = loop.create_task(snapshots(), name=f"worker{index}.stats")
    try:
        waiting = loop.create_task(server.wait_ready(), name=f"worker{index}.ready")
        stopped = loop.create_task(stop.wait(), name=f"worker{index}.stop")
        await asyncio.wait({waiting, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if waiting.done():
            if waiting.exception() is not None:
                report(f"failed {waiting.exception()}")
                return 1
            freeze_heap()
            table.set(index, _READY, 1)
            if grpc_server is not None:
                grpc_server.ready = True
            report("ready")
            await stopped
        else:
            waiting.cancel()
        return 0
    finally:
        loop.remove_reader(channel.fileno())
        table.set(index, _READY, 0)
        if grpc_server is not None:
            await grpc_server.aclose()
        await server.aclose()
        snapshotting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await snapshotting
        cluster.sync(server.stats)
        channel.close()
        table.close()


def main(argv: list[str]) -> int:
    rundir, index, fd = Path(argv[0]), int(argv[1]), int(argv[2])
    logging.basicConfig(level=logging.WARNING, format=f"worker {index}: %(levelname)s %(message)s")
    return asyncio.run(work(rundir, index, fd))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
