"""Backend `openai`: any OpenAI-compatible `POST {url}/v1/embeddings` endpoint.

Request: `{"model": ..., "input": [...], "encoding_format": "float"}` (plus `dimensions`
when asked). Response: `{"object": "list", "data": [{"object": "embedding", "index": i,
"embedding": [...]}, ...], "model": ..., "usage": {...}}`. 429, 5xx, timeouts and lost
connections are retried with jittered exponential backoff, honouring Retry-After; other
answers fail at once with the status and the API's own message.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt
from tenacity.wait import wait_random_exponential

from apex_enricher_embeddings.errors import EmbeddingError
from apex_enricher_embeddings.settings import EmbeddingsSettings
from apex_platform.errors import SettingsError

Sleep = Callable[[float], Awaitable[None]]


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _api_message(response: httpx.Response) -> str:
    """The API's own error message, short; never the request (it may hold the key)."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200].strip()
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])[:300]
        if isinstance(error, str):
            return error[:300]
    return str(body)[:200]


class OpenAIEmbedder:
    """Embeds texts through an OpenAI-compatible HTTP API, `batch_size` inputs per call."""

    name = "openai"

    def __init__(
        self,
        settings: EmbeddingsSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        self.settings = settings
        self.dimension = settings.dim
        self._transport = transport
        self._sleep = sleep

    @property
    def endpoint(self) -> str:
        url = self.settings.url
        if url is None:
            raise SettingsError(
                "the openai embeddings backend has no endpoint: set APEX_EMBEDDINGS_URL "
                "(e.g. https://api.openai.com or http://127.0.0.1:8000 for a local server) "
                "or choose APEX_EMBEDDINGS_BACKEND=hash"
            )
        return url + "/embeddings" if url.endswith("/v1") else url + "/v1/embeddings"

    async def embed(self, texts: Sequence[str]) -> list[tuple[float, ...] | None]:
        endpoint = self.endpoint
        headers = {"Accept": "application/json"}
        if self.settings.api_key is not None:
            headers["Authorization"] = f"Bearer {self.settings.api_key.get_secret_value()}"
        out: list[tuple[float, ...] | None] = []
        async with httpx.AsyncClient(
            timeout=self.settings.timeout, headers=headers, transport=self._transport
        ) as client:
            size = self.settings.batch_size
            for start in range(0, len(texts), size):
                out.extend(await self._batch(client, endpoint, list(texts[start : start + size])))
        return out

    async def _batch(self, client: httpx.AsyncClient, endpoint: str, texts: list[str]) -> list[tuple[float, ...]]:
        payload: dict[str, Any] = {"model": self.settings.model, "input": texts, "encoding_format": "float"}
        if self.settings.request_dimensions:
            payload["dimensions"] = self.dimension
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.settings.max_retries + 1),
            wait=self._wait,
            retry=retry_if_exception_type(_Retryable),
            reraise=True,
            sleep=self._sleep or asyncio.sleep,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    body = await self._post(client, endpoint, payload)
        except _Retryable as exc:
            raise EmbeddingError(
                f"embeddings endpoint {endpoint} still failing after {self.settings.max_retries + 1} tries: {exc}",
                retryable=True,
                retry_after=exc.retry_after,
            ) from None
        return self._vectors(body, len(texts), endpoint)

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        cap = self.settings.max_retry_wait
        if isinstance(exc, _Retryable) and exc.retry_after is not None:
            return min(exc.retry_after, cap)
        return float(wait_random_exponential(multiplier=0.5, max=cap)(state))

    async def _post(self, client: httpx.AsyncClient, endpoint: str, payload: dict[str, Any]) -> Any:
        try:
            response = await client.post(endpoint, json=payload)
        except httpx.TimeoutException as exc:
            raise _Retryable(f"timed out ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise _Retryable(f"cannot reach it ({type(exc).__name__}: {exc})") from exc
        status = response.status_code
        if status == 429 or status >= 500:
            raise _Retryable(
                f"HTTP {status}: {_api_message(response)}", retry_after_seconds(response.headers.get("Retry-After"))
            )
        if status != 200:
            hint = " (check APEX_EMBEDDINGS_API_KEY)" if status in (401, 403) else ""
            hint = hint or (" (check APEX_EMBEDDINGS_MODEL)" if status == 404 else "")
            raise EmbeddingError(
                f"embeddings endpoint {endpoint} answered HTTP {status}: {_api_message(response)}{hint}",
                retryable=False,
            )
        try:
            return response.json()
        except ValueError:
            raise EmbeddingError(
                f"embeddings endpoint {endpoint} answered HTTP 200 with a body that is not JSON: "
                f"{response.text[:120]!r}",
                retryable=False,
            ) from None

    def _vectors(self, body: Any, count: int, endpoint: str) -> list[tuple[float, ...]]:
        def malformed(why: str) -> EmbeddingError:
            return EmbeddingError(f"embeddings endpoint {endpoint} answered a malformed body: {why}", retryable=False)

        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list):
            raise malformed("no `data` list")
        if len(data) != count:
            raise malformed(f"{len(data)} embeddings for {count} inputs")
        vectors: list[tuple[float, ...] | None] = [None] * count
        for position, item in enumerate(data):
            if not isinstance(item, dict) or not isinstance(item.get("embedding"), list):
                raise malformed(f"data[{position}] has no `embedding` list")
            index = item.get("index", position)
            if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < count:
                raise malformed(f"data[{position}].index is {index!r}")
            if vectors[index] is not None:
                raise malformed(f"index {index} appears twice")
            values = item["embedding"]
            if len(values) != self.dimension:
                raise SettingsError(
                    f"embedding model {self.settings.model!r} at {endpoint} returns {len(values)} dimensions, "
                    f"but APEX_EMBEDDINGS_DIM is {self.dimension}: set APEX_EMBEDDINGS_DIM (and the sinks' "
                    f"APEX_POSTGRES_EMBEDDING_DIM / APEX_QDRANT_EMBEDDING_DIM) to {len(values)}, choose another "
                    "APEX_EMBEDDINGS_MODEL, or set APEX_EMBEDDINGS_REQUEST_DIMENSIONS=true if the model supports it"
                )
            if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in values):
                raise malformed(f"data[{position}].embedding holds something other than finite numbers")
            vectors[index] = tuple(float(v) for v in values)
        return [v for v in vectors if v is not None]
