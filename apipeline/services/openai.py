"""Clients of OpenAI-compatible servers (httpx): transcription, streaming chat completions, speech.

They work with OpenAI itself and with the servers that copy its wire format: llama.cpp's server,
Ollama, vLLM (chat), faster-whisper-server, whisper.cpp's server, vLLM (transcription), Kokoro-FastAPI
and others (speech).

* :class:`OpenAISTTService`: ``POST {base_url}/audio/transcriptions`` (multipart WAV) per utterance.
* :class:`OpenAILLMService`: ``POST {base_url}/chat/completions`` with ``"stream": true``; the server
  sends server-sent events, ``data: {json chunk}`` lines ending with ``data: [DONE]``; each chunk's
  ``choices[0].delta.content`` is streamed on as it comes.
* :class:`OpenAITTSService`: ``POST {base_url}/audio/speech`` with ``"response_format": "pcm"`` (raw
  16-bit mono at 24 kHz), streamed as the body arrives.

``base_url`` is the API base, e.g. ``http://localhost:8080/v1``; a URL with no path gets ``/v1``.
Failures become :class:`~apipeline.services.ai_service.ServiceError`, reported as ``ErrorFrame``: an
unreachable server, a refused key (401/403) or a wrong path or model (404) are fatal (the run ends
within ``connect_timeout_s``); a busy server (429), a server error (5xx), a timeout or a connection
dropped mid-stream end that one request with an error and the conversation goes on.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from numpy.typing import NDArray

from apipeline.errors import ParameterError
from apipeline.services.ai_service import ServiceError
from apipeline.services.llm import LLMService
from apipeline.services.stt import STTService
from apipeline.services.tts import TTSService, WordMark

FATAL_STATUS = (400, 401, 403, 404)


def check_base_url(url: str, what: str) -> str:
    """``url`` as an API base (``/v1`` added to a bare host); a clear error if it is not a URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ServiceError(f"{what}: {url!r} is not an http(s) URL (expected e.g. http://localhost:8080/v1)")
    try:
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as exc:
        raise ServiceError(f"{what}: {url!r} has a bad port: {exc}") from None
    base = url.rstrip("/")
    if parts.path in ("", "/"):
        base += "/v1"
    return base


class _HTTPClient:
    """One ``httpx.AsyncClient`` per service, with the error mapping shared by the three clients."""

    def __init__(
        self, base_url: str, api_key: str | None, timeout_s: float, connect_timeout_s: float, what: str
    ) -> None:
        if timeout_s <= 0 or connect_timeout_s <= 0:
            raise ParameterError("timeout_s and connect_timeout_s must be positive")
        self.base_url = check_base_url(base_url, what)
        self.what = what
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self._client: Any = None

    def client(self) -> Any:
        if self._client is None:
            import httpx

            self._client = httpx.AsyncClient(
                base_url=self.base_url,
                headers=self.headers,
                timeout=httpx.Timeout(self.timeout_s, connect=self.connect_timeout_s),
            )
        return self._client

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    def error(self, exc: BaseException) -> ServiceError:
        """Map an httpx exception to a ServiceError with a message naming the server."""
        import httpx

        where = f"{self.what} at {self.base_url}"
        if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
            return ServiceError(f"{where} is unreachable: {type(exc).__name__}: {exc}", fatal=True)
        if isinstance(exc, httpx.TimeoutException):
            return ServiceError(f"{where} timed out after {self.timeout_s} s ({type(exc).__name__})")
        if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError)):
            return ServiceError(f"{where} dropped the connection mid-response: {exc}")
        return ServiceError(f"{where} failed: {type(exc).__name__}: {exc}")

    async def check_status(self, response: Any) -> None:
        if response.status_code < 400:
            return
        body = (await response.aread())[:300].decode("utf-8", "replace")
        status = response.status_code
        hint = {429: "busy (rate limited)", 401: "refused the API key", 403: "refused the API key"}.get(
            status, "server error" if status >= 500 else "refused the request"
        )
        raise ServiceError(
            f"{self.what} at {self.base_url}: HTTP {status} {hint}: {body}",
            fatal=status in FATAL_STATUS,
            status=status,
        )


async def _call(http: _HTTPClient, coro: Any) -> Any:
    import httpx

    try:
        return await coro
    except httpx.HTTPError as exc:
        raise http.error(exc) from exc


class OpenAILLMService(LLMService):
    """Streaming chat completions from an OpenAI-compatible server.

    Args:
        base_url: API base (``http://localhost:8080/v1``).
        model: model name sent to the server.
        api_key: bearer token (default: ``$OPENAI_API_KEY``, or none).
        max_tokens / temperature: sent as is.
        timeout_s: longest wait for any read (first token included); connect_timeout_s: to connect.
    """

    def __init__(
        self,
        *,
        base_url: str,
        model: str = "gpt-4o-mini",
        api_key: str | None = None,
        max_tokens: int = 80,
        temperature: float = 0.7,
        timeout_s: float = 30.0,
        connect_timeout_s: float = 5.0,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self.http = _HTTPClient(base_url, api_key, timeout_s, connect_timeout_s, "LLM server")
        self.model, self.max_tokens, self.temperature = model, max_tokens, temperature

    async def run_llm(self, messages: list[dict[str, Any]]) -> AsyncIterator[str]:
        import httpx

        body = {
            "model": self.model,
            "messages": messages,
            "stream": True,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
        }
        http = self.http
        try:
            async with http.client().stream("POST", "/chat/completions", json=body) as response:
                await http.check_status(response)
                async for line in response.aiter_lines():
                    text = _sse_content(line, http)
                    if text is None:
                        return
                    if text:
                        yield text
            raise ServiceError(f"{http.what} at {http.base_url}: the stream ended without 'data: [DONE]'")
        except httpx.HTTPError as exc:
            raise http.error(exc) from exc

    async def cleanup(self) -> None:
        await super().cleanup()
        await self.http.aclose()


def _sse_content(line: str, http: _HTTPClient) -> str | None:
    """The text of one server-sent-event line ('' for none), or None at ``data: [DONE]``."""
    line = line.strip()
    if not line.startswith("data:"):
        return ""  # comments (": keep-alive"), "event:" lines, blank separators
    data = line[5:].strip()
    if data == "[DONE]":
        return None
    try:
        chunk = json.loads(data)
    except json.JSONDecodeError as exc:
        raise ServiceError(
            f"{http.what} at {http.base_url} sent an event that is not JSON: {data[:80]!r}"
        ) from exc
    if isinstance(chunk, dict) and "error" in chunk:
        raise ServiceError(f"{http.what} at {http.base_url} reported an error mid-stream: {chunk['error']}")
    try:
        choices = chunk.get("choices") or []
        if not choices:
            return ""
        return str((choices[0].get("delta") or {}).get("content") or "")
    except AttributeError as exc:
        raise ServiceError(f"{http.what} at {http.base_url} sent a malformed chunk: {data[:80]!r}") from exc


class OpenAISTTService(STTService):
    """Transcribe each user utterance with an OpenAI-compatible ``/audio/transcriptions`` endpoint.

    Args:
        base_url / api_key / timeout_s / connect_timeout_s: see :class:`OpenAILLMService`.
        model: e.g. ``"whisper-1"`` or the server's model name.
        language: ISO-639-1 hint, or None.
        **kwargs: see :class:`~apipeline.services.stt.STTService`.
    """

    segmented = True

    def __init__(
        self,
        *,
        base_url: str,
        model: str = "whisper-1",
        api_key: str | None = None,
        language: str | None = None,
        timeout_s: float = 30.0,
        connect_timeout_s: float = 5.0,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("interim_results", False)
        super().__init__(**kwargs)
        self.http = _HTTPClient(base_url, api_key, timeout_s, connect_timeout_s, "transcription server")
        self.model, self.language = model, language

    async def transcribe(self, audio: NDArray[np.int16]) -> str:
        import soundfile as sf

        wav = io.BytesIO()
        sf.write(wav, audio, self.sample_rate, format="WAV", subtype="PCM_16")
        data: dict[str, str] = {"model": self.model, "response_format": "json"}
        if self.language:
            data["language"] = self.language
        http = self.http
        response = await _call(
            http,
            http.client().post(
                "/audio/transcriptions", data=data, files={"file": ("audio.wav", wav.getvalue(), "audio/wav")}
            ),
        )
        await http.check_status(response)
        try:
            return str(response.json()["text"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ServiceError(f"{http.what} at {http.base_url}: no 'text' in the answer: {exc}") from exc

    async def cleanup(self) -> None:
        await super().cleanup()
        await self.http.aclose()


class OpenAITTSService(TTSService):
    """Speech from an OpenAI-compatible ``/audio/speech`` endpoint, streamed as raw PCM.

    Args:
        base_url / api_key / timeout_s / connect_timeout_s: see :class:`OpenAILLMService`.
        model: e.g. ``"tts-1"``; voice: e.g. ``"alloy"``.
        pcm_sample_rate: rate of the server's ``pcm`` format (OpenAI: 24000).
        **kwargs: see :class:`~apipeline.services.tts.TTSService`.
    """

    def __init__(
        self,
        *,
        base_url: str,
        model: str = "tts-1",
        voice: str = "alloy",
        api_key: str | None = None,
        pcm_sample_rate: int = 24000,
        timeout_s: float = 30.0,
        connect_timeout_s: float = 5.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.http = _HTTPClient(base_url, api_key, timeout_s, connect_timeout_s, "speech server")
        self.model, self.voice = model, voice
        self.engine_sample_rate = pcm_sample_rate

    async def run_tts(self, text: str) -> AsyncIterator[NDArray | WordMark]:
        import httpx

        body = {"model": self.model, "input": text, "voice": self.voice, "response_format": "pcm"}
        http = self.http
        try:
            async with http.client().stream("POST", "/audio/speech", json=body) as response:
                await http.check_status(response)
                odd = b""
                async for chunk in response.aiter_bytes():
                    data = odd + chunk
                    cut = len(data) - len(data) % 2
                    odd = data[cut:]
                    if cut:
                        yield np.frombuffer(data[:cut], dtype="<i2").astype(np.int16)
        except httpx.HTTPError as exc:
            raise http.error(exc) from exc

    async def cleanup(self) -> None:
        await super().cleanup()
        await self.http.aclose()
