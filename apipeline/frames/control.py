"""Control frames: in band, they keep their order with data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from apipeline.frames.base import ControlFrame


@dataclass(slots=True)
class StartFrame(ControlFrame):
    """First frame of every run; carries the run's settings to every processor."""

    allow_interruptions: bool = False
    enable_metrics: bool = False
    report_only_initial_ttfb: bool = False
    metrics_interval_s: float = 1.0
    audio_in_sample_rate: int | None = None
    audio_out_sample_rate: int | None = None


@dataclass(slots=True)
class EndFrame(ControlFrame):
    """Last frame of a run: processors flush, and the task ends once it reaches the sink."""


@dataclass(slots=True)
class SyncFrame(ControlFrame):
    """A synchronisation point: sync-parallel pipelines release what they hold when it passes."""


@dataclass(slots=True)
class SyncNotifyFrame(ControlFrame):
    """An in-band notification broadcast to every processor (and every branch)."""


@dataclass(slots=True)
class UpdateSettingsFrame(ControlFrame):
    """Change processor settings mid-stream, in order with the data around it.

    ``settings`` maps ``"param"`` (every processor that has it) or ``"node.param"`` (only the processor
    whose ``name`` is ``node``) to a new value.
    """

    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class UserStartedSpeakingFrame(ControlFrame):
    """Voice activity began. In band (unlike pipecat) so it stays aligned with the audio around it."""


@dataclass(slots=True)
class UserStoppedSpeakingFrame(ControlFrame):
    """Voice activity ended. In band so it stays aligned with the audio around it."""
