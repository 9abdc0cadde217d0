"""Operating the stores: trace a record across every sink, and work the dead-letter queue.

The same functions serve the CLI (in-process, when no stack is running) and the API's
admin endpoints (so `apex-platform trace` from a second terminal goes through the
running `apex-platform dev`, which owns Qdrant's local folder).
"""

from __future__ import annotations

import logging
from typing import Any

from temporalio.client import Client

from apex_platform.contracts import DeadLetter, DeadLetterQueue
from apex_platform.errors import ApexError, SinkError
from apex_platform.models import RecordKey
from apex_platform.runtime import Runtime

log = logging.getLogger(__name__)

MAX_WORKFLOWS_LISTED = 50


async def trace(runtime: Runtime, client: Client | None, source: str, record_id: str) -> dict[str, Any]:
    """Where a record is, and which version, in every installed sink; and the workflows
    that wrote it (ingest workflows are indexed by record id; batches by pollers,
    streams and accumulators are not, see the workflow of the source instead)."""
    key = RecordKey(source, record_id)
    stores: dict[str, dict[str, Any]] = {}
    for name, sink in runtime.registry.sinks.items():
        try:
            found = (await sink.read([key])).get(key)
        except Exception as exc:  # noqa: BLE001 - one store down must not hide the others
            stores[name] = {"present": False, "version": None, "error": f"{type(exc).__name__}: {exc}"}
            continue
        if found is None:
            stores[name] = {"present": False, "version": None}
        else:
            stores[name] = {
                "present": not found.deleted,
                "version": found.version,
                "deleted": found.deleted,
                "kind": found.kind,
            }
    workflows: list[dict[str, Any]] = []
    if client is not None:
        escaped_id = record_id.replace("\\", "\\\\").replace("'", "\\'")
        escaped_source = source.replace("\\", "\\\\").replace("'", "\\'")
        query = f"ApexRecordId = '{escaped_id}' AND ApexSource = '{escaped_source}'"
        try:
            async for wf in client.list_workflows(query, limit=MAX_WORKFLOWS_LISTED):
                workflows.append(
                    {
                        "workflow_id": wf.id,
                        "run_id": wf.run_id,
                        "status": wf.status.name if wf.status else None,
                        "started_at": wf.start_time.isoformat() if wf.start_time else None,
                    }
                )
        except Exception as exc:  # noqa: BLE001 - the stores still answer
            log.warning("could not list workflows for %s: %s", key, exc)
    lineage: list[dict[str, Any]] = []
    lineage_error = None
    try:
        lineage = await runtime.inbox.lineage(source, record_id)
    except Exception as exc:  # noqa: BLE001 - the stores still answer
        lineage_error = f"{type(exc).__name__}: {exc}"
    known = {w["workflow_id"] for w in workflows}
    for entry in lineage:  # drains, pollers, streams and files write batches: the lineage names them
        if entry["workflow_id"] and entry["workflow_id"] not in known:
            known.add(entry["workflow_id"])
            workflows.append(
                {"workflow_id": entry["workflow_id"], "run_id": entry["run_id"], "status": None, "started_at": None}
            )
    versions = {s.get("version") for s in stores.values() if "error" not in s}
    doc: dict[str, Any] = {
        "source": source,
        "id": record_id,
        "consistent": len(versions) <= 1 and all("error" not in s for s in stores.values()),
        "stores": stores,
        "workflows": [w["workflow_id"] for w in workflows],
        "workflow_details": workflows,
        "lineage": lineage,
    }
    if lineage_error:
        doc["lineage_error"] = lineage_error
    return doc


async def inbox_status(runtime: Runtime) -> dict[str, Any]:
    """Per source: backlog, oldest pending age, stuck, rate; and the blob store's use."""
    import asyncio

    sources = await runtime.inbox.status()
    blobs = await asyncio.to_thread(runtime.codec.blobs.usage)
    return {"sources": sources, "blobs": blobs}


def dead_letter_queue(runtime: Runtime) -> DeadLetterQueue:
    if runtime.saga.dead_letters is None:
        raise ApexError("no installed sink keeps dead letters (install apex-sink-postgres)")
    return runtime.saga.dead_letters


def letter_document(letter: DeadLetter, *, full: bool = False) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": letter.id,
        "batch_id": letter.batch_id,
        "status": letter.status,
        "attempts": letter.attempts,
        "created_at": str(letter.created_at) if letter.created_at else None,
        "records": len(letter.records),
        "keys": [str(r.key) for r in letter.records[:20]],
        "succeeded": letter.succeeded,
        "failed": letter.failed,
        "error": letter.error,
        # per sink whose undo failed: how many keys `dlq rollback` would put back
        "rollback": {sink: len(previous) for sink, previous in letter.previous.items()},
    }
    if full:
        doc["records"] = [r.json_value() for r in letter.records]  # exact: keys with lone surrogates too
        doc["writers"] = letter.writers
        doc["previous"] = {
            sink: [
                {"key": str(key), "record": None if record is None else record.json_value()}
                for key, record in previous.items()
            ]
            for sink, previous in letter.previous.items()
        }
    return doc


async def dlq_list(runtime: Runtime, status: str | None = "open", limit: int = 100) -> list[dict[str, Any]]:
    letters = await dead_letter_queue(runtime).list_dead_letters(status=status, limit=limit)
    return [letter_document(letter) for letter in letters]


async def dlq_show(runtime: Runtime, letter_id: int) -> dict[str, Any]:
    letter = await dead_letter_queue(runtime).get_dead_letter(letter_id)
    if letter is None:
        raise ApexError(f"no dead letter {letter_id}")
    return letter_document(letter, full=True)


async def dlq_replay(runtime: Runtime, letter_id: int) -> dict[str, Any]:
    """Write the letter's records again through the saga (every sink, all or nothing).
    Versions make this safe: a store already holding a newer version keeps it."""
    dlq = dead_letter_queue(runtime)
    letter = await dlq.get_dead_letter(letter_id)
    if letter is None:
        raise ApexError(f"no dead letter {letter_id}")
    if letter.status != "open":
        raise ApexError(f"dead letter {letter_id} is {letter.status}, not open")
    try:
        result = await runtime.saga.write(letter.records, batch_id=f"replay:{letter.batch_id}")
    except Exception as exc:
        raise SinkError(f"replay of dead letter {letter_id} failed: {exc}") from exc
    await dlq.mark_dead_letter(letter_id, "replayed")
    return {"id": letter_id, "status": "replayed", "written": result.written, "skipped": result.skipped}


async def dlq_rollback(runtime: Runtime, letter_id: int) -> dict[str, Any]:
    """Undo the letter's batch where its compensation failed: in each such sink, put back
    the state before the write — only where the store still holds that attempt's change
    (a conditional restore with that write's writer token), so a newer version written
    since is never rolled back. The other sinks were undone already."""
    dlq = dead_letter_queue(runtime)
    letter = await dlq.get_dead_letter(letter_id)
    if letter is None:
        raise ApexError(f"no dead letter {letter_id}")
    if letter.status != "open":
        raise ApexError(f"dead letter {letter_id} is {letter.status}, not open")
    if not letter.previous or set(letter.previous) - set(letter.writers):
        raise ApexError(
            f"dead letter {letter_id} holds nothing to roll back (every store was undone already, or it predates "
            "rollback): replay or discard it"
        )
    missing = sorted(set(letter.previous) - set(runtime.saga.sinks))
    if missing:
        raise ApexError(f"dead letter {letter_id} needs sink(s) {', '.join(missing)}, not installed here")
    restored: dict[str, int] = {}
    for name, previous in letter.previous.items():
        try:
            await runtime.saga.sinks[name].restore(previous, writer=letter.writers[name])
        except Exception as exc:
            raise SinkError(f"rollback of dead letter {letter_id} failed in {name}: {exc}") from exc
        restored[name] = len(previous)
    await dlq.mark_dead_letter(letter_id, "rolled_back")
    return {"id": letter_id, "status": "rolled_back", "restored": restored}


async def dlq_discard(runtime: Runtime, letter_id: int) -> dict[str, Any]:
    dlq = dead_letter_queue(runtime)
    letter = await dlq.get_dead_letter(letter_id)
    if letter is None:
        raise ApexError(f"no dead letter {letter_id}")
    await dlq.mark_dead_letter(letter_id, "discarded")
    return {"id": letter_id, "status": "discarded"}
