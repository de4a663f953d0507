"""Import ``torchfcpe`` / ``torchcrepe`` without ``torchaudio`` (and other modules they never need here).

Why: both packages import ``torchaudio`` when the package is imported (``torchfcpe.mel_extractor`` does
``from torchaudio.transforms import Resample``; ``torchcrepe.load`` does ``import torchaudio``), and
``torchcrepe.core`` also imports ``resampy`` and ``tqdm``. No torchaudio wheel loads beside torch 2.13 CPU,
yet the parts we use never call into it: torchaudio only resamples (FCPE) or reads files (CREPE), and we
always hand both models 16 kHz audio resampled by soxr ourselves.

How: :func:`import_without` imports a package while any module named in ``absent`` that cannot be imported
is represented by a *guard module*. Every attribute of a guard module is a guard object; calling it,
instantiating it or reading an attribute from it raises :class:`~apipeline.errors.ModelError` naming the
module and the missing dependency. So module-level ``from torchaudio.transforms import Resample`` succeeds,
while ``Resample(...)`` raises a clear error instead of resampling silently in some other way. Guards are
removed from ``sys.modules`` as soon as the import finishes, so the rest of the process still sees
"no torchaudio" (only the imported package keeps its references to the guards). When a real, importable
module exists it is used and no guard is installed.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Iterable
from typing import Any, NoReturn

from apipeline.errors import ModelError


class _Guard:
    """Stands for a name of a module that is not installed; any use raises ModelError."""

    def __init__(self, qualname: str, package: str) -> None:
        self._qualname = qualname
        self._package = package

    def _fail(self) -> NoReturn:
        raise ModelError(
            f"{self._package} tried to use {self._qualname}, but that module is not installed (apipeline "
            f"imports {self._package} without it). Feed the model 16 kHz audio through apipeline's F0 "
            "estimators instead of calling this path."
        )

    def __call__(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._fail()

    def __getattr__(self, name: str) -> _Guard:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return _Guard(f"{self._qualname}.{name}", self._package)

    def __repr__(self) -> str:
        return f"<guard for missing {self._qualname}>"


class _GuardModule(types.ModuleType):
    """A placeholder module whose every public attribute is a guard."""

    def __init__(self, name: str, package: str) -> None:
        super().__init__(name, f"placeholder for the missing module {name!r} (see apipeline.audio.f0)")
        self.__guard_package__ = package
        self.__path__: list[str] = []  # lets `import name.sub` resolve to another guard module

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)
        return _Guard(f"{self.__name__}.{attr}", self.__guard_package__)


def _importable(name: str) -> bool:
    try:
        importlib.import_module(name)
    except Exception:  # a broken install (e.g. torchaudio's libc10_cuda.so error) counts as absent
        return False
    return True


def import_without(package: str, absent: Iterable[str]) -> types.ModuleType:
    """Import ``package``; each top-level module in ``absent`` that cannot be imported gets guard modules.

    ``absent`` lists dotted names, e.g. ``("torchaudio", "torchaudio.transforms")``. Returns the imported
    package. Raises ModelError when the package itself is not installed.
    """
    if package in sys.modules:
        return sys.modules[package]
    names = list(absent)
    installed: list[str] = []
    roots = {name.split(".")[0] for name in names}
    missing_roots = {root for root in roots if not _importable(root)}
    for name in names:
        if name.split(".")[0] in missing_roots and name not in sys.modules:
            module = _GuardModule(name, package)
            sys.modules[name] = module
            installed.append(name)
            parent, _, child = name.rpartition(".")
            if parent in sys.modules:
                setattr(sys.modules[parent], child, module)
    try:
        return importlib.import_module(package)
    except ModuleNotFoundError as exc:
        raise ModelError(f"the F0 model package {package!r} is not installed ({exc})") from exc
    finally:
        for name in installed:
            sys.modules.pop(name, None)


def import_torchfcpe() -> types.ModuleType:
    """``torchfcpe`` with torchaudio guarded (its Resample must never run: we feed 16 kHz)."""
    return import_without("torchfcpe", ("torchaudio", "torchaudio.transforms"))


def import_torchcrepe() -> types.ModuleType:
    """``torchcrepe`` with torchaudio (file loading), resampy (resampling) and tqdm (progress) guarded."""
    return import_without("torchcrepe", ("torchaudio", "resampy", "tqdm"))
