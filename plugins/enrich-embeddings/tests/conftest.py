"""Fixtures: records, and a small OpenAI-compatible embeddings server over real HTTP on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

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


def _handler(state: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                payload = json.loads(raw)
            except ValueError:
                payload = None
            with state.lock:
                state.requests.append({"path": self.path, "headers": dict(self.headers), "json": payload})
                reply = state.script.pop(0) if state.script else Reply()
            if reply.delay:
                time.sleep(reply.delay)
            body = reply.body
            if body is None and reply.status == 200:
                if self.path != "/v1/embeddings":
                    self._send(404, json.dumps({"error": {"message": f"no route {self.path}"}}).encode(), {})
                    return
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
            self._send(reply.status, body, reply.headers)

        def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(body)

    return Handler


@pytest.fixture
def reply() -> type[Reply]:
    """The `Reply` class, to script the fake server: `fake_openai.then(reply(429, headers=...))`."""
    return Reply


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    """A running OpenAI-compatible server (real HTTP on 127.0.0.1, a free port) and its state."""
    state = FakeOpenAI()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
