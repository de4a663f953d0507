"""A small OpenAI-compatible HTTP/1.1 server for the client tests (asyncio streams, no framework).

It speaks the documented wire format: ``POST /v1/chat/completions`` with ``"stream": true`` answers
with server-sent events in a chunked body (``data: {chunk}`` ... ``data: [DONE]``),
``POST /v1/audio/transcriptions`` (multipart) with ``{"text": ...}``, ``POST /v1/audio/speech`` with
raw PCM16 in a chunked body. ``mode`` makes it misbehave: ``"429"``, ``"500"``, ``"drop"`` (close the
connection mid-body), ``"stall"`` (send the headers, then nothing), ``"garbage"`` (an event that is not
JSON), ``"nodone"`` (end the body without ``[DONE]``).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeOpenAIServer:
    mode: str = "ok"
    tokens: list[str] = field(default_factory=lambda: ["Two", " plus", " two", " is", " four", "."])
    transcript: str = "what is two plus two"
    pcm: bytes = b"\x00\x10" * 2400
    requests: list[Request] = field(default_factory=list)
    port: int = 0
    _server: Any = None
    _stalled: list[asyncio.Event] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def __aenter__(self) -> FakeOpenAIServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for event in self._stalled:
            event.set()
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = (await reader.readline()).decode()
            method, path, _ = line.split(" ", 2)
            headers: dict[str, str] = {}
            while True:
                h = (await reader.readline()).decode().strip()
                if not h:
                    break
                k, _, v = h.partition(":")
                headers[k.strip().lower()] = v.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.requests.append(Request(method, path, headers, body))
            await self._respond(path, body, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _respond(self, path: str, body: bytes, writer: asyncio.StreamWriter) -> None:
        if self.mode in ("429", "500"):
            payload = json.dumps({"error": {"message": f"mode {self.mode}"}}).encode()
            status = "429 Too Many Requests" if self.mode == "429" else "500 Internal Server Error"
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
                f"Connection: close\r\n\r\n".encode()
                + payload
            )
            await writer.drain()
            return
        if path.endswith("/audio/transcriptions"):
            payload = json.dumps({"text": self.transcript}).encode()
            writer.write(
                f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
                f"Connection: close\r\n\r\n".encode()
                + payload
            )
            await writer.drain()
            return
        ctype = "text/event-stream" if path.endswith("/chat/completions") else "application/octet-stream"
        writer.write(
            f"HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\nTransfer-Encoding: chunked\r\n"
            f"Connection: close\r\n\r\n".encode()
        )
        await writer.drain()
        if self.mode == "stall":
            event = asyncio.Event()
            self._stalled.append(event)
            await event.wait()
            return
        pieces = self._pieces(path)
        for i, piece in enumerate(pieces):
            if self.mode == "drop" and i == 2:
                writer.transport.abort()  # no final chunk: the body is cut off
                return
            writer.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    def _pieces(self, path: str) -> list[bytes]:
        if path.endswith("/audio/speech"):
            n = 1001  # an odd size: samples split across chunks must be put back together
            return [self.pcm[i : i + n] for i in range(0, len(self.pcm), n)]
        events = [
            {
                "id": "c1",
                "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": {"content": t}}],
            }
            for t in self.tokens
        ]
        out = [b": keep-alive\n\n"]
        out += [f"data: {json.dumps(e)}\n\n".encode() for e in events]
        if self.mode == "garbage":
            out.insert(2, b"data: {not json\n\n")
        if self.mode != "nodone":
            out.append(b"data: [DONE]\n\n")
        return out
