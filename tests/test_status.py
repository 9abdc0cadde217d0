"""`apex-platform status` as an operator runs it, a real child process, against a real API
and worker (session Temporal and PostgreSQL) whose Redis sink has a Redis server of this
test's own: healthy first; then that Redis is stopped, the worker's next batch trips the
Redis write breaker, and `status --json` says so — the store's check fails, the breaker is
open (read from the worker's /metrics), the delivery waits in the inbox, exit code 2."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import ADMIN_TOKEN, FRONT_SECRET, Deployment, dumps, front_event, front_headers
from support.procs import CLI, ApexProcess, wait_for, wait_http

from apex_platform.stack import read_stack
from apex_platform.stack.ports import free_port
from apex_platform.stack.redis_server import RedisServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


class Setup:
    def __init__(self, dep: Deployment, redis: RedisServer, metrics_url: str) -> None:
        self.dep = dep
        self.redis = redis
        self.metrics_url = metrics_url

    def status(self) -> tuple[int, dict[str, Any]]:
        env = {**os.environ, **self.dep.env, "APEX_STATUS_METRICS_URLS": self.metrics_url}
        out = subprocess.run([CLI, "status", "--json"], env=env, capture_output=True, text=True, timeout=120)
        assert out.stdout.startswith("{"), out.stderr
        return out.returncode, json.loads(out.stdout)

    def send(self) -> str:
        event = front_event()
        body = dumps(event)
        resp = httpx.post(f"{self.dep.url}/webhooks/frontapp", content=body, headers=front_headers(body), timeout=30)
        assert resp.status_code == 202, resp.text
        return str(event["payload"]["id"])

    def breaker_value(self) -> float | None:
        text = httpx.get(self.metrics_url, timeout=10).text
        for line in text.splitlines():
            if line.startswith("apex_saga_breaker_state{") and 'sink="redis"' in line and 'op="write"' in line:
                return float(line.rsplit(" ", 1)[1])
        return None


@pytest.fixture
def setup(
    tmp_path: Path, apex_temporal_server: Any, apex_postgres_server: Any, apex_redis_server: Any
) -> Iterator[Setup]:
    redis = RedisServer(tmp_path / "redis", port=free_port())  # this test's own: it stops it
    redis.start()
    tag = f"st{uuid.uuid4().hex[:10]}"
    dep = Deployment(
        tmp_path,
        apex_temporal_server.address,
        apex_postgres_server.dsn,
        APEX_PLUGINS="frontapp,postgres,redis",
        APEX_POSTGRES_SCHEMA=tag,  # its own dead-letter table: nobody else's letters
        APEX_REDIS_URL=redis.url,
        APEX_REDIS_PREFIX=tag,
        # locks and ledger on the session's Redis: only the store goes down, not the saga
        APEX_REDIS_COORDINATOR_URL=apex_redis_server.url,
        APEX_SAGA_RETRY_ATTEMPTS="1",
        APEX_SAGA_BREAKER_FAILURES="1",
        APEX_SAGA_BREAKER_RESET_SECONDS="3600",
    )
    port = free_port()
    dep.api.start()
    dep.start_worker(APEX_METRICS_WORKER_PORT=str(port))
    try:
        wait_http(f"{dep.url}/healthz", proc=dep.api)
        wait_http(f"http://127.0.0.1:{port}/metrics", proc=dep.workers[0])
        yield Setup(dep, redis, f"http://127.0.0.1:{port}/metrics")
    finally:
        dep.stop()
        if redis.is_running:
            redis.stop()


def test_status_reflects_a_stopped_store_and_an_open_breaker(setup: Setup) -> None:
    first = setup.send()
    asyncio.run(setup.dep.landed(first))

    code, doc = setup.status()
    assert (code, doc["healthy"], doc["problems"]) == (0, True, [])
    assert doc["version"] == 1
    assert doc["checks"] == {"inbox": "ok", "sink:postgres": "ok", "sink:redis": "ok", "temporal": "ok"}
    assert doc["breakers"] == [
        {"sink": "postgres", "op": "write", "state": "closed", "endpoint": setup.metrics_url},
        {"sink": "redis", "op": "write", "state": "closed", "endpoint": setup.metrics_url},
    ]
    (front,) = doc["sources"]
    assert (front["name"], front["priority"]) == ("frontapp", "P0")
    assert front["last_write"] is not None  # the worker's last write of the source
    assert [(r["source"], r["backlog"]) for r in doc["inbox"]] == [("frontapp", 0)]
    assert doc["dead_letters"]["open"] == 0
    (queue,) = doc["workers"]
    assert queue["queue"] == f"{setup.dep.prefix}-p0"
    assert queue["workflow_pollers"] >= 1
    assert queue["activity_pollers"] >= 1
    assert {p["type"] for p in queue["pollers"]} == {"workflow", "activity"}
    assert all(p["identity"] in queue["identities"] and p["last_access"] for p in queue["pollers"])
    assert doc["metrics_endpoints"] == [{"url": setup.metrics_url, "ok": True, "error": None}]

    setup.redis.stop()
    setup.send()  # the batch that trips the breaker, and waits in the inbox
    deadline = time.monotonic() + 90
    while setup.breaker_value() != 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert setup.breaker_value() == 2, "the worker's Redis write breaker did not open"

    code, doc = setup.status()
    assert code == 2
    assert doc["healthy"] is False
    assert doc["checks"]["sink:redis"].startswith("error")
    assert doc["checks"]["sink:postgres"] == "ok"
    assert doc["checks"]["temporal"] == "ok"
    assert {"sink": "redis", "op": "write", "state": "open", "endpoint": setup.metrics_url} in doc["breakers"]
    assert any(p.startswith("sink:redis: error") for p in doc["problems"])
    assert f"breaker redis/write is open ({setup.metrics_url})" in doc["problems"]
    (row,) = doc["inbox"]
    assert (row["source"], row["backlog"]) == ("frontapp", 1)  # the delivery waits, kept
    assert row["oldest_pending_seconds"] is not None
    assert doc["workers"][0]["workflow_pollers"] >= 1

    # the same document over HTTP, for the admin token only
    resp = httpx.get(f"{setup.dep.url}/v1/status", timeout=60)
    assert resp.status_code == 401
    resp = httpx.get(f"{setup.dep.url}/v1/status", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=60)
    assert resp.status_code == 200
    api_doc = resp.json()
    assert api_doc["healthy"] is False
    assert api_doc["checks"]["sink:redis"].startswith("error")


def test_status_from_a_second_terminal_goes_through_the_dev_stack(tmp_path: Path) -> None:
    """Next to `apex-platform dev`, status asks the stack's API (the process that owns
    Qdrant's folder and runs the worker, so its breakers are its own) and shows the stack."""
    home = tmp_path / "home"
    env = {
        "APEX_HOME": str(home),
        "APEX_PLUGINS": "frontapp,postgres,redis,qdrant",
        "APEX_FRONTAPP_SIGNING_SECRET": FRONT_SECRET,
        "APEX_TEMPORAL_PORT": str(free_port()),
        "APEX_TEMPORAL_UI_PORT": "0",
        "APEX_POSTGRES_PORT": str(free_port()),
        "APEX_REDIS_PORT": str(free_port()),
        "APEX_API_PORT": str(free_port()),
    }
    dev = ApexProcess(["dev"], env, tmp_path / "dev.log").start()
    try:
        wait_for(lambda: read_stack(home) is not None or not dev.running, timeout=120, what="stack.json")
        info = read_stack(home)
        assert info is not None, dev.output()[-3000:]
        wait_http(f"{info['api']['url']}/healthz", timeout=120, proc=dev)
        event = front_event()
        body = dumps(event)
        resp = httpx.post(
            f"{info['api']['url']}/webhooks/frontapp", content=body, headers=front_headers(body), timeout=30
        )
        assert resp.status_code == 202, resp.text
        second_terminal = {**os.environ, "APEX_HOME": str(home)}

        def status(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [CLI, "status", *args], env=second_terminal, capture_output=True, text=True, timeout=120
            )

        def written() -> bool:
            doc = json.loads(status("--json").stdout)
            return any(b["sink"] == "redis" for b in doc["breakers"])

        wait_for(written, timeout=90, interval=1, what="the delivery through the saga")
        out = status("--json")
        doc = json.loads(out.stdout)
        assert (out.returncode, doc["problems"]) == (0, [])
        stack = doc["stack"]
        assert (stack["home"], stack["api"], stack["pid"]) == (str(home), info["api"]["url"], info["pid"])
        assert "***@" in stack["postgres"]
        assert "***@" in stack["redis"]
        for server in ("postgres", "redis"):  # the servers' passwords are never shown
            assert Path(info[server]["password_file"]).read_text().strip() not in out.stdout
        assert doc["checks"] == {
            "inbox": "ok",
            "sink:postgres": "ok",
            "sink:qdrant": "ok",  # opened by the dev process (its worker)
            "sink:redis": "ok",
            "temporal": "ok",
        }
        assert {(b["sink"], b["state"], b["endpoint"]) for b in doc["breakers"]} >= {
            ("postgres", "closed", "self"),
            ("redis", "closed", "self"),
        }
        (queue,) = doc["workers"]
        assert queue["workflow_pollers"] >= 1
        assert doc["sources"][0]["last_write"] is not None
        screen = status()
        assert screen.returncode == 0, screen.stderr
        assert "healthy" in screen.stdout
        assert f"embedded stack in {home}" in screen.stdout.replace("\n", "")
    finally:
        assert dev.proc is not None
        dev.proc.send_signal(signal.SIGINT)
        dev.stop(timeout=90)


async def test_dead_letter_counts_tell_quarantined_records_from_failed_compensations() -> None:
    """Through the saga for real (memory stores): a batch with two records one store refuses
    for good (one quarantine letter, two records), and a batch whose undo failed."""
    from datetime import UTC, datetime

    from apex_platform.models import Record
    from apex_platform.plugins import Registry
    from apex_platform.runtime import Runtime
    from apex_platform.saga import Saga, SagaSettings, SagaWriteError
    from apex_platform.status import dead_letter_counts
    from apex_platform.testing.sinks import Faults, FaultySink, MemoryDeadLetters, MemorySink

    def rec(id: str) -> Record:
        return Record(source="trk", kind="trk.shipment", id=id, version=1, occurred_at=datetime(2026, 3, 1, tzinfo=UTC))

    letters = MemoryDeadLetters()
    a, b = FaultySink(MemorySink("a")), FaultySink(MemorySink("b"))
    saga = Saga(
        {"a": a, "b": b},
        SagaSettings(retry_attempts=1, retry_initial_seconds=0.01, breaker_failures=50),
        None,
        letters,
    )
    runtime = Runtime(registry=Registry(sinks={"a": a, "b": b}), core=None, temporal=None, saga=saga, codec=None)  # type: ignore[arg-type]
    assert await dead_letter_counts(runtime) == {
        "open": 0,
        "quarantine_letters": 0,
        "quarantined_records": 0,
        "failed_compensations": 0,
        "truncated": False,
        "error": None,
    }
    b.faults = Faults(refuse_ids={"poison-1", "poison-2"})
    result = await saga.write([rec("poison-1"), rec("poison-2"), rec("fine")], batch_id="q")
    assert result.quarantined == 2
    b.faults = Faults(fail_writes_forever=True)
    a.faults = Faults(fail_restores_forever=True)
    with pytest.raises(SagaWriteError):
        await saga.write([rec("undo-fails")], batch_id="c")
    counts = await dead_letter_counts(runtime)
    assert (counts["open"], counts["quarantine_letters"], counts["quarantined_records"]) == (2, 1, 2)
    assert counts["failed_compensations"] == 1
    await letters.mark_dead_letter(1, "discarded")
    assert (await dead_letter_counts(runtime))["open"] == 1
