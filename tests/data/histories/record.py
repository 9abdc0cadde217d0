"""Record one real history of every workflow type the platform registers, as JSON.

    .nox/tests/bin/python tests/data/histories/record.py [--out tests/data/histories] [--tag v1]

Starts a Temporal dev server and a PostgreSQL (the embedded stack's own binaries) in a
temporary folder, runs an in-process worker of the testing kit with small fake sources
(a webhook source, a poller, a stream, a batch file source, a reconciled listing) and a
memory sink, runs each workflow type once — to its end, or to its first continue-as-new
for the loops that never end (drain, accumulator) — and writes `<type>_<tag>.json`
(`WorkflowHistory.to_json()`: what `temporal workflow show -o json` prints).

Payload encryption is off while recording, so the files hold plaintext (fake data only)
that replays with any key. `tests/test_replay.py` replays every file here against the
current workflow code: record again (with a new tag, keeping the old files) when a
workflow changes on purpose, behind `workflow.patched(...)`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

HERE = Path(__file__).resolve().parent

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _record(source: str, rid: str, kind: str = "rec.row") -> Any:
    from apex_platform.models import Record

    return Record(source=source, kind=kind, id=rid, version=1, occurred_at=T0, title=f"{source} {rid}")


class HookSource:
    """A webhook source; its priority is P0 while the worker polls P1 only, so the worker
    starts no drain or reconciler of its own and the recorder's runs are the only ones."""

    name = "rechook"
    mode = "webhook"
    priority = "P0"
    settings_model: ClassVar[Any] = None
    reconcile_interval_seconds = 1.0

    def __init__(self) -> None:
        from apex_platform.reconcile import FoundDelivery, ReconcilePage

        self.pages: dict[str | None, ReconcilePage] = {
            None: ReconcilePage([FoundDelivery(event_id="found-1", body=b'{"id": "found-1"}')], next_cursor="c1")
        }
        self._types = (FoundDelivery, ReconcilePage)

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        return None

    def receive(self, headers: Mapping[str, str], body: bytes) -> Any:
        from apex_platform.models import InboundEvent

        doc = json.loads(body)
        return InboundEvent(source=self.name, event_id=doc["id"], received_at=T0, payload=doc)

    def parse(self, event: Any) -> list[Any]:
        return [_record(self.name, str(event.event_id))]

    def reconcile_accounts(self) -> list[str]:
        return ["acct"]

    async def reconcile(self, account: str, cursor: str | None) -> Any:
        return self.pages[cursor]


class PagesSource:
    """A poller (or, as `StreamPages`, a feed) of two pages."""

    name = "recpoll"
    mode = "poll"
    priority = "P1"
    settings_model: ClassVar[Any] = None
    poll_interval_seconds = 3600.0

    def accounts(self) -> list[str]:
        return ["acct"]

    def parse(self, event: Any) -> list[Any]:
        return []

    async def poll(self, account: str, cursor: str | None) -> Any:
        from apex_platform.models import Page

        if cursor is None:
            return Page(records=(_record(self.name, "p1"),), next_cursor="c1", has_more=True)
        return Page(records=(_record(self.name, "p2"),), next_cursor="c2", has_more=False)


class StreamPages(PagesSource):
    name = "recstream"
    mode = "stream"


class LinesSource:
    """A batch source: a file of lines, one unit per line."""

    name = "reclines"
    mode = "batch"
    priority = "P1"
    settings_model: ClassVar[Any] = None

    def split(self, path: Path) -> Iterable[Any]:
        from apex_platform.contracts import BatchUnit

        for n, line in enumerate(path.read_text().splitlines(), 1):
            yield BatchUnit(id=f"L{n}", payload=line)

    def parse(self, event: Any) -> list[Any]:
        return [_record(self.name, str(event.payload))]

    def read(self, path: Path) -> Iterable[Any]:
        return []


async def _closed(client: Any, wf_id: str, run_id: str, within: float = 60) -> Any:
    """The history of run `run_id` once it has closed (completed or continued as new)."""
    from temporalio.client import WorkflowExecutionStatus

    handle = client.get_workflow_handle(wf_id, run_id=run_id)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
        if loop.time() > deadline:
            raise TimeoutError(f"{wf_id} run {run_id} still running after {within}s")
        await asyncio.sleep(0.2)
    return await handle.fetch_history()


async def record_all(temporal_address: str, dsn: str, home: Path) -> dict[str, Any]:
    """One closed history per workflow type, by type name."""
    from apex_platform.batches import ingest_file_outcome
    from apex_platform.inbox import Delivery
    from apex_platform.models import InboundEvent
    from apex_platform.pollers import start_poller
    from apex_platform.settings import TemporalSettings
    from apex_platform.temporal.client import task_queue
    from apex_platform.temporal.inputs import AccumulateInput, ActivityTimeouts, DrainInput, IngestInput
    from apex_platform.temporal.reconcile_workflow import ReconcileInput, ReconcileWorkflow
    from apex_platform.temporal.workflows import AccumulatorWorkflow, DrainWorkflow, IngestWorkflow
    from apex_platform.testing.sinks import MemorySink
    from apex_platform.testing.worker import running_worker

    hook, poll, stream, lines = HookSource(), PagesSource(), StreamPages(), LinesSource()
    timeouts = ActivityTimeouts(start_to_close_seconds=60, heartbeat_seconds=10)
    out: dict[str, Any] = {}
    async with running_worker(
        temporal_address,
        home,
        sources=[hook, poll, stream, lines],
        sinks=[MemorySink("memory")],
        priorities=["P1"],
        inbox_dsn=dsn,
        activity_heartbeat_seconds=10,
    ) as harness:
        client, prefix = harness.client, harness.prefix
        queue = task_queue("P1", TemporalSettings(task_queue_prefix=prefix))
        tag = uuid.uuid4().hex[:8]

        for n in (1, 2):
            body = json.dumps({"id": f"evt-{n}"}).encode()
            await harness.runtime.inbox.put(Delivery(hook.name, f"evt-{n}", T0, {}, body))
        drain = await client.start_workflow(
            DrainWorkflow.run,
            DrainInput(source=hook.name, idle_wait_seconds=1, batches_before_continue=2, timeouts=timeouts),
            id=f"record:drain:{tag}",
            task_queue=queue,
        )
        out["DrainWorkflow"] = await _closed(client, drain.id, drain.result_run_id or "")
        await drain.terminate("recorded")

        handle = await start_poller(client, poll, "acct", harness.temporal, once=True)  # type: ignore[arg-type]
        await handle.result()
        out["PollWorkflow"] = await handle.fetch_history()

        handle = await start_poller(client, stream, "acct", harness.temporal, once=True)  # type: ignore[arg-type]
        await handle.result()
        out["StreamWorkflow"] = await handle.fetch_history()

        path = home / "lines.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("a\nb\nc\n")
        done = await ingest_file_outcome(harness.runtime, client, lines, path, chunk_size=2)  # type: ignore[arg-type]
        out["BatchFileWorkflow"] = await client.get_workflow_handle(done.workflow_id).fetch_history()

        rec = await client.start_workflow(
            ReconcileWorkflow.run,
            ReconcileInput(source=hook.name, account="acct", once=True, timeouts=timeouts),
            id=f"record:reconcile:{tag}",
            task_queue=queue,
        )
        await rec.result()
        out["ReconcileWorkflow"] = await rec.fetch_history()

        ingest = await client.start_workflow(
            IngestWorkflow.run,
            IngestInput(event=InboundEvent(source=hook.name, event_id="one", received_at=T0, payload={"id": "one"})),
            id=f"record:ingest:{tag}",
            task_queue=queue,
        )
        await ingest.result()
        out["IngestWorkflow"] = await ingest.fetch_history()

        events = tuple(
            InboundEvent(source=hook.name, event_id=f"acc-{n}", received_at=T0, payload={"id": f"acc-{n}"})
            for n in (1, 2)
        )
        acc = await client.start_workflow(
            AccumulatorWorkflow.run,
            AccumulateInput(
                source=hook.name, max_batch=2, max_wait_seconds=0.5, batches_before_continue=1, pending=events
            ),
            id=f"record:accumulate:{tag}",
            task_queue=queue,
            execution_timeout=timedelta(minutes=5),
        )
        await acc.signal(AccumulatorWorkflow.add, events[0])  # a duplicate by signal: dropped
        out["AccumulatorWorkflow"] = await _closed(client, acc.id, acc.result_run_id or "")
        await acc.terminate("recorded")
    return out


async def main_async(out_dir: Path, tag: str) -> list[Path]:
    from apex_platform.stack.ports import free_port
    from apex_platform.stack.postgres import PostgresServer
    from apex_platform.stack.temporal_server import TemporalDevServer

    os.environ["APEX_PAYLOAD_ENCRYPTION"] = "off"  # plaintext files (fake data), replayable with any key
    for name in ("APEX_PAYLOAD_KEYS", "APEX_PAYLOAD_KEYS_FILE"):
        os.environ.pop(name, None)
    with tempfile.TemporaryDirectory(prefix="apex-record-") as tmp:
        base = Path(tmp)
        os.chmod(base, 0o755)  # as root, PostgreSQL runs as another user that must reach its folder
        temporal = TemporalDevServer(base / "temporal", port=free_port(), ui_port=None)
        postgres = PostgresServer(base / "postgres", port=free_port())
        temporal.start()
        postgres.start()
        try:
            histories = await record_all(temporal.address, postgres.dsn, base / "home")
        finally:
            postgres.stop()
            temporal.stop()
    written = []
    for wf_type, history in sorted(histories.items()):
        path = out_dir / f"{wf_type.removesuffix('Workflow').lower()}_{tag}.json"
        path.write_text(json.dumps(json.loads(history.to_json()), indent=1) + "\n")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE)
    parser.add_argument("--tag", default="v1", help="file suffix: a new one for each recording")
    args = parser.parse_args(argv)
    for path in asyncio.run(main_async(args.out, args.tag)):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
