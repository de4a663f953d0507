"""The voice changer as a library: build the DAG, run it on the bundled sample, change the voice mid-way.

    python examples/voice_changer.py [out.wav]

Builds the pipeline with :func:`apipeline.voice_changer.build_voice_changer`, queues the sample as 20 ms audio
frames with an ``UpdateSettingsFrame`` halfway that raises the pitch and the formants further: the change
travels in order with the audio and applies from the first block after it. Prints the latency the
processors declare and what the monitor measured.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from apipeline.audio.io import read_audio
from apipeline.frames import AudioRawFrame, Frame, UpdateSettingsFrame
from apipeline.pipeline import Pipeline, PipelineTask
from apipeline.pipeline.negotiation import latency_path
from apipeline.processors.audio import AudioFileSink
from apipeline.voice_changer import VoiceChangerSettings, build_voice_changer

SAMPLE = Path(__file__).resolve().parent / "data" / "speech.wav"


async def main(out: str) -> None:
    audio, rate = read_audio(SAMPLE)
    x = audio[:, 0]
    step = rate // 50
    frames: list[Frame] = [AudioRawFrame(x[i : i + step].copy(), rate, 1) for i in range(0, len(x), step)]
    frames.insert(len(frames) // 2, UpdateSettingsFrame({"pitch": 7.0, "formant": 1.2}))
    vc = build_voice_changer(VoiceChangerSettings(pitch=4.0, formant=1.1), sample_rate=rate)
    print(f"declared latency {1000 * vc.latency_seconds:.1f} ms:")
    for name, seconds in latency_path(vc):
        print(f"  {name:<10} {1000 * seconds:5.1f} ms")
    task = PipelineTask(Pipeline([vc, AudioFileSink(out)]))
    await task.queue_frames(frames)
    await task.stop_when_done()
    await task.run()
    report = vc.report()
    print(
        f"{report.blocks} blocks of {report.block_ms:.1f} ms: compute p50 {report.compute_p50_ms:.2f} ms, "
        f"p99 {report.compute_p99_ms:.2f} ms; rtf {report.rtf:.3f}; errors: {task.errors or 'none'}"
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "voice_changed.wav"))
