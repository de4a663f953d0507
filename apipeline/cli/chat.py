"""``apipeline chat --input question.wav --output answer.wav``: ask the voice chatbot, offline.

Runs the whole chatbot (Silero VAD, speech to text, turn taking, the LLM, text to speech) on the spoken
question in ``--input`` (any rate and channel count: mixed to mono and resampled to 16 kHz) and writes
the spoken answer to ``--output``. Prints each turn's transcript and answer and where the time went:
end of the user's turn (VAD) to final transcript, to first LLM token, to first synthesized audio
(``--json``: one JSON object on stdout instead).

Local engines by default (pocketsphinx, Gemma 3 270M, eSpeak NG: fully offline); ``--stt-url``,
``--llm-url`` and ``--tts-url`` switch a stage to an OpenAI-compatible server (API base, e.g.
``http://localhost:8080/v1``; ``--api-key`` or ``$OPENAI_API_KEY``).

Exit codes: 0 ok; 2 usage or input errors (missing or non-audio input, bad URL, unknown voice, missing
model); 1 runtime failures (an engine error, an unreachable server).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from apipeline.errors import ParameterError

PROG = "apipeline chat"
EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("-i", "--input", required=True, help="the spoken question (WAV, FLAC, OGG)")
    p.add_argument("-o", "--output", required=True, help="where to write the spoken answer (PCM16)")
    add_engine_arguments(p)
    p.add_argument("--sample-rate", type=int, default=16000, help="rate of the answer (default 16000)")
    p.add_argument(
        "--video", default=None, metavar="PATH", help="also write the answer as a talking-head video (.mp4)"
    )
    p.add_argument("--image", default=None, help="portrait for --video (default: the bundled one)")
    p.add_argument("--json", action="store_true", help="print the results as JSON on stdout")


def add_engine_arguments(p: argparse.ArgumentParser) -> None:
    """The chatbot's engine options, shared by ``apipeline chat`` and ``apipeline serve --app chatbot``."""
    p.add_argument("--stt-url", default=None, help="OpenAI-compatible transcription server (API base)")
    p.add_argument("--llm-url", default=None, help="OpenAI-compatible chat-completions server (API base)")
    p.add_argument("--tts-url", default=None, help="OpenAI-compatible speech server (API base)")
    p.add_argument("--api-key", default=None, help="bearer token for the servers (default $OPENAI_API_KEY)")
    p.add_argument("--stt-model", default="whisper-1", help="model name for --stt-url")
    p.add_argument("--llm-model", default="gpt-4o-mini", help="model name for --llm-url")
    p.add_argument("--tts-model", default="tts-1", help="model name for --tts-url")
    p.add_argument("--tts-voice", default="alloy", help="voice for --tts-url")
    p.add_argument("--voice", default="en-us", help="eSpeak NG voice of the local TTS (default en-us)")
    p.add_argument("--llm-backend", choices=("auto", "llama.cpp", "transformers"), default="auto")
    p.add_argument("--model", default=None, help="GGUF file of the local LLM (default: Gemma 3 270M)")
    p.add_argument("--max-tokens", type=int, default=40, help="longest answer in tokens (default 40)")
    p.add_argument("--system-prompt", default=None, help="the system prompt")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for a server (default 30)")
    p.add_argument(
        "--vad-stop-ms",
        type=float,
        default=None,
        help="silence that ends the user's turn, ms (default: the chatbot's, 250)",
    )
    p.add_argument(
        "--voice-changer",
        action="store_true",
        help="the bot speaks through the voice changer (the DAG `apipeline voice-changer` runs)",
    )
    p.add_argument("--pitch", type=float, default=None, help="with --voice-changer: semitones (default 0)")
    p.add_argument("--formant", type=float, default=None, help="with --voice-changer: ratio (default 1)")


def chatbot_config(args: argparse.Namespace, **changes: Any) -> Any:
    """The :class:`~apipeline.services.chatbot.ChatbotConfig` of the engine options (plus ``changes``)."""
    from apipeline.services.chatbot import ChatbotConfig

    extra: dict[str, Any] = {}
    if args.vad_stop_ms is not None:
        extra["vad_stop_ms"] = args.vad_stop_ms
    return ChatbotConfig(
        stt_url=args.stt_url,
        llm_url=args.llm_url,
        tts_url=args.tts_url,
        api_key=args.api_key,
        stt_model=args.stt_model,
        llm_model=args.llm_model,
        tts_model=args.tts_model,
        tts_voice=args.tts_voice,
        voice=args.voice,
        llm_backend=args.llm_backend,
        llm_model_path=args.model,
        max_tokens=args.max_tokens,
        system_prompt=args.system_prompt,
        timeout_s=args.timeout,
        connect_timeout_s=min(args.timeout, 5.0),
        **extra,
        **changes,
    )


def voice_changer_settings(args: argparse.Namespace) -> Any:
    """``VoiceChangerSettings`` for ``--voice-changer`` (checked), or None; ValueError for a bad option."""
    if not args.voice_changer:
        for flag in ("pitch", "formant"):
            if getattr(args, flag) is not None:
                raise ParameterError(f"--{flag} applies to the bot's voice changer: add --voice-changer")
        return None
    from apipeline.voice_changer import VoiceChangerSettings

    given = {k: getattr(args, k) for k in ("pitch", "formant") if getattr(args, k) is not None}
    settings = VoiceChangerSettings(**given)
    settings.validate()
    return settings


def chatbot_factory(args: argparse.Namespace) -> Any:
    """``apipeline serve --app chatbot``'s session factory (the engine options; nothing loads yet)."""
    from apipeline.errors import ModelError
    from apipeline.transports.chatbot import ChatbotFactory

    try:
        return ChatbotFactory(chatbot_config(args), voice_changer=voice_changer_settings(args))
    except ModelError as exc:  # an unknown voice, a missing engine package: the operator's option
        raise ParameterError(str(exc)) from None


def add_parser(subparsers: Any) -> None:
    """Register ``chat`` on the ``apipeline`` command's subparsers."""
    p = subparsers.add_parser(
        "chat",
        help="ask the voice chatbot a spoken question from a file; write the spoken answer",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _configure(p)


def run(args: argparse.Namespace) -> int:
    from apipeline.errors import ApipelineError, AudioFileError

    try:
        result = asyncio.run(_chat(args))
    except (AudioFileError, ValueError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ApipelineError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE if _is_setup_error(exc) else EXIT_FAILURE
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _print(result)
    return EXIT_FAILURE if result["errors"] and not result["turns"] else EXIT_OK


def _is_setup_error(exc: BaseException) -> bool:
    from apipeline.errors import ModelError
    from apipeline.services.ai_service import ServiceError

    return isinstance(exc, ModelError) or (isinstance(exc, ServiceError) and exc.status is None)


async def _chat(args: argparse.Namespace) -> dict[str, Any]:
    from apipeline.pipeline import Pipeline, PipelineParams, PipelineTask
    from apipeline.processors.audio.convert import ChannelMixer
    from apipeline.processors.audio.io import AudioFileSink, AudioFileSource
    from apipeline.processors.audio.resample import ResampleProcessor
    from apipeline.services.chatbot import build_chatbot
    from apipeline.services.latency import TurnLatency

    source = AudioFileSource(args.input)  # checks the file before any model loads
    head: list[Any] = []
    if args.video is not None:  # the portrait, its face and the container are checked before any model
        from apipeline.talking_head import speaking_head

        head = speaking_head(args.video, image=args.image, inputs=(args.input,))
    config = chatbot_config(args, realtime_output=False, out_sample_rate=args.sample_rate)
    voice = voice_changer_settings(args)
    t0 = time.perf_counter()
    bot = build_chatbot(config, voice_changer=voice)
    load_s = time.perf_counter() - t0
    latency = TurnLatency()
    answers: list[dict[str, Any]] = []
    transcripts: list[str] = []
    bot.aggregators.user().add_event_handler("on_user_turn", lambda _a, text: transcripts.append(text))
    bot.aggregators.assistant().add_event_handler(
        "on_assistant_turn", lambda _a, text, cut: answers.append({"text": text, "interrupted": cut})
    )
    sink = AudioFileSink(args.output, sample_rate=args.sample_rate, channels=1)
    task = PipelineTask(
        Pipeline(
            [
                source,
                ChannelMixer(1),
                ResampleProcessor(16000),
                *bot.processors(latency),
                *head,
                sink,
            ]
        ),
        PipelineParams(allow_interruptions=True, end_timeout=max(120.0, 4 * args.timeout)),
    )
    t1 = time.perf_counter()
    await task.run()
    run_s = time.perf_counter() - t1
    if sink.frames_written == 0:
        # an answer-less run still leaves a valid (silent, empty) file behind
        import numpy as np

        from apipeline.audio.io import write_audio

        write_audio(args.output, np.zeros(0, dtype=np.float32), args.sample_rate)
    turns = []
    for i, turn in enumerate(latency.turns()):
        times = turn.since(turn.times["vad_stop"])
        turns.append(
            {
                "transcript": transcripts[i] if i < len(transcripts) else "",
                "answer": answers[i]["text"] if i < len(answers) else "",
                "latency_s": {k: round(v, 4) for k, v in times.items() if k != "vad_stop"},
            }
        )
    return {
        "input": args.input,
        "output": args.output,
        "engines": {
            "stt": type(bot.stt).__name__,
            "llm": type(bot.llm).__name__ + _backend(bot.llm),
            "tts": type(bot.tts).__name__,
        },
        "load_s": round(load_s, 3),
        "run_s": round(run_s, 3),
        "answer_s": round(sink.frames_written / args.sample_rate, 3),
        "turns": [t for t in turns if t["transcript"]],
        "errors": [e.error for e in task.errors],
    }


def _backend(llm: Any) -> str:
    engine = getattr(llm, "engine", None)
    return f" ({engine.backend})" if engine is not None else ""


def _print(result: dict[str, Any]) -> None:
    engines = result["engines"]
    print(f"engines: STT {engines['stt']}, LLM {engines['llm']}, TTS {engines['tts']}")
    print(f"loaded in {result['load_s']:.2f} s, ran in {result['run_s']:.2f} s")
    if not result["turns"]:
        print("no speech recognized in the input")
    for turn in result["turns"]:
        print(f"you said:  {turn['transcript']}")
        print(f"bot said:  {turn['answer']}")
        lat = turn["latency_s"]
        parts = [f"{name} +{lat[key] * 1000:.0f} ms" for key, name in _STAGE_NAMES if key in lat]
        print("latency after your turn ended: " + ", ".join(parts))
    print(f"wrote {result['answer_s']:.2f} s of answer to {result['output']}")
    for error in result["errors"]:
        print(f"error: {error}", file=sys.stderr)


_STAGE_NAMES = (
    ("stt_final", "transcript"),
    ("llm_first", "first token"),
    ("tts_first", "first audio"),
    ("bot_started", "first audio out"),
)
