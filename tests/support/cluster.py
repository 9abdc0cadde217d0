"""API processes and workers as child processes sharing one Temporal and one PostgreSQL,
and deliveries built from the vendors' published examples, for the intake and saga tests."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import asyncpg
from conftest import FRONT_SECRET, front_event, front_headers

from apex_platform.stack.ports import free_port
from support.procs import CLI, ApexProcess, wait_http
from support.senders import SAMSARA_SECRET, Delivery, samsara_delivery, samsara_headers

PUSH_KEY = "intake-test-key-" + uuid.uuid4().hex


class Cluster:
    """API processes and workers sharing one Temporal and one PostgreSQL, with task queues,
    inbox schema and sink schema of their own (tests never take each other's work)."""

    def __init__(self, base: Path, temporal: str, dsn: str, **extra: str) -> None:
        self.base = base
        self.tag = f"i{uuid.uuid4().hex[:8]}"
        self.dsn = dsn
        self.temporal = temporal
        self.inbox_schema = f"inbox_{self.tag}"
        self.sink_schema = f"sink_{self.tag}"
        self.env = {
            "APEX_HOME": str(base / "home"),
            "APEX_TEMPORAL_ADDRESS": temporal,
            "APEX_TEMPORAL_TASK_QUEUE_PREFIX": self.tag,
            "APEX_POSTGRES_DSN": dsn,
            "APEX_POSTGRES_SCHEMA": self.sink_schema,
            "APEX_INBOX_SCHEMA": self.inbox_schema,
            "APEX_INBOX_IDLE_WAIT_SECONDS": "5",
            "APEX_PLUGINS": "frontapp,samsara,llm,postgres",
            "APEX_FRONTAPP_SIGNING_SECRET": FRONT_SECRET,
            "APEX_SAMSARA_WEBHOOK_SECRET": SAMSARA_SECRET,
            "APEX_API_KEYS": PUSH_KEY,
            "APEX_TEMPORAL_ACTIVITY_HEARTBEAT_SECONDS": "3",
            "APEX_TEMPORAL_GRACEFUL_SHUTDOWN_SECONDS": "10",
            "APEX_SAGA_RETRY_INITIAL_SECONDS": "0.05",
            "APEX_LOG_LEVEL": "INFO",
            **extra,
        }
        self.apis: list[tuple[ApexProcess, str]] = []
        self.workers: list[ApexProcess] = []

    def start_api(self, **extra: str) -> str:
        port = free_port()
        proc = ApexProcess(
            ["api"], {**self.env, "APEX_API_PORT": str(port), **extra}, self.base / f"api{len(self.apis)}.log"
        ).start()
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/healthz", proc=proc)
        self.apis.append((proc, url))
        return url

    def start_worker(self, **extra: str) -> ApexProcess:
        proc = ApexProcess(["worker"], {**self.env, **extra}, self.base / f"worker{len(self.workers)}.log").start()
        self.workers.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.workers:
            if proc.running:
                proc.stop()
        for proc, _ in self.apis:
            if proc.running:
                proc.stop()

    def logs(self) -> str:
        out = []
        for proc in [*self.workers, *(p for p, _ in self.apis)]:
            out.append(f"--- {proc.log.name}\n{proc.output()[-4000:]}")
        return "\n".join(out)

    async def fetch(self, query: str, *args: Any) -> list[Any]:
        conn = await asyncpg.connect(self.dsn)
        try:
            return list(await conn.fetch(query, *args))
        finally:
            await conn.close()

    def cli(self, *args: str) -> Any:
        out = subprocess.run([CLI, *args], env={**os.environ, **self.env}, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-3000:]
        return json.loads(out.stdout)


def front_deliveries(n: int, *, text: str = "Where is PRO 4417? The consignee asks for an ETA.") -> list[Delivery]:
    out = []
    for _ in range(n):
        event = front_event(text=text)
        out.append(Delivery(event["payload"]["id"], "/webhooks/frontapp", json.dumps(event).encode(), front_headers))
    return out


def samsara_deliveries(n: int) -> list[Delivery]:
    out = []
    for _ in range(n):
        event_id, body = samsara_delivery()
        out.append(Delivery(event_id, "/webhooks/samsara", body, samsara_headers))
    return out


def llm_deliveries(n: int) -> list[Delivery]:
    def sign(_body: bytes) -> dict[str, str]:
        return {"Authorization": f"Bearer {PUSH_KEY}", "Content-Type": "application/json"}

    out = []
    for i in range(n):
        cid = f"conv-{uuid.uuid4().hex}"
        doc = {
            "conversation_id": cid,
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "You are a dispatcher's assistant."},
                {"role": "user", "content": f"Where is load {4000 + i}? The shipper needs the POD."},
                {"role": "assistant", "content": "Load is at the consignee; POD expected by 17:00."},
            ],
        }
        out.append(Delivery(cid, "/v1/records/llm", json.dumps(doc).encode(), sign))
    return out
