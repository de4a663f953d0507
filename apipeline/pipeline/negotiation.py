"""Format checks at link time: every link between audio processors must agree on the format.

Each processor may declare ``input_format``/``output_format``
(:class:`~apipeline.audio.format.AudioFormat`); ``None`` means "passes audio through unchanged".
The check walks the pipeline as frames would, carrying the format known at each point, and raises
:class:`~apipeline.errors.LinkError` naming both processors and both formats at the first mismatch.
"""

from __future__ import annotations

from apipeline.audio.format import AudioFormat
from apipeline.errors import LinkError
from apipeline.processors.frame_processor import FrameProcessor


def check_links(root: FrameProcessor) -> AudioFormat | None:
    """Check every link under ``root``; return the format that leaves it (``None`` if unknown)."""
    fmt, _ = _walk(root, None, None)
    return fmt


def pipeline_latency(root: FrameProcessor) -> float:
    """Total algorithmic latency (seconds) along the slowest path through ``root``."""
    from apipeline.pipeline.parallel import ParallelPipeline
    from apipeline.pipeline.pipeline import Pipeline

    if isinstance(root, ParallelPipeline):
        return max((pipeline_latency(b) for b in root.branches), default=0.0)
    if isinstance(root, Pipeline):
        return sum(pipeline_latency(p) for p in root.processors())
    return float(root.latency)


def _walk(
    proc: FrameProcessor, fmt: AudioFormat | None, producer: FrameProcessor | None
) -> tuple[AudioFormat | None, FrameProcessor | None]:
    from apipeline.pipeline.parallel import ParallelPipeline
    from apipeline.pipeline.pipeline import Pipeline

    if isinstance(proc, ParallelPipeline):
        outs = [_walk(b, fmt, producer) for b in proc.branches]
        formats = {o[0] for o in outs}
        if len(formats) == 1:
            return outs[0][0], outs[0][1]
        return None, proc
    if isinstance(proc, Pipeline):
        for p in proc.processors():
            fmt, producer = _walk(p, fmt, producer)
        return fmt, producer
    accepted = proc.input_format
    if accepted is not None and fmt is not None and not fmt.is_compatible(accepted):
        fields = ", ".join(fmt.mismatches(accepted))
        raise LinkError(
            f"cannot link {producer.name if producer else 'input'} -> {proc.name}: "
            f"{producer.name if producer else 'input'} produces {fmt}, {proc.name} accepts {accepted} "
            f"(mismatch in {fields})"
        )
    if proc.output_format is not None:
        out = proc.output_format
        if accepted is not None and fmt is not None:
            # fields the processor passes through ("any" on both sides) keep the known value
            out = AudioFormat(
                out.sample_rate or (fmt.sample_rate if accepted.sample_rate is None else None),
                out.channels or (fmt.channels if accepted.channels is None else None),
                out.dtype or (fmt.dtype if accepted.dtype is None else None),
            )
        return out, proc
    return fmt, producer
