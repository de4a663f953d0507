"""Optional dependencies: which extra provides what, and a check made before any work.

apipeline's core needs numpy, protobuf and PyYAML; everything else comes with an extra
(``pip install 'apipeline[voice]'``; docs/install.md lists them). A command that needs an extra calls
:func:`require_extra` first, so a missing package is reported with the extra to install, before any
input is read, instead of as a traceback half-way through.
"""

from __future__ import annotations

import importlib.util

from apipeline.errors import MissingDependencyError, UnknownNameError

#: The modules (import names) each extra provides, in the order they are checked.
EXTRAS: dict[str, tuple[str, ...]] = {
    "audio": ("soxr", "soundfile", "librosa", "pyworld", "onnxruntime"),
    "voice": ("soxr", "soundfile", "librosa", "pyworld", "onnxruntime", "silero_vad"),
    "models": ("onnxruntime", "onnx"),
    "torch": ("torch", "einops", "local_attention"),
    "live": ("sounddevice",),
    "cli": ("rich",),
    "serve": ("websockets", "grpc", "prometheus_client"),
    "ray": ("ray",),
}

#: Import names whose distribution is spelt otherwise on PyPI.
PACKAGES = {"silero_vad": "silero-vad", "grpc": "grpcio", "prometheus_client": "prometheus-client"}

#: Packages installed by hand (they declare torchaudio, which apipeline never imports): see docs/install.md.
BY_HAND = {
    "torchfcpe": "pip install --no-deps torchfcpe==0.0.4 einops local-attention (after the CPU torch)",
    "torchcrepe": "pip install --no-deps torchcrepe==0.0.24 resampy tqdm (after the CPU torch)",
}


def _missing(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is None
    except (ImportError, ValueError):
        return True


def extra_for(module: str) -> str | None:
    """The extra that provides top-level module ``module`` (the smallest one), or ``None``."""
    top = module.partition(".")[0]
    for extra, modules in EXTRAS.items():
        if top in modules:
            return extra
    return None


def install_hint(module: str) -> str:
    """How to install what provides ``module``: the extra, or the by-hand command."""
    top = module.partition(".")[0]
    if top in BY_HAND:
        return BY_HAND[top]
    extra = extra_for(top)
    if extra is None:
        return f"pip install {PACKAGES.get(top, top)}"
    return f"pip install 'apipeline[{extra}]'"


def require_extra(extra: str, *, modules: tuple[str, ...] | None = None, feature: str = "") -> None:
    """Raise :class:`~apipeline.errors.MissingDependencyError` naming ``extra`` unless every module it
    provides (or only ``modules``) can be imported. Nothing is imported: the check is cheap.

    Args:
        extra: the extra's name (a key of :data:`EXTRAS`).
        modules: check only these import names (a command that needs part of an extra).
        feature: what needs it, for the message (``"apipeline voice-changer"``).
    """
    if extra not in EXTRAS:
        raise UnknownNameError(f"unknown extra {extra!r}; known: {', '.join(EXTRAS)}")
    missing = [m for m in (modules or EXTRAS[extra]) if _missing(m)]
    if not missing:
        return
    names = ", ".join(PACKAGES.get(m, m) for m in missing)
    by_hand = [BY_HAND[m] for m in missing if m in BY_HAND]
    how = "; ".join(by_hand) if by_hand else f"pip install 'apipeline[{extra}]'"
    raise MissingDependencyError(
        f"{feature or 'this'} needs {names}, not installed: {how}",
        extra=extra,
        package=PACKAGES.get(missing[0], missing[0]),
    )
