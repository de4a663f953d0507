"""Voice-to-voice and barge-in latency of the chatbot: questions spoken by eSpeak NG, streamed in real time.

One conversation through the whole chatbot (Silero VAD, STT, turn taking, LLM, TTS, real-time output).
The user's side is a source pacing 20 ms blocks on the monotonic clock, so the true end of each question
(and the true onset of each interrupting utterance) is known on that clock.

* Voice to voice: from the end of the user's speech to the first bot audio leaving the output, with the
  time of each stage after the end of speech: VAD end of turn, STT final, LLM first token, TTS first
  audio, bot audio out.
* Barge-in: the user talks over the answer; from the onset of that speech to the output stopping the
  bot's audio.

Prints p50/p95 (nearest rank) per stage. Run:
    .venv/bin/python benchmarks/chatbot_latency.py [--rounds 6] [--llm-backend auto] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np

from apipeline.frames import AudioRawFrame, BotStoppedSpeakingFrame, Frame
from apipeline.pipeline import Pipeline, PipelineParams, PipelineTask
from apipeline.processors.frame_processor import FrameDirection, FrameProcessor, monotonic_ns
from apipeline.processors.io import InputProcessor
from apipeline.services import ChatbotConfig, build_chatbot
from apipeline.services.espeak import synthesize_speech
from apipeline.services.latency import STAGES, TurnLatency, percentile

QUESTIONS = [
    "what is two plus two",
    "what is the weather like today",
    "what is your name",
    "how are you today",
    "what time is it",
    "tell me about the weather",
]
INTERRUPTIONS = ["stop please", "wait a moment", "no no no", "hold on"]
RATE = 16000
BLOCK = 320  # 20 ms


class SpokenUser(InputProcessor):
    """Streams spoken utterances in real time; records the true end (and onset) of each on the clock."""

    def __init__(
        self, plan: list[tuple[str, str]], bot_idle: asyncio.Event, bot_started: asyncio.Event
    ) -> None:
        super().__init__()
        self.plan = plan
        self.bot_idle = bot_idle
        self.bot_started = bot_started
        self.speech_end_ns: list[int] = []
        self.barge_onset_ns: list[int] = []
        self._due_ns = 0

    async def _say(self, audio: np.ndarray) -> AsyncIterator[tuple[int, AudioRawFrame]]:
        for i in range(0, len(audio), BLOCK):
            delay = (self._due_ns - monotonic_ns()) / 1e9
            if delay > 0:
                await asyncio.sleep(delay)
            now = monotonic_ns()
            if self._due_ns < now - 50_000_000:
                self._due_ns = now  # we fell behind (a wait): restart the clock
            yield self._due_ns, AudioRawFrame(audio[i : i + BLOCK], RATE, pts=self._due_ns)
            self._due_ns += BLOCK * 1_000_000_000 // RATE

    async def frames(self) -> AsyncIterator[Frame]:
        silence = np.zeros(RATE // 2, np.float32)
        async for _, frame in self._say(silence):
            yield frame
        for kind, text in self.plan:
            speech = synthesize_speech(text, sample_rate=RATE)
            self.bot_idle.clear()
            self.bot_started.clear()
            t_start = None
            async for t, frame in self._say(speech):
                t_start = t if t_start is None else t_start
                yield frame
            assert t_start is not None
            end = t_start + len(speech) * 1_000_000_000 // RATE
            if kind == "barge":
                self.barge_onset_ns.append(t_start)
            self.speech_end_ns.append(end)
            async for _, frame in self._say(np.zeros(RATE // 2, np.float32)):
                yield frame
            # keep the microphone open (silence) until the bot has answered, like a live call (an
            # utterance the STT heard nothing in gets no answer: give up after 10 s)
            deadline = monotonic_ns() + 10_000_000_000
            while not self.bot_idle.is_set() and monotonic_ns() < deadline:
                if kind == "question_then_barge" and self.bot_started.is_set():
                    break
                async for _, frame in self._say(np.zeros(BLOCK, np.float32)):
                    yield frame
            if kind == "question_then_barge":
                async for _, frame in self._say(np.zeros(RATE * 3 // 10, np.float32)):  # 0.3 s of answer
                    yield frame


class BotState(FrameProcessor):
    def __init__(self, idle: asyncio.Event, started: asyncio.Event) -> None:
        super().__init__()
        self.idle, self.speaking = idle, started

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction is FrameDirection.DOWNSTREAM:
            name = type(frame).__name__
            if name == "BotStartedSpeakingFrame":
                self.speaking.set()
            elif isinstance(frame, BotStoppedSpeakingFrame) and not frame.interrupted:
                self.idle.set()
        await self.push_frame(frame, direction)


def cpu_costs(engine: Any, question: str = "what is two plus two") -> dict[str, float]:
    """This process's CPU time per stage (ms), measured alone, stage by stage, on one spoken question.

    CPU time hardly depends on what else the machine runs (wall time does): on a shared machine it says
    where a turn's work is, and on a quiet one it is close to each stage's wall time (the LLM's torch
    threads excepted: their CPU is summed over threads).
    """
    import threading

    from apipeline.audio.vad import SileroVad
    from apipeline.services.espeak import ESpeakLibrary
    from apipeline.services.local_llm import format_prompt
    from apipeline.services.pocketsphinx import PocketSphinxSTTService

    speech = synthesize_speech(question, sample_rate=RATE)
    audio = np.concatenate([speech, np.zeros(RATE // 2, np.float32)])
    blocks = [audio[i : i + BLOCK] for i in range(0, len(audio) - BLOCK + 1, BLOCK)]
    out: dict[str, float] = {"audio_s": len(audio) / RATE}

    vad = SileroVad(RATE, 0.5, min_silence_ms=250.0)
    t = time.process_time()
    for block in blocks:
        vad.process(block)
    out["vad_ms_per_audio_s"] = 1000 * (time.process_time() - t) / out["audio_s"]

    stt = PocketSphinxSTTService()
    stt.begin_utterance()
    t = time.process_time()
    for block in blocks:
        stt.feed((block * 32767).astype(np.int16))
    out["stt_stream_ms_per_audio_s"] = 1000 * (time.process_time() - t) / out["audio_s"]
    t = time.process_time()
    stt.end_utterance()
    out["stt_final_ms"] = 1000 * (time.process_time() - t)

    if engine is not None:
        prompt = format_prompt([{"role": "user", "content": question}])
        engine.warm_up(format_prompt([]))  # the few-shot prefix, as after the server's warm-up
        t = time.process_time()
        w = time.perf_counter()
        list(engine.complete(prompt, max_tokens=1, stop=("\n",), cancel=threading.Event()))
        out["llm_first_token_ms"] = 1000 * (time.process_time() - t)
        out["llm_first_token_wall_ms"] = 1000 * (time.perf_counter() - w)
        t = time.process_time()
        pieces = list(engine.complete(prompt, max_tokens=24, stop=(), cancel=threading.Event()))
        out["llm_ms_per_token"] = 1000 * (time.process_time() - t) / 24
        del pieces

    library = ESpeakLibrary.get()
    first: list[float] = []
    stop = threading.Event()

    def emit(item: Any) -> None:
        if not first and isinstance(item, np.ndarray):
            first.append(time.process_time())
            stop.set()

    t = time.process_time()
    library.synthesize("Two plus two is four.", emit, stop, voice="en-us", rate=175, pitch=50)
    out["tts_first_audio_ms"] = 1000 * (first[0] - t) if first else float("nan")
    return out


def estimate(cpu: dict[str, float], args: argparse.Namespace) -> float:
    """Voice to voice on an idle machine, from the CPU times (each stage waits for the one before):
    the VAD's hang-over (``vad_stop_ms`` plus one 32 ms Silero window), the STT's final search, the
    LLM's first token, then one token per word of the first clause (plus one: a word is complete when the
    next one starts), then the TTS's first audio. An estimate, not a measurement."""
    words = args.first_clause_words
    return (
        args.vad_stop_ms
        + 32.0
        + cpu["stt_final_ms"]
        + cpu.get("llm_first_token_ms", 0.0)
        + words * cpu.get("llm_ms_per_token", 0.0)
        + cpu["tts_first_audio_ms"]
    )


def _stats(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": percentile(values, 0.5) * 1000,
        "p95_ms": percentile(values, 0.95) * 1000,
        "n": len(values),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    load_start = list(os.getloadavg())
    t0 = time.perf_counter()
    bot = build_chatbot(
        ChatbotConfig(
            llm_backend=args.llm_backend,
            max_tokens=args.max_tokens,
            vad_stop_ms=args.vad_stop_ms,
            first_clause_words=args.first_clause_words,
            llm_url=args.llm_url,
        )
    )
    load_s = time.perf_counter() - t0
    plan = [("question", q) for q in QUESTIONS[: args.rounds]]
    for i in range(args.rounds):
        plan += [("question_then_barge", QUESTIONS[i % len(QUESTIONS)]), ("barge", INTERRUPTIONS[i % 4])]
    idle, started = asyncio.Event(), asyncio.Event()
    user = SpokenUser(plan, idle, started)
    latency = TurnLatency()
    task = PipelineTask(
        Pipeline([user, *bot.processors(latency), BotState(idle, started)]),
        PipelineParams(allow_interruptions=True, end_timeout=120),
    )
    await task.run()
    # line the turns up with the true ends of speech (one VAD turn per utterance, in order)
    turns = latency.turns()
    stages: dict[str, list[float]] = {s: [] for s in STAGES}
    kinds = [k for k, _ in plan]
    for kind, end_ns in zip(kinds, user.speech_end_ns):
        if kind == "question_then_barge":
            continue  # its answer was cut on purpose; the barge's own answer is measured
        turn = next((t for t in turns if t.times["vad_stop"] >= end_ns), None)
        if turn is None:
            continue
        for stage, t in turn.times.items():
            stages[stage].append((t - end_ns) / 1e9)
    barge = []
    for onset in user.barge_onset_ns:
        stop = next((s for _, s in latency.barge_ins() if s > onset), None)
        if stop is not None:
            barge.append((stop - onset) / 1e9)
    llm = bot.llm
    engine = getattr(llm, "engine", None)
    cpu = cpu_costs(engine)
    return {
        "machine": "2 cores (shared), no GPU",
        "load_average": {"start": load_start, "end": list(os.getloadavg())},
        "cpu_ms": cpu,
        "llm": type(llm).__name__
        + (f" ({engine.backend}, loaded in {engine.load_seconds:.1f} s)" if engine else ""),
        "load_s": round(load_s, 2),
        "turns": len(turns),
        "errors": [e.error for e in task.errors],
        "voice_to_voice": {s: _stats(v) for s, v in stages.items()},
        "barge_in": _stats(barge),
        "interruptions": bot.output.interruptions,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--llm-backend", default="auto")
    p.add_argument("--llm-url", default=None)
    p.add_argument("--max-tokens", type=int, default=24)
    p.add_argument("--vad-stop-ms", type=float, default=250.0)
    p.add_argument("--first-clause-words", type=int, default=ChatbotConfig.first_clause_words)
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--cpu-only",
        action="store_true",
        help="only the per-stage CPU times (no real-time conversation: for a loaded machine)",
    )
    args = p.parse_args()
    if args.cpu_only:
        from apipeline.services.local_llm import load_local_llm

        load = list(os.getloadavg())
        cpu = cpu_costs(None if args.llm_url else load_local_llm(backend=args.llm_backend))
        cpu["estimate_voice_to_voice_ms"] = estimate(cpu, args)
        print(
            json.dumps(
                {"cpu_ms": cpu, "load_average": {"start": load, "end": list(os.getloadavg())}}, indent=2
            )
        )
        return
    result = asyncio.run(run(args))
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"LLM: {result['llm']}; chatbot built in {result['load_s']} s; {result['turns']} turns")
    print("after the end of the user's speech (ms):    p50     p95    n")
    names = {
        "vad_stop": "VAD end of turn",
        "stt_final": "STT final transcript",
        "llm_first": "LLM first token",
        "tts_first": "TTS first audio",
        "bot_started": "bot audio out (voice to voice)",
    }
    for stage, s in result["voice_to_voice"].items():
        print(f"  {names[stage]:<38} {s['p50_ms']:7.0f} {s['p95_ms']:7.0f} {s['n']:4d}")
    b = result["barge_in"]
    print(
        f"barge-in (speech onset -> bot audio stopped): p50 {b['p50_ms']:.0f} ms, "
        f"p95 {b['p95_ms']:.0f} ms, n={b['n']}"
    )
    cpu = result["cpu_ms"]
    print("CPU time of this process per stage, measured alone (ms; nearly independent of other load):")
    print(
        f"  VAD {cpu['vad_ms_per_audio_s']:.0f} per s of audio; STT streaming "
        f"{cpu['stt_stream_ms_per_audio_s']:.0f} per s of audio, final {cpu['stt_final_ms']:.0f}"
    )
    if "llm_first_token_ms" in cpu:
        print(
            f"  LLM first token {cpu['llm_first_token_ms']:.0f} (wall {cpu['llm_first_token_wall_ms']:.0f}), "
            f"then {cpu['llm_ms_per_token']:.0f} per token; TTS first audio {cpu['tts_first_audio_ms']:.0f}"
        )
    la = result["load_average"]
    print(f"load average (1/5/15 min): start {la['start']}, end {[round(x, 2) for x in la['end']]}")
    for error in result["errors"]:
        print("error:", error)


if __name__ == "__main__":
    main()
