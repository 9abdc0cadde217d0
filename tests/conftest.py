"""Fixtures of the cross-package tests: the real API and worker as child processes,
wired to the session's real Temporal and PostgreSQL servers (from the testing kit)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from temporalio.client import Client

sys.path.insert(0, str(Path(__file__).parent))

from support.procs import ApexProcess, wait_http

from apex_platform.settings import TemporalSettings
from apex_platform.stack.ports import free_port
from apex_platform.temporal.client import connect
from apex_platform.testing.inbox import wait_delivered

FRONT_SECRET = "front-test-signing-secret"


def front_headers(body: bytes, secret: str = FRONT_SECRET, ts_ms: int | None = None) -> dict[str, str]:
    """Sign as Front does: base64(HMAC-SHA256(secret, "<timestamp>:" + body)), written here
    independently of the connector so the test checks the vendor contract, not itself."""
    ts = str(ts_ms if ts_ms is not None else int(time.time() * 1000))
    mac = hmac.new(secret.encode(), ts.encode() + b":" + body, hashlib.sha256).digest()
    return {
        "X-Front-Signature": base64.b64encode(mac).decode(),
        "X-Front-Request-Timestamp": ts,
        "Content-Type": "application/json",
    }


_counter = iter(range(1, 10**9))


def front_event(
    kind: str = "inbound_received", *, event_id: str | None = None, text: str = "Where is PRO 4417?"
) -> dict[str, Any]:
    n = next(_counter)
    eid = event_id or f"evt_test{n}_{int(time.time() * 1e6)}"
    return {
        "type": kind,
        "authorization": {"id": "cmp_123"},
        "payload": {
            "_links": {"self": f"https://api2.frontapp.com/events/{eid}"},
            "id": eid,
            "type": kind,
            "emitted_at": time.time(),
            "conversation": {
                "id": f"cnv_{n}",
                "subject": "Load 4417 status",
                "status": "unassigned",
                "tags": [],
                "assignee": None,
            },
            "source": {"_meta": {"type": "inboxes"}, "data": [{"id": "inb_1", "name": "Dispatch"}]},
            "target": {
                "_meta": {"type": "message"},
                "data": {
                    "id": f"msg_{n}",
                    "type": "email",
                    "is_inbound": True,
                    "created_at": time.time(),
                    "subject": "Load 4417 status",
                    "body": f"<p>{text}</p>",
                    "text": text,
                    "author": None,
                    "recipients": [
                        {"handle": "shipper@acme.example", "role": "from", "name": "Ann Shipper"},
                        {"handle": "dispatch@carrier.example", "role": "to"},
                    ],
                },
            },
        },
    }


ADMIN_TOKEN = "deployment-admin-token-" + uuid.uuid4().hex


def _write_env(base: Path, temporal: str, dsn: str, api_port: int, **extra: str) -> dict[str, str]:
    # task queues and inbox schema of this deployment's own: tests never take each other's work
    prefix = extra.get("APEX_TEMPORAL_TASK_QUEUE_PREFIX") or f"d{uuid.uuid4().hex[:10]}"
    env = {
        "APEX_HOME": str(base / "home"),
        "APEX_TEMPORAL_ADDRESS": temporal,
        "APEX_TEMPORAL_TASK_QUEUE_PREFIX": prefix,
        "APEX_POSTGRES_DSN": dsn,
        "APEX_INBOX_SCHEMA": f"inbox_{prefix.lower()}"[:63],
        "APEX_INBOX_IDLE_WAIT_SECONDS": "5",
        "APEX_ADMIN_TOKEN": ADMIN_TOKEN,
        "APEX_API_PORT": str(api_port),
        "APEX_PLUGINS": "frontapp,postgres",
        "APEX_FRONTAPP_SIGNING_SECRET": FRONT_SECRET,
        "APEX_TEMPORAL_ACTIVITY_HEARTBEAT_SECONDS": "3",
        "APEX_TEMPORAL_GRACEFUL_SHUTDOWN_SECONDS": "20",
        "APEX_SAGA_RETRY_INITIAL_SECONDS": "0.05",
        "APEX_INLINE_PAYLOAD_BYTES": "65536",
        "APEX_LOG_LEVEL": "INFO",
        "PYTHONPATH": str(Path(__file__).parent),
    }
    env.update(extra)
    return env


class Deployment:
    """An API and a worker process sharing one Temporal and one PostgreSQL."""

    def __init__(self, base: Path, temporal: str, dsn: str, **extra: str) -> None:
        self.base = base
        self.port = free_port()
        self.env = _write_env(base, temporal, dsn, self.port, **extra)
        self.url = f"http://127.0.0.1:{self.port}"
        self.temporal = temporal
        self.dsn = dsn
        self.api = ApexProcess(["api"], self.env, base / "api.log")
        self.workers: list[ApexProcess] = []

    @property
    def prefix(self) -> str:
        return self.env["APEX_TEMPORAL_TASK_QUEUE_PREFIX"]

    @property
    def inbox_schema(self) -> str:
        return self.env["APEX_INBOX_SCHEMA"]

    def drain_id(self, source: str = "frontapp") -> str:
        """The id of the source's drain loop, as the API names it in its answers."""
        return f"{self.prefix}:drain:{source}"

    def delivery(self, event_id: str, source: str = "frontapp") -> httpx.Response:
        """`GET /v1/inbox/{source}/{event_id}` (admin): the delivery's state and what it produced."""
        return httpx.get(
            f"{self.url}/v1/inbox/{source}/{event_id}",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=30,
        )

    async def landed(self, event_id: str, source: str = "frontapp", within: float = 90) -> dict[str, Any]:
        """Once the delivery is delivered: the admin API's document of it (with `produced`)."""
        await wait_delivered(self.dsn, source, [event_id], schema=self.inbox_schema, within=within)
        resp = self.delivery(event_id, source)
        assert resp.status_code == 200, resp.text
        doc: dict[str, Any] = resp.json()
        return doc

    def start_worker(self, **extra: str) -> ApexProcess:
        w = ApexProcess(["worker"], {**self.env, **extra}, self.base / f"worker{len(self.workers)}.log").start()
        self.workers.append(w)
        return w

    def start(self) -> Deployment:
        self.api.start()
        self.start_worker()
        wait_http(f"{self.url}/healthz", proc=self.api)
        return self

    def stop(self) -> None:
        for w in self.workers:
            if w.running:
                w.stop()
        if self.api.running:
            self.api.stop()


@pytest.fixture(scope="session")
def deployment(
    tmp_path_factory: pytest.TempPathFactory, apex_temporal_server: Any, apex_postgres_server: Any
) -> Iterator[Deployment]:
    dep = Deployment(tmp_path_factory.mktemp("deploy"), apex_temporal_server.address, apex_postgres_server.dsn)
    dep.start()
    yield dep
    dep.stop()


@pytest.fixture(scope="session")
async def temporal_client(apex_temporal_server: Any) -> Client:
    """A client with the platform's converter (the payload guard and payload encryption)."""
    return await connect(TemporalSettings(address=apex_temporal_server.address))


@pytest.fixture(scope="session")
async def pg(apex_postgres_server: Any) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(apex_postgres_server.dsn, min_size=1, max_size=4)
    yield pool
    await pool.close()


async def wait_rows(pool: asyncpg.Pool, query: str, *args: Any, count: int = 1, within: float = 60) -> list[Any]:
    deadline = time.monotonic() + within
    rows: list[Any] = []
    while time.monotonic() < deadline:
        try:
            rows = await pool.fetch(query, *args)
        except asyncpg.UndefinedTableError:
            rows = []
        if len(rows) >= count:
            return rows
        await asyncio.sleep(0.2)
    raise TimeoutError(f"expected {count} rows for {query} {args} within {within}s, got {len(rows)}")


def dumps(obj: Any) -> bytes:
    return json.dumps(obj).encode()
