"""Where a chatbot's time goes: probes between its stages and the per-turn latencies they give.

:class:`TurnLatency` hands out transparent probe processors (:meth:`TurnLatency.probe`) to place after
the VAD, STT, LLM, TTS and the bot's output; each records the monotonic time at which the frames that
mark a stage pass it. :meth:`TurnLatency.turns` then lines the events up per user turn:

* ``vad_stop``: the VAD ended the user's turn (its hang-over is included from the end of speech);
* ``stt_final``: the final transcript left speech to text;
* ``llm_first``: the first token left the LLM;
* ``tts_first``: the first audio left text to speech;
* ``bot_started``: the first audio left the bot's output;

and :meth:`TurnLatency.barge_ins` the interruptions: ``user_started`` (the VAD's start) to
``bot_stopped`` (the output stopped the bot's audio). A probe costs one ``isinstance`` per frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from apipeline.errors import UnknownNameError
from apipeline.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    Frame,
    LLMFullResponseStartFrame,
    TranscriptionFrame,
    TTSStartedFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from apipeline.processors.frame_processor import FrameDirection, FrameProcessor, monotonic_ns

_MARKS: dict[type[Frame], str] = {
    UserStartedSpeakingFrame: "user_started",
    UserStoppedSpeakingFrame: "vad_stop",
    TranscriptionFrame: "stt_final",
    LLMFullResponseStartFrame: "llm_first",
    TTSStartedFrame: "tts_first",
    BotStartedSpeakingFrame: "bot_started",
    BotStoppedSpeakingFrame: "bot_stopped",
}
STAGES = ("vad_stop", "stt_final", "llm_first", "tts_first", "bot_started")


@dataclass
class Turn:
    """The monotonic times (ns) of one user turn's stages (absent: the stage never happened)."""

    times: dict[str, int] = field(default_factory=dict)

    def since(self, origin_ns: int) -> dict[str, float]:
        """Each stage's time in seconds after ``origin_ns`` (e.g. the true end of speech)."""
        return {k: (v - origin_ns) / 1e9 for k, v in self.times.items()}


class _Probe(FrameProcessor):
    def __init__(self, owner: TurnLatency, stage: str) -> None:
        super().__init__(name=f"latency.{stage}")
        self._owner = owner
        self._marks = {t: m for t, m in _MARKS.items() if m in owner.stage_marks[stage]}

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction is FrameDirection.DOWNSTREAM:
            mark = self._marks.get(type(frame))
            if mark is not None:
                self._owner.record(mark, frame)
        await self.push_frame(frame, direction)


class TurnLatency:
    """Collects stage events from its probes (see the module docstring)."""

    stage_marks = {
        "vad": ("user_started", "vad_stop"),
        "stt": ("stt_final",),
        "llm": ("llm_first",),
        "tts": ("tts_first",),
        "output": ("bot_started", "bot_stopped"),
    }

    def __init__(self) -> None:
        self.events: list[tuple[str, int, Frame]] = []

    def probe(self, stage: str) -> FrameProcessor:
        """A probe for the frames leaving ``stage`` (``vad``, ``stt``, ``llm``, ``tts`` or ``output``)."""
        if stage not in self.stage_marks:
            raise UnknownNameError(f"unknown stage {stage!r}; expected one of {', '.join(self.stage_marks)}")
        return _Probe(self, stage)

    def record(self, mark: str, frame: Frame) -> None:
        self.events.append((mark, monotonic_ns(), frame))
        if len(self.events) > 10_000:
            del self.events[:5_000]

    def turns(self) -> list[Turn]:
        """One :class:`Turn` per ``vad_stop``, with the first of each later stage before the next turn."""
        turns: list[Turn] = []
        for mark, t, _ in self.events:
            if mark == "vad_stop":
                turns.append(Turn({"vad_stop": t}))
            elif turns and mark in STAGES and mark not in turns[-1].times:
                turns[-1].times[mark] = t
        return turns

    def barge_ins(self) -> list[tuple[int, int]]:
        """``(user_started_ns, bot_stopped_ns)`` for every interruption that stopped the bot's audio."""
        out: list[tuple[int, int]] = []
        started: int | None = None
        for mark, t, frame in self.events:
            if mark == "user_started":
                started = t
            elif (
                mark == "bot_stopped"
                and started is not None
                and isinstance(frame, BotStoppedSpeakingFrame)
                and frame.interrupted
            ):
                out.append((started, t))
                started = None
        return out


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0-1) by the nearest-rank method; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]
