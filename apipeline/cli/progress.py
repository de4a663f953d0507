"""Progress display for the command line: a bar when the total is known, a live line otherwise.

Uses ``rich`` when it is installed and stderr is a terminal (the ``cli`` extra); otherwise prints a
plain line to stderr at most once per ``plain_interval`` seconds, so logs and CI output stay readable.
Nothing is printed when disabled (``--no-progress``, or ``--json`` output).
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import Any


class Progress:
    """``with Progress("convert", total=10) as p: p.update(3, "rtf 0.2")``."""

    def __init__(
        self,
        label: str,
        total: float | None = None,
        *,
        enabled: bool = True,
        unit: str = "s",
        plain_interval: float = 1.0,
    ) -> None:
        self.label = label
        self.total = total
        self.unit = unit
        self.enabled = enabled
        self.plain_interval = plain_interval
        self._rich: Any = None
        self._task: Any = None
        self._last_plain = 0.0
        if enabled and sys.stderr.isatty():
            try:
                from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
                from rich.progress import Progress as RichProgress
            except ImportError:
                pass
            else:
                columns: list[Any] = [TextColumn("{task.description}")]
                if total is not None:
                    columns += [BarColumn(), TextColumn("{task.percentage:>5.1f}%")]
                columns += [TimeElapsedColumn(), TextColumn("{task.fields[extra]}")]
                self._rich = RichProgress(*columns, transient=False)

    def __enter__(self) -> Progress:
        if self._rich is not None:
            self._rich.start()
            self._task = self._rich.add_task(self.label, total=self.total, extra="")
        return self

    def update(self, done: float, extra: str = "") -> None:
        """Report ``done`` (in ``unit``) and a free text (latency, RTF, queue depths...)."""
        if not self.enabled:
            return
        if self._rich is not None:
            self._rich.update(self._task, completed=done, extra=extra)
            return
        now = time.monotonic()
        if now - self._last_plain < self.plain_interval:
            return
        self._last_plain = now
        print(self.line(done, extra), file=sys.stderr, flush=True)

    def line(self, done: float, extra: str = "") -> str:
        """The plain-text form of a progress report."""
        if self.total:
            pct = 100.0 * min(done / self.total, 1.0)
            head = f"{self.label}: {done:.1f}/{self.total:.1f} {self.unit} ({pct:.0f}%)"
        else:
            head = f"{self.label}: {done:.1f} {self.unit}"
        return f"{head}  {extra}".rstrip()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._rich is not None:
            self._rich.stop()
