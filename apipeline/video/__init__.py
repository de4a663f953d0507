"""Video's pure core: images in, faces located, portraits animated, pictures encoded.

No event loop, no frames: plain functions and classes on numpy arrays, like :mod:`apipeline.audio`.

* :mod:`~apipeline.video.image`: read and check still images (size limits, gray/RGBA → RGB).
* :mod:`~apipeline.video.face`: face, eyes and mouth boxes (OpenCV's Haar cascades, or a landmark file).
* :mod:`~apipeline.video.mouth`: audio → mouth opening and width per video frame, streamed.
* :mod:`~apipeline.video.portrait`: a still portrait animated (jaw, lips, blinks) without weights.
* :mod:`~apipeline.video.renderer`: renderers the talking-head processor drives.
* :mod:`~apipeline.video.wav2lip`: the neural path (wav2lip + GFPGAN signatures on onnxruntime).
* :mod:`~apipeline.video.encode`: encoder settings, container checks, MP4/fragmented-MP4 muxing (PyAV).

Heavy engines (OpenCV, PyAV, onnxruntime) are imported where they are used; they come with the
``video`` extra.
"""
