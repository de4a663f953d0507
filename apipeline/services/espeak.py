"""Local text to speech with eSpeak NG (the library and its data ship in the ``espeakng-loader`` wheel).

libespeak-ng is driven through ctypes in synchronous mode: ``espeak_Synth`` calls our callback with
each audio buffer (``buffer_ms`` long) and the word events of that buffer as it synthesizes, so audio
streams from the first buffer and every word comes with its sample position (used to record which words
the user actually heard). Returning 1 from the callback aborts the synthesis: that is how an
interruption stops it within one buffer.

The library has one global state, so it is initialized once per process and every synthesis holds a
lock; voice, rate and pitch are set under that lock at each synthesis, so services with different voices
can share it.
"""

from __future__ import annotations

import ctypes
import importlib.util
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from apipeline.errors import ModelError, ParameterError
from apipeline.services.ai_service import EngineThread
from apipeline.services.tts import TTSService, WordMark

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_CHARS_UTF8 = 1
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_PARAM_RATE = 1
_PARAM_PITCH = 3
_EE_OK = 0


class _Event(ctypes.Structure):
    _fields_ = [  # espeak_EVENT (speak_lib.h)
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),
    ]


_Callback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


class ESpeakLibrary:
    """The process-wide libespeak-ng: load once, synthesize under a lock."""

    _instance: ESpeakLibrary | None = None
    _instance_lock = threading.Lock()

    def __init__(self, buffer_ms: int = 20) -> None:
        if importlib.util.find_spec("espeakng_loader") is None:
            raise ModelError("eSpeak NG needs the 'espeakng-loader' package (pip install apipeline[chat])")
        import espeakng_loader

        lib_path = espeakng_loader.get_library_path()
        data_path = Path(espeakng_loader.get_data_path())
        try:
            self._lib = ctypes.CDLL(lib_path)
        except OSError as exc:
            raise ModelError(f"cannot load libespeak-ng from {lib_path}: {exc}") from exc
        self._lib.espeak_Initialize.restype = ctypes.c_int
        self._lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self.sample_rate = self._lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, buffer_ms, str(data_path.parent).encode(), 0
        )
        if self.sample_rate <= 0:
            raise ModelError(f"espeak_Initialize failed (data at {data_path})")
        self.lock = threading.Lock()
        self._sink: Callable[[NDArray[np.int16] | WordMark], None] | None = None
        self._stop: threading.Event | None = None
        self._text = ""
        self._callback = _Callback(self._on_audio)  # kept referenced: C holds the pointer
        self._lib.espeak_SetSynthCallback(self._callback)

    @classmethod
    def get(cls) -> ESpeakLibrary:
        with cls._instance_lock:
            if cls._instance is None:
                cls._instance = ESpeakLibrary()
            return cls._instance

    def has_voice(self, voice: str) -> bool:
        with self.lock:
            return bool(self._lib.espeak_SetVoiceByName(voice.encode()) == _EE_OK)

    def synthesize(
        self,
        text: str,
        emit: Callable[[NDArray[np.int16] | WordMark], None],
        stop: threading.Event,
        *,
        voice: str,
        rate: int,
        pitch: int,
    ) -> None:
        """Synthesize ``text``, calling ``emit`` with each audio buffer and word; returns at the end or
        within one buffer of ``stop`` being set."""
        with self.lock:
            if self._lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
                raise ModelError(f"eSpeak NG has no voice {voice!r}")
            self._lib.espeak_SetParameter(_PARAM_RATE, rate, 0)
            self._lib.espeak_SetParameter(_PARAM_PITCH, pitch, 0)
            self._sink, self._stop, self._text = emit, stop, text
            data = text.encode("utf-8")
            try:
                self._lib.espeak_Synth(data, len(data) + 1, 0, 0, 0, _CHARS_UTF8, None, None)
            finally:
                self._sink = self._stop = None

    def _on_audio(self, wav: Any, count: int, events: Any) -> int:
        sink, stop = self._sink, self._stop
        if sink is None or stop is None or stop.is_set():
            return 1
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            event = events[i]
            if event.type == _EVENT_WORD:
                start = max(event.text_position - 1, 0)  # 1-based character position
                word = self._text[start : start + event.length] if event.length > 0 else ""
                if word.strip():
                    sink(WordMark(word, event.sample))
            i += 1
        if wav and count > 0:
            sink(np.ctypeslib.as_array(wav, (count,)).copy())
        return 1 if stop.is_set() else 0


class ESpeakTTSService(TTSService):
    """Text to speech with eSpeak NG, streaming audio and word timings.

    Args:
        voice: an eSpeak NG voice name (``"en-us"``, ``"en"``, ``"en-us+f3"`` ...).
        rate: words per minute (80-450).
        pitch: 0-100.
        **kwargs: see :class:`~apipeline.services.tts.TTSService`.

    Raises:
        ModelError: the library cannot load, or the voice does not exist.
    """

    word_timing = True

    def __init__(self, *, voice: str = "en-us", rate: int = 175, pitch: int = 50, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not 80 <= rate <= 450:
            raise ParameterError(f"rate must be 80-450 words per minute, got {rate}")
        if not 0 <= pitch <= 100:
            raise ParameterError(f"pitch must be 0-100, got {pitch}")
        self.library = ESpeakLibrary.get()
        if not self.library.has_voice(voice):
            raise ModelError(f"{self.name}: eSpeak NG has no voice {voice!r} (try 'en-us' or 'en')")
        self.engine_sample_rate = self.library.sample_rate
        # eSpeak's own pitch (0-100), not named ``pitch``: a served chatbot's ``pitch`` setting (semitones,
        # the voice changer's) reaches every processor, and would be taken by one with that attribute
        self.voice, self.rate, self.espeak_pitch = voice, rate, pitch
        self._thread = EngineThread(self.name)

    def run_tts(self, text: str) -> AsyncIterator[NDArray | WordMark]:
        library, voice, rate, pitch = self.library, self.voice, self.rate, self.espeak_pitch

        def run(emit: Callable[[NDArray[np.int16] | WordMark], None], stop: threading.Event) -> None:
            library.synthesize(text, emit, stop, voice=voice, rate=rate, pitch=pitch)

        return self._thread.stream_push(run)

    async def cleanup(self) -> None:
        await super().cleanup()
        self._thread.close()


def synthesize_speech(
    text: str, *, voice: str = "en-us", rate: int = 175, sample_rate: int = 16000
) -> NDArray[np.float32]:
    """Speak ``text`` to a float32 array at ``sample_rate`` (for tests, benchmarks and demos)."""
    from apipeline.audio.convert import to_float32
    from apipeline.audio.resample import StreamingResampler

    library = ESpeakLibrary.get()
    chunks: list[NDArray[np.int16]] = []

    def emit(item: NDArray[np.int16] | WordMark) -> None:
        if not isinstance(item, WordMark):
            chunks.append(item)

    library.synthesize(text, emit, threading.Event(), voice=voice, rate=rate, pitch=50)
    audio = to_float32(np.concatenate(chunks)) if chunks else np.zeros(0, np.float32)
    if sample_rate == library.sample_rate:
        return audio
    resampler = StreamingResampler(library.sample_rate, sample_rate, 1, "HQ")
    return np.concatenate([resampler.process(audio), resampler.flush()])
