"""The `openai` backend against a fake OpenAI-compatible server over real HTTP."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import SecretStr

from apex_enricher_embeddings import EmbeddingEnricher, EmbeddingError, EmbeddingsSettings
from apex_enricher_embeddings.openai_http import OpenAIEmbedder, retry_after_seconds
from apex_platform.errors import SettingsError
from apex_platform.models import Record

# The fake server lives in conftest.py (fixtures `fake_openai`, `reply`): with pytest's
# importlib mode, test folders are not importable.
FakeOpenAI = Any
Reply = Any
RecordFactory = Callable[..., Record]
KEY = "sk-test-0123456789"


class Sleeps:
    """Records the waits tenacity asks for instead of sleeping them."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def _backend(fake: FakeOpenAI, sleeps: Sleeps | None = None, **overrides: Any) -> OpenAIEmbedder:
    fields: dict[str, Any] = {
        "backend": "openai",
        "url": fake.url,
        "api_key": SecretStr(KEY),
        "model": "test-embed",
        "dim": fake.dim,
        "batch_size": 2,
        "max_retries": 3,
        "timeout": 5.0,
    }
    fields.update(overrides)
    return OpenAIEmbedder(EmbeddingsSettings(**fields), sleep=sleeps or Sleeps())


async def test_batches_and_documented_shape(fake_openai: FakeOpenAI, reply: Any) -> None:
    fake_openai.then(reply(reverse=True))  # `data` in any order: `index` says which input
    texts = ["alpha load", "bravo truck", "charlie invoice", "delta pallet", "echo dock"]
    vectors = await _backend(fake_openai).embed(texts)
    assert vectors == [tuple(fake_openai.vector(t)) for t in texts]
    assert fake_openai.inputs() == [texts[0:2], texts[2:4], texts[4:5]]
    first = fake_openai.requests[0]
    assert first["path"] == "/v1/embeddings"
    assert first["headers"]["Authorization"] == f"Bearer {KEY}"
    assert first["json"] == {"model": "test-embed", "input": texts[0:2], "encoding_format": "float"}


async def test_request_dimensions_and_v1_url(fake_openai: FakeOpenAI) -> None:
    backend = _backend(fake_openai, url=fake_openai.url + "/v1/", request_dimensions=True)
    await backend.embed(["x"])
    assert fake_openai.requests[0]["path"] == "/v1/embeddings"
    assert fake_openai.requests[0]["json"]["dimensions"] == fake_openai.dim


async def test_429_honours_retry_after_then_succeeds(fake_openai: FakeOpenAI, reply: Any) -> None:
    fake_openai.then(reply(429, headers={"Retry-After": "7"}), reply(429, headers={"Retry-After": "0.5"}))
    sleeps = Sleeps()
    vectors = await _backend(fake_openai, sleeps).embed(["late load"])
    assert vectors == [tuple(fake_openai.vector("late load"))]
    assert sleeps.waits == [7.0, 0.5]
    assert len(fake_openai.requests) == 3


async def test_retry_after_is_capped(fake_openai: FakeOpenAI, reply: Any) -> None:
    fake_openai.then(reply(429, headers={"Retry-After": "3600"}))
    sleeps = Sleeps()
    await _backend(fake_openai, sleeps, max_retry_wait=2.0).embed(["x"])
    assert sleeps.waits == [2.0]


async def test_500_then_success_with_jittered_backoff(fake_openai: FakeOpenAI, reply: Any) -> None:
    fake_openai.then(reply(500), reply(503), reply(502))
    sleeps = Sleeps()
    vectors = await _backend(fake_openai, sleeps, max_retry_wait=4.0).embed(["x"])
    assert vectors == [tuple(fake_openai.vector("x"))]
    assert len(sleeps.waits) == 3
    assert all(0 <= w <= 4.0 for w in sleeps.waits)


async def test_server_errors_exhaust_retries(fake_openai: FakeOpenAI, reply: Any) -> None:
    fake_openai.then(*[reply(500)] * 10)
    with pytest.raises(EmbeddingError, match=r"still failing after 4 tries: HTTP 500: scripted 500") as info:
        await _backend(fake_openai).embed(["x"])
    assert info.value.retryable is True
    assert len(fake_openai.requests) == 4


async def test_timeout_is_retried(fake_openai: FakeOpenAI, reply: Any) -> None:
    fake_openai.then(reply(delay=1.0))
    sleeps = Sleeps()
    vectors = await _backend(fake_openai, sleeps, timeout=0.2).embed(["x"])
    assert vectors == [tuple(fake_openai.vector("x"))]
    assert len(sleeps.waits) == 1


async def test_unreachable_endpoint(fake_openai: FakeOpenAI) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(EmbeddingError, match="cannot reach it") as info:
        await _backend(fake_openai, max_retries=1, url=f"http://127.0.0.1:{port}").embed(["x"])
    assert info.value.retryable is True


@pytest.mark.parametrize(
    ("status", "hint"), [(401, "APEX_EMBEDDINGS_API_KEY"), (400, ""), (404, "APEX_EMBEDDINGS_MODEL")]
)
async def test_client_errors_fail_at_once(fake_openai: FakeOpenAI, reply: Any, status: int, hint: str) -> None:
    fake_openai.then(reply(status))
    with pytest.raises(EmbeddingError, match=f"HTTP {status}: scripted {status}") as info:
        await _backend(fake_openai).embed(["x"])
    assert info.value.retryable is False
    assert hint in str(info.value)
    assert KEY not in str(info.value)
    assert len(fake_openai.requests) == 1


async def test_wrong_dimension_is_a_settings_error(fake_openai: FakeOpenAI, reply: Any) -> None:
    fake_openai.then(reply(dim=fake_openai.dim + 1))
    with pytest.raises(SettingsError, match=r"returns 9 dimensions, but APEX_EMBEDDINGS_DIM is 8"):
        await _backend(fake_openai).embed(["x"])


def _ok(data: Any) -> bytes:
    return json.dumps({"object": "list", "data": data, "model": "m", "usage": {}}).encode()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html>gateway</html>", "not JSON"),
        (b'{"object": "list"}', "no `data` list"),
        (b"[1, 2]", "no `data` list"),
        (_ok([]), "0 embeddings for 1 inputs"),
        (_ok([{"index": 0}]), "has no `embedding` list"),
        (_ok([{"index": 3, "embedding": [0.0] * 8}]), "index is 3"),
        (_ok([{"index": 0, "embedding": ["x"] * 8}]), "other than finite numbers"),
        (_ok([{"index": 0, "embedding": [True] * 8}]), "other than finite numbers"),
    ],
)
async def test_malformed_bodies(fake_openai: FakeOpenAI, reply: Any, body: bytes, message: str) -> None:
    fake_openai.then(reply(body=body))
    with pytest.raises(EmbeddingError, match=message) as info:
        await _backend(fake_openai).embed(["x"])
    assert info.value.retryable is False


async def test_duplicate_index_is_malformed(fake_openai: FakeOpenAI, reply: Any) -> None:
    fake_openai.then(reply(body=_ok([{"index": 0, "embedding": [0.0] * 8}, {"index": 0, "embedding": [0.0] * 8}])))
    with pytest.raises(EmbeddingError, match="index 0 appears twice"):
        await _backend(fake_openai).embed(["x", "y"])


async def test_missing_url_names_the_setting() -> None:
    backend = OpenAIEmbedder(EmbeddingsSettings(backend="openai", url=None))
    with pytest.raises(SettingsError, match="APEX_EMBEDDINGS_URL"):
        await backend.embed(["x"])


def test_retry_after_parsing() -> None:
    now = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("12", now) == 12.0
    assert retry_after_seconds("Wed, 01 May 2024 12:00:30 GMT", now) == 30.0
    assert retry_after_seconds("Wed, 01 May 2024 11:00:00 GMT", now) == 0.0
    assert retry_after_seconds("soon", now) is None
    assert retry_after_seconds("nan", now) is None
    assert retry_after_seconds(None, now) is None


async def test_enricher_over_openai(fake_openai: FakeOpenAI, record: RecordFactory) -> None:
    settings = EmbeddingsSettings(
        backend="openai", url=fake_openai.url, dim=fake_openai.dim, batch_size=2, attribute_fields=""
    )
    enricher = EmbeddingEnricher(settings)
    batch = [
        record("same words", id="a"),
        record("other words", id="b"),
        record("same words", id="c"),
        record("gone", id="d", deleted=True),
        record("", id="e"),
    ]
    out = await enricher.enrich(batch)
    assert [r.id for r in out] == ["a", "b", "c", "d", "e"]
    assert out[0].embedding == tuple(fake_openai.vector("same words"))
    assert out[2].embedding == out[0].embedding
    assert out[3].embedding is None
    assert out[4].embedding is None
    assert fake_openai.inputs() == [["same words", "other words"]]  # identical inputs sent once
    assert await enricher.enrich(out) == out
    assert len(fake_openai.requests) == 1  # nothing left to embed: no call
