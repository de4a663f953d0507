"""The voice chatbot as a served app: ``apipeline serve --app chatbot``, one chatbot per connection.

:class:`ChatbotFactory` is a :class:`~apipeline.transports.session.PipelineFactory` (the WebSocket and
gRPC servers, and the WebRTC session, build each session's pipeline from it). What is heavy is loaded
once per process in :meth:`ChatbotFactory.warm_up` and shared by every session: the local LLM (one
engine; its lock serializes generations, so concurrent sessions take turns at it), eSpeak NG's library
and pocketsphinx's model files. Per session: the VAD state, a pocketsphinx decoder, the conversation.

A session's pipeline::

    client audio ─▶ [mono, 16 kHz] ─▶ VAD ─▶ STT ─▶ turns ─▶ user ctx ─▶ LLM ─▶ TTS ─▶ [voice changer]
       ─▶ bot output (real time; barge-in drops its queue) ─▶ assistant ctx ─▶ ChatEvents ─▶ client

:class:`ChatEvents`, the last processor, writes what goes on the wire: the bot's audio as plain FLOAT32
``AudioRawFrame`` at the session's rate, and ``TextFrame``\\ s whose ``metadata["chat"]`` says what they
are (``docs/protocol.md``, "The chatbot"): ``user_started``/``user_stopped`` (the VAD), ``user`` (the
final transcript of a turn), ``bot`` (answer words, when their audio starts), ``bot_end`` (the answer
as heard, with ``interrupted``) and ``interrupted`` (barge-in: the client drops the bot audio it holds).
Every other frame stays inside (the wire carries only frames the protocol names).
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace
from typing import Any

import numpy as np

from apipeline.errors import ParameterError, SelfTestError
from apipeline.frames import (
    AudioRawFrame,
    DataFrame,
    Frame,
    StartInterruptionFrame,
    TextFrame,
    TTSTextFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from apipeline.params import Param, ParamSchema
from apipeline.pipeline.pipeline import Pipeline
from apipeline.processors.frame_processor import FrameDirection, FrameProcessor
from apipeline.services.chatbot import ChatbotConfig
from apipeline.transports.session import SessionSpec

#: the session rates a client may send (the bot answers at the same rate)
MIN_RATE, MAX_RATE = 8000, 48000
INTERRUPTIONS = ("immediate", "min_duration", "min_words")


def chatbot_schema(*, voice_changer: bool = False) -> ParamSchema:
    """What a client of the served chatbot may set (handshake query; ``pitch``/``formant`` also live)."""
    params = [
        Param("voice", str, "en-us", doc="eSpeak NG voice of the bot (local TTS)"),
        Param("speech_rate", int, 175, minimum=80, maximum=400, unit="words/min", doc="the bot's speed"),
        Param("max_tokens", int, 40, minimum=1, maximum=80, doc="longest answer, in LLM tokens"),
        Param("interruption", str, "immediate", choices=INTERRUPTIONS, doc="when user speech cuts in"),
        Param("interruption_ms", float, 300.0, minimum=0, maximum=2000, unit="ms", doc="min_duration"),
        Param("interruption_words", int, 2, minimum=1, maximum=10, doc="min_words"),
        Param("vad_stop_ms", float, 250.0, minimum=100, maximum=2000, unit="ms", doc="silence ending a turn"),
    ]
    if voice_changer:
        from apipeline.voice_changer import VoiceChangerSettings

        own = VoiceChangerSettings.schema()
        params += [own["pitch"], own["formant"]]
    return ParamSchema(params)


def _with_default(param: Param, value: Any) -> Param:
    """``param`` defaulting to the operator's ``value`` (its bounds widened to take it: the operator may
    choose what a client may not)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        lo = param.minimum if param.minimum is None else min(param.minimum, value)
        hi = param.maximum if param.maximum is None else max(param.maximum, value)
        return replace(param, default=value, minimum=lo, maximum=hi)
    return replace(param, default=value)


class ChatEvents(FrameProcessor):
    """The last processor of a served chatbot: what the client gets, in the wire's own frame types.

    Bot audio (``TTSAudioRawFrame`` or the voice changer's ``AudioRawFrame``) leaves as a plain FLOAT32
    ``AudioRawFrame``; ``TTSTextFrame`` words as ``TextFrame(metadata={"chat": "bot"})``; a
    ``StartInterruptionFrame`` adds ``TextFrame("", metadata={"chat": "interrupted"})``. Other data frames
    (LLM tokens, transcripts, contexts) end here. :meth:`send` is called by the chatbot's taps and
    aggregator events for what happens upstream of the bot's (queued, real-time) output.
    """

    def __init__(self, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.sent: dict[str, int] = {}

    async def send(self, kind: str, text: str = "", **extra: Any) -> None:
        """Push ``TextFrame(text, metadata={"chat": kind, **extra})`` to the client now."""
        self.sent[kind] = self.sent.get(kind, 0) + 1
        await self.push_frame(TextFrame(text, metadata={"chat": kind, **extra}))

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction is not FrameDirection.DOWNSTREAM:
            await self.push_frame(frame, direction)
            return
        if isinstance(frame, AudioRawFrame):
            audio = frame.audio
            assert isinstance(audio, np.ndarray)
            if audio.dtype == np.int16:
                audio = audio.astype(np.float32) / 32768.0
            out = AudioRawFrame(audio, frame.sample_rate, frame.num_channels, pts=frame.pts)
            out.client_pts = frame.client_pts
            await self.push_frame(out)
            return
        if isinstance(frame, TTSTextFrame):
            if frame.text.strip():
                await self.send("bot", frame.text.strip())
            return
        if isinstance(frame, DataFrame):
            return  # LLM tokens, transcripts, contexts: not for the wire
        await self.push_frame(frame, direction)
        if isinstance(frame, StartInterruptionFrame):
            await self.send("interrupted")


class _VADEvents(FrameProcessor):
    """Right after the VAD: tells the client at once when the user starts or stops speaking."""

    def __init__(self, events: ChatEvents, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.events = events

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if isinstance(frame, UserStartedSpeakingFrame):
            await self.events.send("user_started")
        elif isinstance(frame, UserStoppedSpeakingFrame):
            await self.events.send("user_stopped")


class ChatbotFactory:
    """Serves the voice chatbot, one conversation per session (see the module docstring).

    Args:
        config: the operator's :class:`~apipeline.services.chatbot.ChatbotConfig` (engines, URLs,
            prompt); a client's settings (:func:`chatbot_schema`) change the parts it may.
        voice_changer: a ``VoiceChangerSettings`` to speak through the voice changer (``None``: no).
    """

    needs_audio_format = True
    #: the session's task lets the user's speech interrupt the bot (barge-in)
    allow_interruptions = True
    app = "chatbot"

    def __init__(self, config: ChatbotConfig | None = None, *, voice_changer: Any = None) -> None:
        from apipeline.services.chatbot import build_tts

        self.config = replace(config or ChatbotConfig(), realtime_output=True, sample_rate=16000)
        self.voice_changer = voice_changer
        if voice_changer is not None:
            voice_changer.validate()
        c = self.config
        own = {"voice": c.voice, "speech_rate": c.speech_rate, "max_tokens": c.max_tokens}
        own["vad_stop_ms"] = c.vad_stop_ms
        if voice_changer is not None:
            own.update(pitch=voice_changer.pitch, formant=voice_changer.formant)
        schema = chatbot_schema(voice_changer=voice_changer is not None)
        #: the client's parameters, defaulting to the operator's choices
        self.settings_schema = ParamSchema(
            _with_default(p, own[p.name]) if p.name in own else p for p in schema.values()
        )
        build_tts(self.config)  # an unknown voice or a bad URL fails now, not at the first session
        self.engine: Any = None
        self._engine_lock = threading.Lock()
        #: a pocketsphinx decoder built ahead on a thread, for the next session (None: none ready)
        self._spare_decoder: Any = None
        self._spare_pending = False

    def app_info(self) -> dict[str, Any]:
        """What ``GET /info`` says about this app (the page picks its mode from ``app``)."""
        return {
            "app": self.app,
            "params": self.settings_schema.json_schema(),
            "audio_in": f"AudioRawFrame, {MIN_RATE}..{MAX_RATE} Hz, any channels (mixed to mono)",
            "audio_out": "AudioRawFrame FLOAT32 mono at the session's own rate, paced in real time",
            "text": "TextFrame, metadata.chat: user_started, user_stopped, user, bot, bot_end, interrupted",
            "voice_changer": self.voice_changer is not None,
        }

    def check_settings(self, settings: dict[str, Any]) -> dict[str, Any]:
        """Cross-field checks beyond the schema: the voice must exist (local TTS)."""
        voice = settings.get("voice")
        if voice is not None and voice != self.config.voice and not self.config.tts_url:
            from apipeline.services.espeak import ESpeakLibrary

            if not ESpeakLibrary.get().has_voice(voice):
                raise ParameterError(f"voice: eSpeak NG has no voice {voice!r} (try 'en-us' or 'en')")
        return settings

    def session_config(self, settings: dict[str, Any], sample_rate: int) -> ChatbotConfig:
        """The operator's config with a session's settings applied, answering at ``sample_rate``."""
        from apipeline.services.turns import (
            ImmediateInterruption,
            MinDurationInterruption,
            MinWordsInterruption,
        )

        s = {**self.settings_schema.defaults(), **settings}
        changes: dict[str, Any] = {"out_sample_rate": sample_rate}
        if "interruption" in settings:  # else the operator's strategy
            strategy: Any = ImmediateInterruption()
            if s["interruption"] == "min_duration":
                strategy = MinDurationInterruption(ms=s["interruption_ms"])
            elif s["interruption"] == "min_words":
                strategy = MinWordsInterruption(words=s["interruption_words"])
            changes["interruption"] = strategy
        for key in ("vad_stop_ms", "max_tokens", "voice", "speech_rate"):
            if key in settings:
                changes[key] = settings[key]
        return replace(self.config, **changes)

    def build(self, spec: SessionSpec) -> FrameProcessor:
        from apipeline.processors.audio.convert import ChannelMixer
        from apipeline.processors.audio.resample import ResampleProcessor
        from apipeline.services.chatbot import build_chatbot

        rate, channels = spec.sample_rate, spec.num_channels or 1
        if rate is None:
            raise ParameterError("the chatbot needs the session's sample rate")
        if not MIN_RATE <= rate <= MAX_RATE:
            raise ParameterError(f"the chatbot takes audio at {MIN_RATE}..{MAX_RATE} Hz, got {rate}")
        config = self.session_config(spec.settings, rate)
        vc = None
        if self.voice_changer is not None:
            vc = replace(
                self.voice_changer,
                **{k: spec.settings[k] for k in ("pitch", "formant") if k in spec.settings},
            )
        bot = build_chatbot(config, llm=self._llm(config), stt=self._stt(config), voice_changer=vc)
        events = ChatEvents(name=f"{spec.session_id}.events")
        bot.aggregators.user().add_event_handler("on_user_turn", lambda _a, text: events.send("user", text))
        bot.aggregators.assistant().add_event_handler(
            "on_assistant_turn",
            lambda _a, text, cut: events.send("bot_end", text, interrupted=bool(cut)),
        )
        front: list[FrameProcessor] = []
        if channels != 1:
            front.append(ChannelMixer(1))
        if rate != 16000:
            front.append(ResampleProcessor(16000))
        procs = bot.processors()
        procs.insert(procs.index(bot.vad) + 1, _VADEvents(events))
        return Pipeline([*front, *procs, events])

    def _llm(self, config: ChatbotConfig) -> Any:
        """The session's LLM service: on the process's one local engine, or a client of ``llm_url``."""
        if config.llm_url:
            return None  # build_chatbot makes the OpenAI-compatible client
        from apipeline.services.local_llm import LocalLLMService

        return LocalLLMService(engine=self._load_engine(), max_tokens=config.max_tokens)

    def _stt(self, config: ChatbotConfig) -> Any:
        """pocketsphinx on the decoder built ahead for this session (≈ 0.5 s of work kept off the event
        loop), then another one is built on a thread for the next session."""
        if config.stt_url:
            return None  # build_chatbot makes the OpenAI-compatible client
        from apipeline.services.pocketsphinx import PocketSphinxSTTService

        decoder, self._spare_decoder = self._spare_decoder, None
        self._build_spare_decoder()
        return PocketSphinxSTTService(decoder=decoder, max_utterance_s=config.max_utterance_s)

    def _build_spare_decoder(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # not serving (a direct call): each session loads its own
        if self._spare_pending:
            return
        from apipeline.services.pocketsphinx import load_decoder

        self._spare_pending = True

        def done(future: asyncio.Future[Any]) -> None:
            self._spare_pending = False
            if not future.cancelled() and future.exception() is None:
                self._spare_decoder = future.result()

        loop.run_in_executor(None, load_decoder).add_done_callback(done)

    def _load_engine(self) -> Any:
        with self._engine_lock:
            if self.engine is None:
                from apipeline.services.local_llm import load_local_llm

                c = self.config
                self.engine = load_local_llm(c.llm_model_path, backend=c.llm_backend, n_threads=c.llm_threads)
            return self.engine

    async def warm_up(self) -> None:
        """Load the engines once and run each once (``/ready`` turns 200 after this returns)."""
        await asyncio.to_thread(self._warm_up_engines)

    def _warm_up_engines(self) -> None:
        from apipeline.services.espeak import synthesize_speech

        c = self.config
        if not c.llm_url:
            from apipeline.services.local_llm import format_prompt

            engine = self._load_engine()
            text = "".join(
                engine.complete(
                    format_prompt([{"role": "user", "content": "Hello."}]),
                    max_tokens=2,
                    stop=("\n",),
                    cancel=threading.Event(),
                )
            )
            del text  # what it says does not matter; that it ran does
        if not c.tts_url:
            if synthesize_speech("ready", voice=c.voice, rate=c.speech_rate).size == 0:
                raise SelfTestError("eSpeak NG synthesized nothing for 'ready'")
        if not c.stt_url:
            from apipeline.services.pocketsphinx import load_decoder

            self._spare_decoder = load_decoder()  # the first session's
