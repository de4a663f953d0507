"""A served talking head: audio in over the WebSocket contract, fragmented MP4 out that plays."""

import io
from pathlib import Path

import av
import soundfile as sf

from apipeline.client import FrameClient
from apipeline.frames import AudioRawFrame, ImageRawFrame
from apipeline.processors.video.stream import MP4_MIME
from apipeline.transports import GraphFactory

ROOT = Path(__file__).resolve().parents[2]
GRAPH = ROOT / "examples" / "graphs" / "talking_head_stream.yaml"


async def test_served_talking_head_streams_fragmented_mp4_that_decodes(make_server, monkeypatch):
    monkeypatch.chdir(ROOT)  # the graph names the portrait relative to the repository
    server = await make_server(GraphFactory(GRAPH))
    audio, sr = sf.read(ROOT / "examples" / "data" / "speech.wav", dtype="float32")
    audio = audio[: int(2.0 * sr)]
    chunks: list[ImageRawFrame] = []
    frames = [AudioRawFrame(audio[i : i + sr // 50], sr, 1) for i in range(0, audio.size, sr // 50)]
    async with FrameClient(server.url) as client:
        async for frame in client.stream(frames):
            if isinstance(frame, ImageRawFrame):
                chunks.append(frame)
    assert len(chunks) >= 2 and all(c.format == MP4_MIME for c in chunks)
    data = b"".join(bytes(c.image) for c in chunks)
    assert data[4:8] == b"ftyp"  # the first chunk starts with the initialization segment
    with av.open(io.BytesIO(data)) as c:
        pictures = sum(1 for _ in c.decode(video=0))
    with av.open(io.BytesIO(data)) as c:
        samples = sum(f.samples for f in c.decode(audio=0))
    assert abs(pictures - 50) <= 1  # 2 s at 25 fps
    assert abs(samples / sr - 2.0) < 0.1
