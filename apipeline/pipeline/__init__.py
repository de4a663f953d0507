"""What arranges processors and drives them.

* :mod:`~apipeline.pipeline.pipeline`: :class:`Pipeline`, processors in series (itself a processor).
* :mod:`~apipeline.pipeline.parallel`: :class:`ParallelPipeline` and :class:`SyncParallelPipeline`.
* :mod:`~apipeline.pipeline.task`: :class:`PipelineTask` and :class:`PipelineParams`, one run.
* :mod:`~apipeline.pipeline.runner`: :class:`PipelineRunner`, signals to clean cancels.
* :mod:`~apipeline.pipeline.negotiation`: format checks and the latency query.
"""

from apipeline.pipeline.negotiation import check_links as check_links
from apipeline.pipeline.negotiation import pipeline_latency as pipeline_latency
from apipeline.pipeline.parallel import ParallelPipeline as ParallelPipeline
from apipeline.pipeline.parallel import SyncParallelPipeline as SyncParallelPipeline
from apipeline.pipeline.pipeline import Pipeline as Pipeline
from apipeline.pipeline.runner import PipelineRunner as PipelineRunner
from apipeline.pipeline.task import PipelineParams as PipelineParams
from apipeline.pipeline.task import PipelineTask as PipelineTask

__all__ = [
    "ParallelPipeline",
    "Pipeline",
    "PipelineParams",
    "PipelineRunner",
    "PipelineTask",
    "SyncParallelPipeline",
    "check_links",
    "pipeline_latency",
]
