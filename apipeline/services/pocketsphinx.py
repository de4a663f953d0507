"""Local speech to text with CMU pocketsphinx (its wheel ships the en-US acoustic model, dictionary and LM).

Streaming: every audio frame of an utterance is decoded as it arrives (on the service's engine thread),
so the final transcript at the end of speech costs only the decoder's last search (tens of ms), not a
pass over the whole utterance. Partial hypotheses become interim transcripts.

Accuracy on synthetic (espeak-ng) speech is modest; see ``docs/chatbot.md`` for what it gets right.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from apipeline.errors import ModelError, ParameterError
from apipeline.services.ai_service import EngineThread
from apipeline.services.stt import STTService

T = TypeVar("T")


def pocketsphinx_model_dir() -> Path:
    """The en-US model directory inside the installed ``pocketsphinx`` package."""
    spec = importlib.util.find_spec("pocketsphinx")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("pocketsphinx STT needs the 'pocketsphinx' package (pip install apipeline[chat])")
    return Path(next(iter(spec.submodule_search_locations))) / "model" / "en-us"


def load_decoder(
    hmm: str | Path | None = None,
    lm: str | Path | None = None,
    dictionary: str | Path | None = None,
    *,
    where: str = "pocketsphinx",
) -> Any:
    """A new pocketsphinx ``Decoder`` at 16 kHz (default: the packaged en-US model).

    Raises:
        ModelError: a model file or directory that does not exist, or a decoder that fails to load.
    """
    base = pocketsphinx_model_dir()
    paths = {
        "hmm": Path(hmm) if hmm is not None else base / "en-us",
        "lm": Path(lm) if lm is not None else base / "en-us.lm.bin",
        "dict": Path(dictionary) if dictionary is not None else base / "cmudict-en-us.dict",
    }
    for key, path in paths.items():
        if not path.exists():
            raise ModelError(f"{where}: pocketsphinx {key} not found: {path}")
    from pocketsphinx import Decoder

    try:
        return Decoder(
            hmm=str(paths["hmm"]),
            lm=str(paths["lm"]),
            dict=str(paths["dict"]),
            samprate=16000,
            loglevel="FATAL",
        )
    except Exception as exc:  # pocketsphinx raises RuntimeError/ValueError for unreadable models
        raise ModelError(f"{where}: pocketsphinx could not load its model: {exc}") from exc


class PocketSphinxSTTService(STTService):
    """Speech to text with pocketsphinx at 16 kHz.

    Args:
        hmm: acoustic model directory (default: the packaged en-US model).
        lm: language model file (default: the packaged ``en-us.lm.bin``).
        dictionary: pronunciation dictionary (default: the packaged ``cmudict-en-us.dict``).
        decoder: a fresh decoder from :func:`load_decoder` (built ahead, e.g. on another thread: it
            takes ≈ 0.5 s); then ``hmm``, ``lm`` and ``dictionary`` are not used.
        **kwargs: see :class:`~apipeline.services.stt.STTService`.

    Raises:
        ModelError: a model file or directory that does not exist, or a decoder that fails to load.
    """

    def __init__(
        self,
        *,
        hmm: str | Path | None = None,
        lm: str | Path | None = None,
        dictionary: str | Path | None = None,
        decoder: Any = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("sample_rate", 16000)
        if kwargs["sample_rate"] != 16000:
            raise ParameterError(f"pocketsphinx's en-US model runs at 16000 Hz, got {kwargs['sample_rate']}")
        super().__init__(**kwargs)
        self._decoder = decoder if decoder is not None else load_decoder(hmm, lm, dictionary, where=self.name)
        self._engine = EngineThread(self.name)

    async def run_in_engine(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._engine.run(fn, *args)

    def begin_utterance(self) -> None:
        self._decoder.start_utt()

    def feed(self, pcm: NDArray[np.int16]) -> str | None:
        self._decoder.process_raw(pcm.tobytes(), False, False)
        hyp = self._decoder.hyp()
        return hyp.hypstr if hyp is not None else None

    def end_utterance(self) -> str:
        self._decoder.end_utt()
        hyp = self._decoder.hyp()
        return hyp.hypstr if hyp is not None else ""

    async def cleanup(self) -> None:
        await super().cleanup()
        self._engine.close()
