"""Video processors: pictures made from audio, paced on their presentation time, written to files.

* :class:`TalkingHeadProcessor` (``talking_head``): audio in, the same audio out at once, plus one
  :class:`~apipeline.frames.video.VideoFrame` per frame period rendered by a talking-head renderer.
* :class:`VideoPacer` (``pacer``): releases pictures on their ``pts`` plus a play-out delay, drops and
  counts pictures that missed their slot, never holds or drops audio; measures A/V offset.
* :class:`MediaFileSink` (``sink``): muxes pictures and audio into a file with PyAV.
* :class:`Mp4StreamEncoder` (``stream``): fragmented MP4 chunks as ``ImageRawFrame`` s, for transports.
"""

from apipeline.processors.video.pacer import Clock as Clock
from apipeline.processors.video.pacer import MonotonicClock as MonotonicClock
from apipeline.processors.video.pacer import VideoPacer as VideoPacer
from apipeline.processors.video.sink import MediaFileSink as MediaFileSink
from apipeline.processors.video.stream import Mp4StreamEncoder as Mp4StreamEncoder
from apipeline.processors.video.talking_head import TalkingHeadProcessor as TalkingHeadProcessor

__all__ = [
    "Clock",
    "MediaFileSink",
    "MonotonicClock",
    "Mp4StreamEncoder",
    "TalkingHeadProcessor",
    "VideoPacer",
]
