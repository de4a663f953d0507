"""The voice chatbot, assembled: speech in, an answer spoken back, interruptible.

::

    audio in ─▶ VAD ─▶ STT ─▶ turn taking ─▶ user context ─▶ LLM ─▶ TTS ─▶ bot output ─▶ assistant context
               Silero  pocket-   barge-in      aggregator     Gemma  eSpeak  real time     what was heard
                       sphinx                                        NG                    ─▶ audio out

:func:`build_chatbot` builds the processors from a :class:`ChatbotConfig`: local engines by default,
any stage switched to an OpenAI-compatible server by its URL (``stt_url``, ``llm_url``, ``tts_url``).
Engines load when the chatbot is built (the local LLM once per process), never per request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from apipeline.errors import ParameterError
from apipeline.processors.frame_processor import FrameProcessor
from apipeline.services.context import LLMContext, LLMContextAggregatorPair
from apipeline.services.latency import TurnLatency
from apipeline.services.llm import LLMService
from apipeline.services.output import BotAudioOutput
from apipeline.services.stt import STTService
from apipeline.services.tts import TTSService
from apipeline.services.turns import ImmediateInterruption, InterruptionStrategy, TurnTakingProcessor


@dataclass
class ChatbotConfig:
    """Everything :func:`build_chatbot` needs; the defaults run fully offline.

    Audio: ``sample_rate`` is the rate of the user's audio (VAD and STT run at 16 kHz) and
    ``out_sample_rate`` the bot's. Turn taking: the VAD's ``vad_threshold`` starts speech,
    ``vad_stop_ms`` of silence ends the user's turn; ``interruption`` decides barge-in. Remote
    stages: ``*_url`` (an OpenAI-compatible API base) replaces the local engine of that stage.
    """

    sample_rate: int = 16000
    out_sample_rate: int = 16000
    realtime_output: bool = True
    vad_threshold: float = 0.5
    vad_stop_ms: float = 250.0
    interruption: InterruptionStrategy = field(default_factory=ImmediateInterruption)
    system_prompt: str | None = None
    max_history: int = 20
    max_utterance_s: float = 30.0
    # local engines
    voice: str = "en-us"
    speech_rate: int = 175
    llm_backend: str = "auto"
    llm_model_path: str | None = None
    max_tokens: int = 40
    llm_threads: int | None = None
    #: the first clause goes to the TTS after this many words (or at punctuation): the LLM must generate
    #: them before the bot makes a sound, one token each at least (≈ 55 ms per token on 2 idle cores)
    first_clause_words: int = 3
    # remote engines (OpenAI-compatible)
    stt_url: str | None = None
    llm_url: str | None = None
    tts_url: str | None = None
    api_key: str | None = None
    stt_model: str = "whisper-1"
    llm_model: str = "gpt-4o-mini"
    tts_model: str = "tts-1"
    tts_voice: str = "alloy"
    timeout_s: float = 30.0
    connect_timeout_s: float = 5.0


@dataclass
class Chatbot:
    """The built chatbot's processors, in pipeline order (see :meth:`processors`)."""

    config: ChatbotConfig
    vad: FrameProcessor
    stt: STTService
    turns: TurnTakingProcessor
    context: LLMContext
    aggregators: LLMContextAggregatorPair
    llm: LLMService
    tts: TTSService
    output: BotAudioOutput
    #: the voice changer the bot speaks through (``SpeechTail`` + its DAG), or None
    voice_changer: FrameProcessor | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def processors(self, latency: TurnLatency | None = None) -> list[FrameProcessor]:
        """VAD, STT, turn taking, user context, LLM, TTS, bot output, assistant context (with
        ``latency``'s probes after the VAD, STT, LLM, TTS and output)."""
        probe = (lambda stage: [latency.probe(stage)]) if latency is not None else (lambda stage: [])
        return [
            self.vad,
            *probe("vad"),
            self.stt,
            *probe("stt"),
            self.turns,
            self.aggregators.user(),
            self.llm,
            *probe("llm"),
            self.tts,
            *probe("tts"),
            *([self.voice_changer] if self.voice_changer is not None else []),
            self.output,
            *probe("output"),
            self.aggregators.assistant(),
        ]


def build_stt(config: ChatbotConfig) -> STTService:
    if config.stt_url:
        from apipeline.services.openai import OpenAISTTService

        return OpenAISTTService(
            base_url=config.stt_url,
            model=config.stt_model,
            api_key=config.api_key,
            timeout_s=config.timeout_s,
            connect_timeout_s=config.connect_timeout_s,
            max_utterance_s=config.max_utterance_s,
        )
    from apipeline.services.pocketsphinx import PocketSphinxSTTService

    return PocketSphinxSTTService(max_utterance_s=config.max_utterance_s)


def build_llm(config: ChatbotConfig) -> LLMService:
    if config.llm_url:
        from apipeline.services.openai import OpenAILLMService

        return OpenAILLMService(
            base_url=config.llm_url,
            model=config.llm_model,
            api_key=config.api_key,
            max_tokens=config.max_tokens,
            timeout_s=config.timeout_s,
            connect_timeout_s=config.connect_timeout_s,
        )
    from apipeline.services.local_llm import LocalLLMService

    return LocalLLMService(
        model_path=config.llm_model_path,
        backend=config.llm_backend,
        max_tokens=config.max_tokens,
        n_threads=config.llm_threads,
    )


def build_tts(config: ChatbotConfig) -> TTSService:
    if config.tts_url:
        from apipeline.services.openai import OpenAITTSService

        return OpenAITTSService(
            base_url=config.tts_url,
            model=config.tts_model,
            voice=config.tts_voice,
            api_key=config.api_key,
            timeout_s=config.timeout_s,
            connect_timeout_s=config.connect_timeout_s,
            sample_rate=config.out_sample_rate,
            first_max_words=config.first_clause_words,
        )
    from apipeline.services.espeak import ESpeakTTSService

    return ESpeakTTSService(
        voice=config.voice,
        rate=config.speech_rate,
        sample_rate=config.out_sample_rate,
        first_max_words=config.first_clause_words,
    )


def build_chatbot(
    config: ChatbotConfig | None = None,
    *,
    llm: LLMService | None = None,
    stt: STTService | None = None,
    voice_changer: Any = None,
) -> Chatbot:
    """Build every stage of the chatbot (``llm``, ``stt`` replace the configured services).

    ``voice_changer``: a ``VoiceChangerSettings``: the bot speaks through the voice changer's DAG
    (:func:`~apipeline.services.bot_voice.bot_voice_changer`), at the answer's rate.

    Raises:
        ModelError / ServiceError / ValueError: a missing model, an unknown voice, a bad URL or option.
    """
    from apipeline.processors.audio.vad import VADProcessor

    config = config or ChatbotConfig()
    if config.sample_rate != 16000:
        raise ParameterError(
            f"the chatbot's input runs at 16000 Hz (VAD and STT), got {config.sample_rate}: resample first"
        )
    # Build the services that validate their options first, so a bad option fails before a model loads.
    tts = build_tts(config)
    voice = None
    if voice_changer is not None:
        from apipeline.services.bot_voice import bot_voice_changer

        voice = bot_voice_changer(voice_changer, sample_rate=config.out_sample_rate)
    stt = stt or build_stt(config)
    llm = llm or build_llm(config)
    vad = VADProcessor(
        sample_rate=config.sample_rate,
        threshold=config.vad_threshold,
        min_silence_ms=config.vad_stop_ms,
    )
    context = LLMContext(system_prompt=config.system_prompt, max_messages=config.max_history)
    return Chatbot(
        config=config,
        vad=vad,
        stt=stt,
        turns=TurnTakingProcessor(config.interruption),
        context=context,
        aggregators=LLMContextAggregatorPair(context),
        llm=llm,
        tts=tts,
        output=BotAudioOutput(realtime=config.realtime_output),
        voice_changer=voice,
    )
