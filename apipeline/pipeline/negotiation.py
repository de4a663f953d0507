"""Format negotiation at link time, automatic converters, and the latency query.

Each processor may declare ``input_format``/``output_format``
(:class:`~apipeline.frames.format.AudioFormat`, class or instance attribute); ``None`` means "does not
care: passes audio through unchanged", and a ``None`` *field* means "any value". Negotiation walks the
pipeline as frames would, carrying the format known at each point:

* :func:`check_links` raises :class:`~apipeline.errors.LinkError` naming both processors and both formats
  at the first mismatch (``PipelineTask`` calls it at run start when ``params.check_formats``);
* :func:`find_link_problems` returns every mismatch as a message;
* :func:`insert_converters` returns an equivalent tree with the right converters inserted before each
  mismatched processor (channel mixer, then resampler, then sample-type converter) and the list of
  what it inserted; a mismatch no converter can fix (2 -> 6 channels) still raises ``LinkError``.

The graph builder (:mod:`apipeline.graph.build`) uses the same pieces on graph edges, so a converter
inserted there is a node of the graph and shows in the drawing.

Latency: :func:`pipeline_latency` sums the declared ``latency`` (seconds) along the slowest path;
:func:`latency_path` lists that path's processors with their share.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from apipeline.errors import LinkError
from apipeline.frames.format import AudioFormat
from apipeline.processors.frame_processor import FrameProcessor

CONVERTER_TYPES = {
    "channels": "audio.channel_mixer",
    "sample_rate": "audio.resample",
    "dtype": "audio.sample_type",
}
"""Registry type that fixes each format field, in the order converters are inserted."""

#: Makes one converter: ``make(type_name, params, name)``. The graph layer passes its registry's
#: (:func:`apipeline.graph.build.insert_converters`); the converters live in ``apipeline.processors.audio``,
#: which this core module must not import.
ConverterFactory = Callable[[str, dict[str, Any], str], FrameProcessor]


# -- pieces shared with the graph builder -------------------------------------------------------------


def output_of(proc: Any, fmt: AudioFormat | None) -> AudioFormat | None:
    """The format leaving ``proc`` when ``fmt`` enters it (``None``: unknown)."""
    out = getattr(proc, "output_format", None)
    if out is None:
        return fmt  # passes audio through
    accepted = getattr(proc, "input_format", None)
    if fmt is None:
        return out
    # fields the processor leaves open on both sides pass through with the known value
    return AudioFormat(
        out.sample_rate or (fmt.sample_rate if accepted is None or accepted.sample_rate is None else None),
        out.channels or (fmt.channels if accepted is None or accepted.channels is None else None),
        out.dtype or (fmt.dtype if accepted is None or accepted.dtype is None else None),
    )


def link_message(producer: str, produced: AudioFormat, consumer: str, accepted: AudioFormat) -> str:
    """The error text for a mismatched link: both processors, both formats, the fields that differ."""
    fields = ", ".join(produced.mismatches(accepted))
    return (
        f"cannot link {producer} -> {consumer}: {producer} produces {produced}, "
        f"{consumer} accepts {accepted} (mismatch in {fields})"
    )


def converter_specs(produced: AudioFormat, accepted: AudioFormat) -> list[tuple[str, dict[str, Any]]]:
    """Registry types and parameters of the converters from ``produced`` to ``accepted``.

    Channels are mixed first (resampling fewer channels is cheaper), then the rate, then the sample
    type. Raises :class:`LinkError` for a channel change no mixer does (only N -> 1 and 1 -> N exist).
    """
    fields = produced.mismatches(accepted)
    out: list[tuple[str, dict[str, Any]]] = []
    if "channels" in fields:
        have, want = produced.channels, accepted.channels
        if not (want == 1 or have == 1):
            raise LinkError(f"no converter mixes {have} channels to {want} (only N -> 1 and 1 -> N)")
        out.append((CONVERTER_TYPES["channels"], {"channels": want}))
    if "sample_rate" in fields:
        out.append(
            (
                CONVERTER_TYPES["sample_rate"],
                {"out_rate": accepted.sample_rate, "in_rate": produced.sample_rate},
            )
        )
    if "dtype" in fields:
        out.append((CONVERTER_TYPES["dtype"], {"dtype": accepted.dtype}))
    return out


def make_converters(
    produced: AudioFormat, accepted: AudioFormat, *, prefix: str, make: ConverterFactory
) -> list[FrameProcessor]:
    """Instances of :func:`converter_specs` made by ``make``, named ``{prefix}.{kind}``."""
    return [
        make(type_name, params, f"{prefix}.{type_name.rsplit('.', 1)[-1]}")
        for type_name, params in converter_specs(produced, accepted)
    ]


# -- pipelines built in code ---------------------------------------------------------------------------


def check_links(root: FrameProcessor, input_format: AudioFormat | None = None) -> AudioFormat | None:
    """Check every link under ``root``; return the format that leaves it (``None`` if unknown)."""
    _, fmt, _ = _negotiate(root, input_format, None, "raise", [])
    return fmt


def find_link_problems(root: FrameProcessor, input_format: AudioFormat | None = None) -> list[str]:
    """Every mismatched link under ``root``, as messages (empty when all links agree)."""
    problems: list[str] = []
    _negotiate(root, input_format, None, "collect", problems)
    return problems


def insert_converters(
    root: FrameProcessor, input_format: AudioFormat | None = None, *, make: ConverterFactory
) -> tuple[FrameProcessor, list[FrameProcessor]]:
    """A tree equivalent to ``root`` with converters (made by ``make``) before every mismatched processor.

    Pipelines that contain a converter are rebuilt (same names and settings); untouched ones are
    returned as they are. Call it before handing the pipeline to a ``PipelineTask``;
    :func:`apipeline.graph.build.insert_converters` calls it with the registry's converters.
    """
    inserted: list[Any] = []
    procs, _, _ = _negotiate(root, input_format, None, "insert", inserted, make)
    if len(procs) == 1:
        return procs[0], inserted
    from apipeline.pipeline.pipeline import Pipeline

    return Pipeline(procs, name=f"{root.name}+converters"), inserted


def _negotiate(
    proc: FrameProcessor,
    fmt: AudioFormat | None,
    producer: FrameProcessor | None,
    mode: str,
    out: list[Any],
    make: ConverterFactory | None = None,
) -> tuple[list[FrameProcessor], AudioFormat | None, FrameProcessor | None]:
    from apipeline.pipeline.parallel import ParallelPipeline, SyncParallelPipeline
    from apipeline.pipeline.pipeline import Pipeline

    if isinstance(proc, ParallelPipeline):
        results = [_negotiate(b, fmt, producer, mode, out, make) for b in proc.branches]
        formats = {r[1] for r in results}
        new = proc
        if any(r[0] != [b] for r, b in zip(results, proc.branches)):
            branches = [r[0][0].processors() if len(r[0]) == 1 else r[0] for r in results]
            kwargs: dict[str, Any] = {"name": proc.name, "max_tracked": proc._max_tracked}
            if isinstance(proc, SyncParallelPipeline):
                kwargs["sync_timeout"] = proc.sync_timeout
            new = type(proc)(*branches, **kwargs)
        if len(formats) == 1:
            return [new], results[0][1], results[0][2]
        return [new], None, proc
    if isinstance(proc, Pipeline):
        children: list[FrameProcessor] = []
        changed = False
        for p in proc.processors():
            replaced, fmt, producer = _negotiate(p, fmt, producer, mode, out, make)
            changed |= replaced != [p]
            children.extend(replaced)
        return ([Pipeline(children, name=proc.name)] if changed else [proc]), fmt, producer
    before: list[FrameProcessor] = []
    accepted = proc.input_format
    if accepted is not None and fmt is not None and not fmt.is_compatible(accepted):
        message = link_message(producer.name if producer else "input", fmt, proc.name, accepted)
        if mode == "raise":
            raise LinkError(message)
        if mode == "collect":
            out.append(message)
        else:
            assert make is not None  # insert_converters requires it
            before = make_converters(
                fmt, accepted, prefix=f"{producer.name if producer else 'input'}->{proc.name}", make=make
            )
            out.extend(before)
            for conv in before:
                fmt, producer = output_of(conv, fmt), conv
    new_fmt = output_of(proc, fmt)
    return [*before, proc], new_fmt, (proc if proc.output_format is not None else producer)


# -- latency -----------------------------------------------------------------------------------------


def pipeline_latency(root: FrameProcessor) -> float:
    """Total algorithmic latency (seconds) along the slowest path through ``root``."""
    return sum(latency for _, latency in latency_path(root))


def latency_path(root: FrameProcessor) -> list[tuple[str, float]]:
    """The slowest path through ``root``: ``(processor name, latency s)`` for each processor adding some."""
    from apipeline.pipeline.parallel import ParallelPipeline
    from apipeline.pipeline.pipeline import Pipeline

    if isinstance(root, ParallelPipeline):
        paths = [latency_path(b) for b in root.branches]
        return max(paths, key=lambda p: sum(x for _, x in p), default=[])
    if isinstance(root, Pipeline):
        return [item for p in root.processors() for item in latency_path(p)]
    latency = float(root.latency)
    return [(root.name, latency)] if latency else []
