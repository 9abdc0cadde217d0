"""`apex-platform dev` with no payload key configured: it makes one (APEX_HOME/payload_keys,
mode 0600), its Temporal history is encrypted with it, the CLI in a second terminal uses
it, and the stack's codec endpoint decodes the history with the admin token."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import stat
import subprocess
from pathlib import Path

import httpx
import pytest
from conftest import FRONT_SECRET, dumps, front_event, front_headers
from google.protobuf import json_format
from support.procs import CLI, ApexProcess, wait_for, wait_http
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from apex_platform.stack import read_stack
from apex_platform.stack.ports import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
PAYLOAD_ENV = ("APEX_PAYLOAD_KEYS", "APEX_PAYLOAD_KEYS_FILE", "APEX_PAYLOAD_ENCRYPTION")


def without_payload_settings(env: dict[str, str]) -> dict[str, str]:
    """The environment of a user who configured no payload key (not even the session's)."""
    return {k: v for k, v in env.items() if k not in PAYLOAD_ENV}


async def first_batch(address: str, workflow_id: str) -> list[Payload]:
    """The drain loop's input and its first completed batch, as Temporal holds them (no codec)."""
    client = await Client.connect(address)
    for _ in range(240):
        try:
            history = await client.get_workflow_handle(workflow_id).fetch_history()
        except RPCError as exc:  # the worker starts the drain loop on its own time (202 = in the inbox)
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            await asyncio.sleep(0.5)
            continue
        completed = [
            e.activity_task_completed_event_attributes.result.payloads
            for e in history.events
            if e.HasField("activity_task_completed_event_attributes")
        ]
        if completed:
            return [*history.events[0].workflow_execution_started_event_attributes.input.payloads, *completed[0]]
        await asyncio.sleep(0.5)
    raise AssertionError(f"{workflow_id} completed no batch")


def test_the_dev_stack_encrypts_its_history_with_a_key_of_its_own(tmp_path: Path) -> None:
    home = tmp_path / "home"
    dev = ApexProcess(
        ["dev"],
        {
            "APEX_HOME": str(home),
            "APEX_PLUGINS": "frontapp,postgres",
            "APEX_FRONTAPP_SIGNING_SECRET": FRONT_SECRET,
            "APEX_TEMPORAL_PORT": str(free_port()),
            "APEX_TEMPORAL_UI_PORT": str(free_port()),
            "APEX_POSTGRES_PORT": str(free_port()),
            "APEX_REDIS_PORT": str(free_port()),
            "APEX_API_PORT": str(free_port()),
        },
        tmp_path / "dev.log",
    )
    dev.env = without_payload_settings(dev.env)
    dev.start()
    try:
        wait_for(lambda: read_stack(home) is not None or not dev.running, timeout=120, what="stack.json")
        info = read_stack(home)
        assert info is not None, dev.output()[-3000:]
        url = info["api"]["url"]
        wait_http(f"{url}/healthz", timeout=120, proc=dev)

        keys = home / "payload_keys"
        mode = os.lstat(keys)
        assert stat.S_ISREG(mode.st_mode)
        assert stat.S_IMODE(mode.st_mode) == 0o600
        key_id = keys.read_text().split(":", 1)[0]
        assert key_id.startswith("dev-")

        event = front_event(text="Truck 12 picked up PRO 0286-55431 in Atlanta, GA")
        body = dumps(event)
        resp = httpx.post(f"{url}/webhooks/frontapp", content=body, headers=front_headers(body), timeout=30)
        assert resp.status_code == 202, resp.text
        wf_id = resp.json()["workflow_id"]

        sealed = asyncio.run(first_batch(info["temporal"]["address"], wf_id))
        for payload in sealed:
            assert payload.metadata["encoding"] == b"binary/encrypted"
            assert payload.metadata["encryption-key-id"] == key_id.encode()
            assert b'"source"' not in payload.data
            assert b'"deliveries"' not in payload.data

        # operators read it through the stack's codec endpoint, with the admin token
        token = (home / "admin_token").read_text().strip()
        doc = {"payloads": [json_format.MessageToDict(p) for p in sealed]}
        refused = httpx.post(f"{url}/codec/decode", json=doc, timeout=30)
        assert refused.status_code == 401
        opened = httpx.post(f"{url}/codec/decode", json=doc, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert opened.status_code == 200, opened.text
        data = [base64.b64decode(p["data"]) for p in opened.json()["payloads"]]
        assert json.loads(data[0])["source"] == "frontapp"  # the drain loop's input
        assert "deliveries" in json.loads(data[1])  # a batch's counts

        # the CLI in a second terminal talks to the stack's Temporal with the stack's key
        second = without_payload_settings({**os.environ, "APEX_HOME": str(home)})
        out = subprocess.run(
            [CLI, "sources", "list", "--json"], env=second, capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 0, out.stderr[-2000:]
        assert "not reachable" not in out.stderr, out.stderr[-2000:]
        assert "APEX_PAYLOAD" not in out.stderr
    finally:
        if dev.proc is not None:
            dev.proc.send_signal(signal.SIGINT)
        code = dev.stop(timeout=90)
    assert code == 0, dev.output()[-3000:]


def test_a_worker_outside_the_dev_stack_without_a_key_refuses_to_start(tmp_path: Path) -> None:
    env = without_payload_settings({**os.environ, "APEX_HOME": str(tmp_path), "APEX_PLUGINS": "frontapp"})
    out = subprocess.run([CLI, "worker"], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    assert "APEX_PAYLOAD_KEYS" in out.stderr
    assert "APEX_PAYLOAD_ENCRYPTION=off" in out.stderr
    assert "Traceback" not in out.stderr
