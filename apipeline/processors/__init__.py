"""What transforms frames.

* :mod:`~apipeline.processors.frame_processor`: :class:`FrameProcessor` (synchronous: a push is an
  ``await``) and :class:`FrameDirection`.
* :mod:`~apipeline.processors.async_frame_processor`: :class:`AsyncFrameProcessor` (own bounded queue
  and worker task).
* :mod:`~apipeline.processors.frame_queue`: the bounded queue and its overflow policies.
* :mod:`~apipeline.processors.filters`, :mod:`~.aggregators`, :mod:`~.logger`, :mod:`~.output`:
  general-purpose processors.
* :mod:`~apipeline.processors.io`: :class:`InputProcessor` / :class:`OutputProcessor` bases.
* ``apipeline.processors.audio`` and ``apipeline.processors.models``: audio and model processors
  (imported on demand: they pull numerical dependencies).
"""

from apipeline.processors.aggregators import GatedAggregator as GatedAggregator
from apipeline.processors.aggregators import HoldFramesAggregator as HoldFramesAggregator
from apipeline.processors.aggregators import SentenceAggregator as SentenceAggregator
from apipeline.processors.async_frame_processor import AsyncFrameProcessor as AsyncFrameProcessor
from apipeline.processors.filters import FrameFilter as FrameFilter
from apipeline.processors.filters import FunctionFilter as FunctionFilter
from apipeline.processors.frame_processor import FrameDirection as FrameDirection
from apipeline.processors.frame_processor import FrameProcessor as FrameProcessor
from apipeline.processors.frame_queue import FrameQueue as FrameQueue
from apipeline.processors.frame_queue import QueueStatistics as QueueStatistics
from apipeline.processors.io import InputProcessor as InputProcessor
from apipeline.processors.io import OutputProcessor as OutputProcessor
from apipeline.processors.logger import FrameLogger as FrameLogger
from apipeline.processors.output import OutputFrameProcessor as OutputFrameProcessor

__all__ = [
    "AsyncFrameProcessor",
    "FrameDirection",
    "FrameFilter",
    "FrameLogger",
    "FrameProcessor",
    "FrameQueue",
    "FunctionFilter",
    "GatedAggregator",
    "HoldFramesAggregator",
    "InputProcessor",
    "OutputFrameProcessor",
    "OutputProcessor",
    "QueueStatistics",
    "SentenceAggregator",
]
