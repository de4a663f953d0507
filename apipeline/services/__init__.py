"""Speech and language services for voice chatbots (named as pipecat users would guess).

Bases (processors, streaming, interruption-aware, TTFB in the metrics):

* :mod:`~apipeline.services.stt`: :class:`STTService` — audio and turn boundaries in, transcripts out.
* :mod:`~apipeline.services.llm`: :class:`LLMService` — a context in, the answer streamed as tokens.
* :mod:`~apipeline.services.tts`: :class:`TTSService` — streamed text in, speech out clause by clause.
* :mod:`~apipeline.services.ai_service`: what they share (engine thread, cancellable streams, errors).

Engines (imported on demand: they pull their own dependencies, the ``chat`` extra):

* local: :mod:`~apipeline.services.pocketsphinx` (STT), :mod:`~apipeline.services.local_llm` (Gemma 3
  270M GGUF on llama.cpp or transformers), :mod:`~apipeline.services.espeak` (eSpeak NG TTS);
* remote, OpenAI-compatible: :mod:`~apipeline.services.openai`.

Conversation: :mod:`~apipeline.services.context` (context and aggregators),
:mod:`~apipeline.services.turns` (turn taking, interruption strategies),
:mod:`~apipeline.services.output` (the bot's real-time output), :mod:`~apipeline.services.text`
(clause splitting), :mod:`~apipeline.services.chatbot` (the whole chatbot from a config).
"""

from apipeline.services.ai_service import AIService as AIService
from apipeline.services.ai_service import ServiceError as ServiceError
from apipeline.services.chatbot import Chatbot as Chatbot
from apipeline.services.chatbot import ChatbotConfig as ChatbotConfig
from apipeline.services.chatbot import build_chatbot as build_chatbot
from apipeline.services.context import LLMAssistantContextAggregator as LLMAssistantContextAggregator
from apipeline.services.context import LLMContext as LLMContext
from apipeline.services.context import LLMContextAggregatorPair as LLMContextAggregatorPair
from apipeline.services.context import LLMUserContextAggregator as LLMUserContextAggregator
from apipeline.services.llm import LLMService as LLMService
from apipeline.services.output import BotAudioOutput as BotAudioOutput
from apipeline.services.stt import STTService as STTService
from apipeline.services.text import ClauseSplitter as ClauseSplitter
from apipeline.services.tts import TTSService as TTSService
from apipeline.services.tts import WordMark as WordMark
from apipeline.services.turns import ImmediateInterruption as ImmediateInterruption
from apipeline.services.turns import InterruptionStrategy as InterruptionStrategy
from apipeline.services.turns import MinDurationInterruption as MinDurationInterruption
from apipeline.services.turns import MinWordsInterruption as MinWordsInterruption
from apipeline.services.turns import TurnTakingProcessor as TurnTakingProcessor

__all__ = [
    "AIService",
    "BotAudioOutput",
    "Chatbot",
    "ChatbotConfig",
    "ClauseSplitter",
    "ImmediateInterruption",
    "InterruptionStrategy",
    "LLMAssistantContextAggregator",
    "LLMContext",
    "LLMContextAggregatorPair",
    "LLMService",
    "LLMUserContextAggregator",
    "MinDurationInterruption",
    "MinWordsInterruption",
    "STTService",
    "ServiceError",
    "TTSService",
    "TurnTakingProcessor",
    "WordMark",
    "build_chatbot",
]
