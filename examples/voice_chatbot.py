"""A voice chatbot on local engines: speak a question, hear the answer, talk over it to interrupt.

The user's side is simulated with eSpeak NG (two spoken questions streamed in real time; the second
starts while the bot answers the first, so you see a barge-in). The bot runs entirely offline:
Silero VAD, pocketsphinx, Gemma 3 270M, eSpeak NG. Pass ``--llm-url``/``--stt-url``/``--tts-url`` to put
a stage on an OpenAI-compatible server instead. The bot's voice is written to ``bot.wav``.

Run: .venv/bin/python examples/voice_chatbot.py [--llm-url http://localhost:8080/v1]
"""

from __future__ import annotations

import argparse
import asyncio

import numpy as np

from apipeline.frames import BotStartedSpeakingFrame, Frame
from apipeline.pipeline import Pipeline, PipelineParams, PipelineTask
from apipeline.processors.audio.io import AudioFileSink
from apipeline.processors.frame_processor import FrameDirection, FrameProcessor
from apipeline.processors.io import InputProcessor
from apipeline.services import ChatbotConfig, build_chatbot
from apipeline.services.espeak import synthesize_speech
from apipeline.services.latency import TurnLatency


class User(InputProcessor):
    """Says the first question; once the bot answers, starts the second one over it (in real time)."""

    def __init__(self, questions: list[str], bot_started: asyncio.Event) -> None:
        super().__init__()
        self.questions = questions
        self.bot_started = bot_started

    async def frames(self):  # type: ignore[no-untyped-def]
        from apipeline.frames import AudioRawFrame

        loop = asyncio.get_running_loop()
        for n, question in enumerate(self.questions):
            print(f"user:  {question}")
            audio = np.concatenate([synthesize_speech(question), np.zeros(8000, np.float32)])
            t0 = loop.time()
            for i in range(0, len(audio), 320):  # 20 ms blocks, paced like a microphone
                await asyncio.sleep(max(0.0, t0 + i / 16000 - loop.time()))
                yield AudioRawFrame(audio[i : i + 320], 16000)
            if n + 1 < len(self.questions):
                self.bot_started.clear()
                await self.bot_started.wait()
                await asyncio.sleep(0.5)  # let the bot say a few words before talking over it
        await asyncio.sleep(4.0)  # hear the last answer out


class Printer(FrameProcessor):
    def __init__(self, bot_started: asyncio.Event) -> None:
        super().__init__()
        self.bot_started = bot_started

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, BotStartedSpeakingFrame) and direction is FrameDirection.DOWNSTREAM:
            self.bot_started.set()
        await self.push_frame(frame, direction)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--llm-url")
    parser.add_argument("--stt-url")
    parser.add_argument("--tts-url")
    args = parser.parse_args()
    bot = build_chatbot(ChatbotConfig(llm_url=args.llm_url, stt_url=args.stt_url, tts_url=args.tts_url))
    bot.aggregators.user().add_event_handler("on_user_turn", lambda _a, text: print(f"heard: {text}"))
    bot.aggregators.assistant().add_event_handler(
        "on_assistant_turn", lambda _a, text, cut: print(f"bot:   {text}{'  [interrupted]' if cut else ''}")
    )
    started = asyncio.Event()
    latency = TurnLatency()
    user = User(["what is two plus two", "what is the weather like today"], started)
    task = PipelineTask(
        Pipeline([user, *bot.processors(latency), Printer(started), AudioFileSink("bot.wav")]),
        PipelineParams(allow_interruptions=True),
    )
    await task.run()
    for turn in latency.turns():
        times = turn.since(turn.times["vad_stop"])
        print("after the end of the turn:", {k: f"{v * 1000:.0f} ms" for k, v in times.items() if v > 0})
    for onset, stopped in latency.barge_ins():
        print(f"barge-in: bot audio stopped {(stopped - onset) / 1e6:.0f} ms after the VAD heard the user")
    print("context:", bot.context.get_messages())


if __name__ == "__main__":
    asyncio.run(main())
