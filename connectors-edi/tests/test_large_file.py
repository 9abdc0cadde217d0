"""A 50,000-set X12 214 file end to end through core's BatchFileWorkflow (real Temporal
dev server, in-process worker with the inbox in the session's PostgreSQL, a memory
sink), in several runs joined by continue-as-new: every set lands once, the result's
counts and listing agree, every run's history stays short and nothing near the payload
guard's limit crosses Temporal."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from apex_connector_edi import EdiConnector, EdiSettings, samples
from apex_platform.batches import file_workflow_id, ingest_file, record_refs
from apex_platform.models import RecordKey
from apex_platform.temporal.client import PayloadGuard, find_codec
from apex_platform.temporal.workflows import BatchFileWorkflow
from apex_platform.testing.pytest_plugin import guard_violations
from apex_platform.testing.sinks import CountingSink
from apex_platform.testing.worker import WorkerHarness, running_worker

SETS = 50_000
LIMIT = 131072


Env = tuple[WorkerHarness, EdiConnector, CountingSink]


@pytest.fixture
async def env(apex_temporal_server: Any, apex_postgres_server: Any, tmp_path: Path) -> AsyncIterator[Env]:
    source = EdiConnector(EdiSettings())
    sink = CountingSink()
    async with running_worker(
        apex_temporal_server.address,
        tmp_path / "home",
        sources=[source],
        sinks=[sink],
        priorities=["P2"],
        inbox_dsn=apex_postgres_server.dsn,
    ) as harness:
        yield harness, source, sink


def status_id(n: int) -> str:
    """The record id of set `n` of `samples.write_statuses` (SCAC, shipment id, status, time)."""
    return f"APXL:SH{700000 + n}:X6:202603010915"


@pytest.mark.slow
@pytest.mark.timeout(900)
async def test_a_file_of_50000_sets_lands_every_set_exactly_once(env: Env, tmp_path: Path) -> None:
    """50,000 214 sets in one file, 100 chunks, 40 chunks a run (3 runs): 50,000 records,
    each written once, listed once in the result's blob; each run's history stays far
    under 10,000 events and every event far below the payload guard's limit."""
    harness, source, sink = env
    runtime, client = harness.runtime, harness.client
    path = samples.write_statuses(tmp_path / "apxl-214-large.x12", SETS)
    with path.open("a") as fh:  # unique content, so the workflow id (from the hash) is this run's
        fh.write("\n" + " " * (uuid.uuid4().int % 1000 + 1) + "\n")
    assert path.stat().st_size > 12 * 1024 * 1024  # ~260 bytes a set
    before = guard_violations()

    started = time.monotonic()
    task = asyncio.ensure_future(ingest_file(runtime, client, source, path, chunks_per_run=40))
    while not task.done():  # a refused payload would be retried for ever: fail at once instead
        assert guard_violations() == before, f"payload guard tripped: {guard_violations()[len(before) :][:1]}"
        await asyncio.wait([task], timeout=0.5)
    result = task.result()
    elapsed = time.monotonic() - started

    assert (result.units, result.failed_count, result.failed_units) == (SETS, 0, ())
    assert result.warnings == ()
    assert result.record_count == SETS
    assert len(result.records) == 100  # a sample; the rest is in the listing
    listed = record_refs(runtime, result)
    assert len(listed) == result.record_count
    assert Counter(r.id for r in listed) == Counter({status_id(n): 1 for n in range(1, SETS + 1)})
    assert {r.kind for r in listed} == {"edi.shipment_status"}
    assert {r.id for r in result.records} <= {r.id for r in listed}

    assert len(sink.rows) == SETS
    assert set(sink.rows) == {RecordKey("edi", status_id(n)) for n in range(1, SETS + 1)}
    assert len(sink.received) == SETS
    assert set(sink.received.values()) == {1}  # exactly once
    assert (result.written, result.skipped) == (SETS, 0)
    assert sink.writes == SETS // 500  # one saga batch per chunk of 500 sets

    codec = find_codec(runtime.client.data_converter, PayloadGuard) if runtime.client else None
    assert codec is not None  # the worker ran behind the guard
    assert codec.limit == LIMIT
    assert guard_violations() == before

    handle = client.get_workflow_handle(file_workflow_id("edi", runtime.codec.blobs.put_file(path)))
    assert tuple(await handle.query(BatchFileWorkflow.progress)) == (SETS // 500, SETS // 500)
    run_id = (await handle.describe()).raw_description.workflow_execution_info.first_run_id
    lengths: list[int] = []
    largest = 0
    while run_id:  # every run of the file, following continue-as-new
        history = await client.get_workflow_handle(handle.id, run_id=run_id).fetch_history()
        lengths.append(len(history.events))
        largest = max(largest, *(event.ByteSize() for event in history.events))
        last = history.events[-1]
        run_id = last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
    assert len(lengths) == 3  # 40 + 40 + 20 chunks
    assert max(lengths) < 1_000
    assert largest < LIMIT, f"a history event of {largest} bytes"
    # chunk blobs, the manifest and the listing parts are gone once the file is in: the
    # file and its listing stay
    assert runtime.codec.blobs.usage()["blobs"] == 2
    print(f"{SETS} sets ingested in {elapsed:.1f}s, runs of {lengths} history events, largest {largest} B")
