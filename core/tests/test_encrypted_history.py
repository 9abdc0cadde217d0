"""Encrypted payloads on the real Temporal dev server: a workflow run's history, fetched
without the codec, holds no plaintext of what its records and its vendor carried; with the
codec it decodes and replays; a key rotation in the middle of a run keeps every payload
readable; and `temporal workflow show --codec-endpoint` reads it through the API's codec
endpoint."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import pytest
import uvicorn
from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowHandle, WorkflowHistory
from temporalio.worker import Replayer

from apex_platform.api import create_app
from apex_platform.inbox import Inbox, InboxSettings
from apex_platform.models import InboundEvent, Page, Record
from apex_platform.pollers import poller_id, start_poller
from apex_platform.runtime import Runtime
from apex_platform.settings import CoreSettings, TemporalSettings
from apex_platform.stack.ports import free_port
from apex_platform.temporal.client import data_converter
from apex_platform.temporal.encryption import ENCODING, KEY_ID_METADATA, PayloadDecryptionError, PayloadSettings
from apex_platform.temporal.inputs import PollState
from apex_platform.temporal.worker import sandbox_runner, workflows
from apex_platform.temporal.workflows import PollWorkflow
from apex_platform.testing.sinks import MemorySink
from apex_platform.testing.worker import running_worker

pytestmark = pytest.mark.timeout(180)
T0 = datetime(2026, 1, 1, tzinfo=UTC)
KEY_A = "a:" + base64.b64encode(bytes(range(32))).decode()
KEY_B = "b:" + base64.b64encode(bytes(range(100, 132))).decode()
ADMIN_TOKEN = "codec-test-admin-token-0123456789"


class MarkerPollSource:
    """A vendor whose record ids, cursors and one error message carry `marker`."""

    name = "secretpoll"
    mode = "poll"
    priority = "P1"
    settings_model: ClassVar[Any] = None
    poll_interval_seconds = 3600.0

    def __init__(self, marker: str) -> None:
        self.marker = marker
        self.account = f"acct-{uuid.uuid4().hex[:8]}"
        self.pages: dict[str | None, Page] = {}
        self.fail_next = True

    def accounts(self) -> list[str]:
        return [self.account]

    def parse(self, event: InboundEvent) -> list[Record]:
        return []

    def add_page(self, cursor: str | None, n: int, *, more: bool = False) -> str:
        records = tuple(
            Record(source=self.name, kind="secret.txn", id=f"{self.marker}-{n}-{i}", version=1, occurred_at=T0)
            for i in range(2)
        )
        next_cursor = f"cursor-{self.marker}-{n}"
        self.pages[cursor] = Page(records=records, next_cursor=next_cursor, has_more=more)
        return next_cursor

    async def poll(self, account: str, cursor: str | None) -> Page:
        if self.fail_next:  # one failed attempt: its message lands in the history (last_failure)
            self.fail_next = False
            raise RuntimeError(f"vendor answered 500 for {self.marker}")
        return self.pages[cursor]


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Payload keys of the test's own (the session's key file out of the way)."""
    monkeypatch.delenv("APEX_PAYLOAD_KEYS_FILE", raising=False)
    monkeypatch.delenv("APEX_PAYLOAD_ENCRYPTION", raising=False)
    monkeypatch.setenv("APEX_PAYLOAD_KEYS", KEY_A)
    return monkeypatch


def converter(keys: str) -> Any:
    return data_converter(TemporalSettings(), PayloadSettings(keys=keys))  # type: ignore[arg-type]


def all_payloads(history: WorkflowHistory) -> list[Payload]:
    """Every payload of every event the codec handles (inputs, results, signals, queries,
    failures' encoded attributes): all but search attributes, which Temporal indexes, and
    the SDK's own patch markers (a patch id, written by the SDK's core without the codec)."""
    found: list[Payload] = []

    def walk(message: Any) -> None:
        if isinstance(message, Payload):
            found.append(message)
            return
        for field, value in message.ListFields():
            if field.name == "search_attributes":
                continue
            if hasattr(value, "ListFields"):
                walk(value)
            elif not isinstance(value, str | bytes | int | float | bool):
                for item in value.values() if hasattr(value, "values") else value:
                    if hasattr(item, "ListFields"):
                        walk(item)

    for event in history.events:
        if event.marker_recorded_event_attributes.marker_name != "core_patch":
            walk(event)
    return found


def raw(history: WorkflowHistory) -> bytes:
    return b"".join(e.SerializeToString() for e in history.events) + history.to_json().encode()


async def run_poll_once(client: Client, source: MarkerPollSource, prefix: str) -> WorkflowHandle[Any, PollState]:
    settings = TemporalSettings(task_queue_prefix=prefix, activity_heartbeat_seconds=5)
    handle: WorkflowHandle[Any, PollState] = await start_poller(client, source, source.account, settings, once=True)  # type: ignore[arg-type]
    return handle


async def test_a_real_run_leaves_no_plaintext_in_its_history_and_decodes_with_the_codec(
    keys: pytest.MonkeyPatch, apex_temporal_server: Any, apex_postgres_server: Any, tmp_path: Path
) -> None:
    marker = f"MRK{uuid.uuid4().hex[:12]}"
    source = MarkerPollSource(marker)
    source.add_page(None, 1)
    async with running_worker(
        apex_temporal_server.address,
        tmp_path,
        sources=[source],
        sinks=[MemorySink("memory")],
        priorities=["P1"],
        inbox_dsn=apex_postgres_server.dsn,
    ) as harness:
        handle = await run_poll_once(harness.client, source, harness.prefix)
        state = await asyncio.wait_for(handle.result(), 60)
    assert state.cursor == f"cursor-{marker}-1"
    assert f"{marker}-1-0" in state.recent_ids

    # what Temporal holds, read without the codec: ciphertext only
    plain_client = await Client.connect(apex_temporal_server.address)
    history = await plain_client.get_workflow_handle(handle.id).fetch_history()
    assert marker.encode() not in raw(history)
    payloads = all_payloads(history)
    assert payloads
    assert {p.metadata["encoding"] for p in payloads} == {ENCODING}
    assert {p.metadata[KEY_ID_METADATA] for p in payloads} == {b"a"}
    started = [e for e in history.events if e.activity_task_started_event_attributes.HasField("last_failure")]
    assert started, "the failed attempt left no last_failure in the history"
    assert started[0].activity_task_started_event_attributes.last_failure.message == "Encoded failure"

    # ... and with the codec everything is there
    codec = converter(KEY_A)
    opened = await codec.payload_codec.decode(payloads)
    assert any(marker.encode() in p.data for p in opened)
    failure = await codec.decode_failure(started[0].activity_task_started_event_attributes.last_failure)
    assert f"vendor answered 500 for {marker}" in str(failure)
    await Replayer(workflows=workflows(), data_converter=codec, workflow_runner=sandbox_runner()).replay_workflow(
        history
    )


async def test_rotation_in_the_middle_of_a_run_a_new_primary_key_and_the_old_one_still_read(
    keys: pytest.MonkeyPatch, apex_temporal_server: Any, apex_postgres_server: Any, tmp_path: Path
) -> None:
    """A poller written under key A; its worker restarts with B first and A kept: the run
    goes on, new payloads are B's, the whole history decodes and replays with [B, A], and
    fails clearly, naming key A, once A is dropped."""
    marker = f"ROT{uuid.uuid4().hex[:12]}"
    source = MarkerPollSource(marker)
    source.fail_next = False
    next_cursor = source.add_page(None, 1)
    prefix = f"t{uuid.uuid4().hex[:10]}"
    common: dict[str, Any] = {
        "sources": [source],
        "sinks": [MemorySink("memory")],
        "priorities": ["P1"],
        "inbox_dsn": apex_postgres_server.dsn,
        "prefix": prefix,
    }
    settings = TemporalSettings(task_queue_prefix=prefix, activity_heartbeat_seconds=5)
    async with running_worker(apex_temporal_server.address, tmp_path, **common) as harness:
        handle = await start_poller(harness.client, source, source.account, settings)  # type: ignore[arg-type]
        for _ in range(300):
            if (await handle.query(PollWorkflow.state)).pages >= 1:
                break
            await asyncio.sleep(0.1)
        assert (await handle.query(PollWorkflow.state)).pages == 1

    keys.setenv("APEX_PAYLOAD_KEYS", f"{KEY_B},{KEY_A}")
    source.add_page(next_cursor, 2)
    async with running_worker(apex_temporal_server.address, tmp_path, **common) as harness:
        wf = harness.client.get_workflow_handle_for(PollWorkflow.run, poller_id(source, source.account, prefix))  # type: ignore[arg-type]
        await wf.signal("sync_now")
        for _ in range(300):
            if (await wf.query(PollWorkflow.state)).pages >= 2:
                break
            await asyncio.sleep(0.1)
        await wf.signal("stop")
        state = await asyncio.wait_for(wf.result(), 60)
    assert state.cursor == f"cursor-{marker}-2"

    history = await (await Client.connect(apex_temporal_server.address)).get_workflow_handle(wf.id).fetch_history()
    assert marker.encode() not in raw(history)
    payloads = all_payloads(history)
    assert {p.metadata[KEY_ID_METADATA] for p in payloads} == {b"a", b"b"}
    rotated = converter(f"{KEY_B},{KEY_A}")
    opened = await rotated.payload_codec.decode(payloads)
    assert any(f"{marker}-1-0".encode() in p.data for p in opened)  # written under A
    assert any(f"{marker}-2-0".encode() in p.data for p in opened)  # written under B
    await Replayer(workflows=workflows(), data_converter=rotated, workflow_runner=sandbox_runner()).replay_workflow(
        history
    )
    with pytest.raises(PayloadDecryptionError, match=r"encrypted with key 'a' cannot be decrypted"):
        await converter(KEY_B).payload_codec.decode(payloads)


@pytest.fixture
async def codec_api(
    keys: pytest.MonkeyPatch, apex_temporal_server: Any, apex_postgres_server: Any, tmp_path: Path
) -> AsyncIterator[str]:
    """The API (its codec endpoint) served over HTTP on a free port, in this process."""
    keys.setenv("APEX_ADMIN_TOKEN", ADMIN_TOKEN)
    runtime = Runtime.build(
        [],
        use_entry_points=False,
        core=CoreSettings(home=tmp_path / "api"),
        temporal=TemporalSettings(address=apex_temporal_server.address),
    )
    runtime.inbox = Inbox(InboxSettings(dsn=apex_postgres_server.dsn, schema_name="inbox_codec_api"))  # type: ignore[arg-type]
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(runtime, open_sinks=False), host="127.0.0.1", port=port, log_level="warning")
    )
    task = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


def decoded_texts(doc: Any) -> list[bytes]:
    """Every `data` of the CLI's JSON history, base64-decoded."""
    out: list[bytes] = []
    if isinstance(doc, dict):
        for key, value in doc.items():
            if key == "data" and isinstance(value, str):
                try:
                    out.append(base64.b64decode(value, validate=True))
                except ValueError:
                    out.append(value.encode())
            else:
                out += decoded_texts(value)
    elif isinstance(doc, list):
        for item in doc:
            out += decoded_texts(item)
    return out


async def temporal_show(address: str, workflow_id: str, *extra: str) -> Any:
    from apex_platform.stack.temporal_server import temporal_executable

    proc = await asyncio.create_subprocess_exec(
        str(temporal_executable()),
        "workflow",
        "show",
        "--address",
        address,
        "-w",
        workflow_id,
        "-o",
        "json",
        *extra,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if not k.startswith("TEMPORAL_")},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()[-2000:]
    return json.loads(out)


async def test_the_temporal_cli_reads_the_history_through_the_api_codec_endpoint(
    codec_api: str, apex_temporal_server: Any, apex_postgres_server: Any, tmp_path: Path
) -> None:
    marker = f"CLI{uuid.uuid4().hex[:12]}"
    source = MarkerPollSource(marker)
    source.add_page(None, 1)
    async with running_worker(
        apex_temporal_server.address,
        tmp_path,
        sources=[source],
        sinks=[MemorySink("memory")],
        priorities=["P1"],
        inbox_dsn=apex_postgres_server.dsn,
    ) as harness:
        handle = await run_poll_once(harness.client, source, harness.prefix)
        await asyncio.wait_for(handle.result(), 60)

    address = apex_temporal_server.address
    sealed = await temporal_show(address, handle.id)
    assert not any(marker.encode() in data for data in decoded_texts(sealed))
    assert marker not in json.dumps(sealed)
    opened = await temporal_show(
        address, handle.id, "--codec-endpoint", f"{codec_api}/codec", "--codec-auth", f"Bearer {ADMIN_TOKEN}"
    )
    assert any(marker.encode() in data for data in decoded_texts(opened)) or marker in json.dumps(opened)
