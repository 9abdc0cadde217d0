"""Fixtures: records, and a small OpenAI-compatible embeddings server over real HTTP on 127.0.0.1
(the testing kit's fake vendor server)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from apex_enricher_embeddings.hashing import embed_text
from apex_platform.models import Record

RecordFactory = Callable[..., Record]


def _record(text: str = "", *, title: str = "", id: str = "r1", **fields: Any) -> Record:
    return Record(
        source=fields.pop("source", "frontapp"),
        kind=fields.pop("kind", "frontapp.message"),
        id=id,
        version=fields.pop("version", 1),
        occurred_at=datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
        title=title,
        text=text,
        **fields,
    )


@pytest.fixture
def record() -> RecordFactory:
    """`record(text, title=, id=, **fields)`: a frontapp.message record."""
    return _record


@dataclass
class Reply:
    """One scripted answer: a status, headers and a body (bytes), or a pause before answering."""

    status: int = 200
    body: bytes | None = None  # None: the documented success body for the request
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    dim: int | None = None  # success body with vectors of this dimension instead
    reverse: bool = False  # list `data` in reverse index order


@dataclass
class FakeOpenAI:
    """State of the fake server: scripted replies (then successes) and the requests it got."""

    url: str = ""
    dim: int = 8
    script: list[Reply] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def then(self, *replies: Reply) -> FakeOpenAI:
        self.script.extend(replies)
        return self

    def inputs(self) -> list[list[str]]:
        return [r["json"]["input"] for r in self.requests]

    def vector(self, text: str, dim: int | None = None) -> list[float]:
        """What the server returns for `text`: the hash embedding, a stand-in for a model."""
        return list(embed_text(text, dim or self.dim) or [0.0] * (dim or self.dim))


def _app(state: FakeOpenAI) -> Any:
    """The fake's ASGI app: POST /v1/embeddings answers the next scripted reply (then successes)."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        try:
            payload = json.loads(raw)
        except ValueError:
            payload = None
        headers = httpx.Headers([(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]])
        with state.lock:
            state.requests.append({"path": scope["path"], "headers": headers, "json": payload})
            reply = state.script.pop(0) if state.script else Reply()
        if reply.delay:
            await asyncio.sleep(reply.delay)
        status, body = reply.status, reply.body
        if body is None and reply.status == 200:
            if scope["path"] != "/v1/embeddings":
                status, body = 404, json.dumps({"error": {"message": f"no route {scope['path']}"}}).encode()
            else:
                texts = payload["input"]
                data = [
                    {"object": "embedding", "index": i, "embedding": state.vector(t, reply.dim)}
                    for i, t in enumerate(texts)
                ]
                if reply.reverse:
                    data.reverse()
                body = json.dumps(
                    {
                        "object": "list",
                        "data": data,
                        "model": payload["model"],
                        "usage": {"prompt_tokens": len(texts), "total_tokens": len(texts)},
                    }
                ).encode()
        elif body is None:
            body = json.dumps({"error": {"message": f"scripted {reply.status}", "type": "test"}}).encode()
        out = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        out += [(name.lower().encode(), value.encode()) for name, value in reply.headers.items()]
        await send({"type": "http.response.start", "status": status, "headers": out})
        await send({"type": "http.response.body", "body": body})

    return app


@pytest.fixture
def reply() -> type[Reply]:
    """The `Reply` class, to script the fake server: `fake_openai.then(reply(429, headers=...))`."""
    return Reply


@pytest.fixture
def fake_openai(apex_fake_vendor: Any) -> FakeOpenAI:
    """A running OpenAI-compatible server (real HTTP on 127.0.0.1, a free port) and its state."""
    state = FakeOpenAI()
    state.url = apex_fake_vendor(_app(state), name="fake OpenAI").base_url
    return state
