"""Output files written safely: the one rule every command and runner follows.

1. **Check before any work.** :func:`check_output_path` refuses an output that is one of the inputs (the
   same file, also through symbolic or hard links), an existing directory, a folder that does not exist
   (folders are never created implicitly) or one that cannot be written (probed by creating a file, so
   read-only mounts and ``/proc`` are caught too). It raises :class:`~apipeline.errors.OutputPathError`
   once, before any input is read.
2. **Write beside, rename into place.** :class:`AtomicOutput` hands out a temporary path in the same
   folder (same suffix, so format detection by extension still works); the complete file is renamed
   over the target with :func:`os.replace`, which is atomic on one file system.
3. **A failed run leaves nothing and touches nothing:** on an exception the temporary file is removed
   and an existing output is left exactly as it was.
4. **An interrupted run** (``KeyboardInterrupt`` or task cancellation) keeps a properly closed partial
   file only if nothing existed at the target (and the optional ``validate`` accepts it), and says so
   through :attr:`AtomicOutput.outcome`; otherwise the partial file is removed.

The caller closes its writer *before* the :class:`AtomicOutput` block ends (nest the writer inside), so
the file that is renamed is complete and its header is final.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Literal

from apipeline.errors import OutputPathError

logger = logging.getLogger("apipeline")

PathLike = str | os.PathLike[str]
Outcome = Literal["pending", "written", "kept_partial", "discarded"]


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def check_output_path(output: PathLike, *, inputs: Iterable[PathLike] = (), what: str = "output") -> Path:
    """Check that ``output`` may be written, before any work; return it as a :class:`~pathlib.Path`.

    Raises:
        OutputPathError: the output is one of ``inputs``, is a directory, its folder is missing or is
            not writable. The message names the path and the reason.
    """
    out = Path(output)
    for inp in inputs:
        if _same_file(out, Path(inp)):
            raise OutputPathError(f"{what} {str(out)!r} is the input {str(inp)!r}: refusing to overwrite it")
    if out.is_dir():
        raise OutputPathError(f"{what} {str(out)!r} is a directory, expected a file path")
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        raise OutputPathError(f"{what} folder {str(folder)!r} does not exist (it is not created for you)")
    probe = folder / f".{out.name}.probe-{secrets.token_hex(4)}"
    try:
        fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except OSError as exc:
        raise OutputPathError(
            f"{what} folder {str(folder)!r} is not writable: {exc.strerror or exc}"
        ) from None
    os.close(fd)
    probe.unlink(missing_ok=True)
    return out


class AtomicOutput:
    """A temporary file beside ``path``, renamed into place when the block ends without error.

    Args:
        path: the final output path (checked with :func:`check_output_path` against ``inputs``).
        inputs: input paths the output must not be.
        validate: called with the partial file after an interruption; raise to refuse keeping it.

    Example::

        with AtomicOutput("out.wav", inputs=["in.wav"]) as out:
            with AudioFileWriter(out.path, 22050, 1) as w:
                ...
        print(out.outcome)   # "written"
    """

    def __init__(
        self,
        path: PathLike,
        *,
        inputs: Iterable[PathLike] = (),
        validate: Callable[[Path], object] | None = None,
    ) -> None:
        self.final = check_output_path(path, inputs=inputs)
        name = f".{self.final.stem}.partial-{os.getpid()}-{secrets.token_hex(3)}{self.final.suffix}"
        self.path = self.final.with_name(name)
        self.validate = validate
        self.outcome: Outcome = "pending"
        self.message = ""

    def __enter__(self) -> AtomicOutput:
        return self

    def commit(self) -> None:
        """Rename the temporary file over the target."""
        os.replace(self.path, self.final)
        self.outcome = "written"

    def discard(self) -> None:
        """Remove the temporary file; the target is left as it was."""
        self.path.unlink(missing_ok=True)
        self.outcome = "discarded"

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> Literal[False]:
        if exc_type is None:
            self.finish("ok")
        else:
            interrupted = issubclass(exc_type, (KeyboardInterrupt, asyncio.CancelledError))
            self.finish("interrupted" if interrupted else "failed")
        return False

    def finish(self, status: Literal["ok", "failed", "interrupted"]) -> Outcome:
        """End the output by the run's ``status`` (for runs that report rather than raise).

        ``ok``: rename the complete file into place (nothing is written when the run wrote nothing);
        ``failed``: remove the temporary file, leave the target as it was; ``interrupted``: keep a
        valid partial file only where nothing existed. Returns :attr:`outcome`; idempotent.
        """
        if self.outcome != "pending":
            return self.outcome
        if status == "ok":
            if self.path.exists():
                self.commit()
            else:
                self.outcome = "discarded"
            return self.outcome
        interrupted = status == "interrupted"
        if interrupted and self.path.exists() and not self.final.exists():
            try:
                if self.validate is not None:
                    self.validate(self.path)
            except Exception as err:  # the partial file is not usable: drop it
                self.discard()
                self.message = f"interrupted: the partial output was not valid ({err}); nothing written"
            else:
                self.commit()
                self.outcome = "kept_partial"
                self.message = f"interrupted: kept the partial output in {str(self.final)!r}"
        else:
            self.discard()
            if interrupted:
                self.message = f"interrupted: {str(self.final)!r} existed and was left unchanged"
        if self.message:
            logger.warning(self.message)
        return self.outcome
