"""`apex-platform dev` as a user runs it, and `trace` / `dlq` from a second terminal."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from conftest import FRONT_SECRET, dumps, front_event, front_headers
from support.procs import CLI, ApexProcess, wait_for, wait_http

from apex_platform.stack import read_stack
from apex_platform.stack.ports import free_port, port_is_free

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
SINKS = {"graph", "postgres", "qdrant", "redis"}


def dev_env(home: Path) -> dict[str, str]:
    return {
        "APEX_HOME": str(home),
        "APEX_PLUGINS": "frontapp,postgres,redis,graph,qdrant,entities,embeddings",
        "APEX_FRONTAPP_SIGNING_SECRET": FRONT_SECRET,
        "APEX_TEMPORAL_PORT": str(free_port()),
        "APEX_TEMPORAL_UI_PORT": str(free_port()),
        "APEX_POSTGRES_PORT": str(free_port()),
        "APEX_REDIS_PORT": str(free_port()),
        "APEX_API_PORT": str(free_port()),
    }


def cli(*args: str, env: dict[str, str]) -> Any:
    out = subprocess.run([CLI, *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)


def start_dev(home: Path, env: dict[str, str]) -> tuple[ApexProcess, str]:
    dev = ApexProcess(["dev"], env, home.parent / f"dev-{time.time_ns()}.log").start()
    wait_for(lambda: read_stack(home) is not None or not dev.running, timeout=120, what="stack.json")
    info = read_stack(home)
    assert info is not None, dev.output()[-3000:]
    url = info["api"]["url"]
    wait_http(f"{url}/healthz", timeout=120, proc=dev)
    return dev, url


def test_dev_trace_and_dlq_from_a_second_terminal_then_a_clean_stop_and_resume(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = dev_env(home)
    dev, url = start_dev(home, env)
    ports = [int(env[k]) for k in ("APEX_TEMPORAL_PORT", "APEX_POSTGRES_PORT", "APEX_REDIS_PORT", "APEX_API_PORT")]
    try:
        children = psutil.Process(dev.proc.pid).children(recursive=True)  # type: ignore[union-attr]
        assert len(children) >= 3  # Temporal, PostgreSQL, Redis
        event = front_event(text="Truck 12 picked up PRO 0286-55431 in Atlanta, GA")
        body = dumps(event)
        resp = httpx.post(f"{url}/webhooks/frontapp", content=body, headers=front_headers(body), timeout=30)
        assert resp.status_code == 202, resp.text
        wf_id = resp.json()["workflow_id"]
        msg_id = event["payload"]["target"]["data"]["id"]

        def landed() -> bool:
            doc = cli("trace", "frontapp", msg_id, "--json", env={"APEX_HOME": str(home)})
            return all(s["present"] for s in doc["stores"].values())

        wait_for(landed, timeout=90, interval=1, what="the message in every store")
        doc = cli("trace", "frontapp", msg_id, "--json", env={"APEX_HOME": str(home)})
        assert set(doc) >= {"source", "id", "stores", "workflows"}
        assert set(doc["stores"]) == SINKS
        versions = {s["version"] for s in doc["stores"].values()}
        assert len(versions) == 1
        assert wf_id in doc["workflows"]  # the source's drain loop, named by the lineage
        origin = f"delivery:frontapp:{event['payload']['id']}"
        assert any(e["origin"] == origin and e["workflow_id"] == wf_id for e in doc["lineage"]), doc["lineage"]
        missing = cli("trace", "frontapp", "msg_does_not_exist", "--json", env={"APEX_HOME": str(home)})
        assert not any(s["present"] for s in missing["stores"].values())
        assert cli("dlq", "list", "--json", env={"APEX_HOME": str(home)}) == []
        # the admin endpoints refuse callers without the dev stack's token
        assert httpx.get(f"{url}/v1/trace", params={"source": "frontapp", "id": msg_id}).status_code == 401
    finally:
        assert dev.proc is not None
        dev.proc.send_signal(signal.SIGINT)
        code = dev.stop(timeout=90)
    assert code == 0, dev.output()[-3000:]
    assert read_stack(home) is None
    assert all(not c.is_running() or c.status() == psutil.STATUS_ZOMBIE for c in children)
    assert all(port_is_free(p) for p in ports)

    # a second start on the same home resumes the same state
    dev2, _ = start_dev(home, env)
    try:
        doc = cli("trace", "frontapp", msg_id, "--json", env={"APEX_HOME": str(home)})
        assert {s["version"] for s in doc["stores"].values()} == versions
        assert all(s["present"] for s in doc["stores"].values())
    finally:
        assert dev2.proc is not None
        dev2.proc.send_signal(signal.SIGINT)
        assert dev2.stop(timeout=90) == 0
