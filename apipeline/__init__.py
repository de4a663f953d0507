"""apipeline: an asyncio frame-pipeline framework for real-time voice AI.

* :mod:`apipeline.frames`: what flows (system, control and data frames).
* :mod:`apipeline.processors`: what transforms (sync and async processors, filters, aggregators, I/O).
* :mod:`apipeline.pipeline`: what arranges and drives (serial and parallel pipelines, task, runner).
* :mod:`apipeline.serializers`: frames on the wire (protobuf and JSON).
* :mod:`apipeline.audio`: pure audio DSP cores (resampling, SOLA, WORLD, F0, VAD).
* :mod:`apipeline.models`: model services (lifecycle protocol, registry, ONNX runners).
* :mod:`apipeline.testing`: helpers to test processors.
* :mod:`apipeline.errors`: every error apipeline raises, in one tree.
"""

__version__ = "0.3.0"
