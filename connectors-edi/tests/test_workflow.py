"""End to end through core's BatchFileWorkflow: real Temporal dev server, in-process
worker, the EDI connector, a MemorySink."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from apex_connector_edi import EdiConnector, EdiSettings, samples
from apex_platform.batches import Dropped, file_workflow_id, ingest_file, record_refs, watch_inbox
from apex_platform.errors import ApexError
from apex_platform.models import InboundEvent, RecordKey
from apex_platform.runtime import Runtime
from apex_platform.saga import SagaSettings
from apex_platform.temporal.activities import MAX_EVENT_ID, unit_event_id
from apex_platform.testing.sinks import MemorySink
from apex_platform.testing.worker import running_worker

pytestmark = pytest.mark.timeout(180)

Env = tuple[Runtime, Client, MemorySink, EdiConnector]


@pytest.fixture
async def env(apex_temporal_server: Any, apex_postgres_server: Any, tmp_path: Path) -> AsyncIterator[Env]:
    sink = MemorySink("memory")
    source = EdiConnector(EdiSettings())
    async with running_worker(
        apex_temporal_server.address,
        tmp_path / "home",
        sources=[source],
        sinks=[sink],
        priorities=["P2"],
        prefix=f"edi{uuid.uuid4().hex[:8]}",
        saga=SagaSettings(retry_attempts=1, retry_initial_seconds=0.01),
        inbox_dsn=apex_postgres_server.dsn,
    ) as harness:
        yield harness.runtime, harness.client, sink, source


def unique_copy(sample: Path, folder: Path) -> Path:
    """The sample with trailing whitespace unique to this run: the workflow id comes from
    the content, and other tests of the session may have ingested the sample already."""
    path = folder / sample.name
    path.write_bytes(sample.read_bytes() + unique_tail())
    return path


def unique_tail() -> bytes:
    bits = format(uuid.uuid4().int, "0128b")
    return b"\n" + bits.replace("0", " ").replace("1", "\n").encode()


async def test_samples_land_with_their_warnings(env: Env, sample_214: Path, sample_210: Path, tmp_path: Path) -> None:
    runtime, client, sink, source = env
    sample_214, sample_210 = unique_copy(sample_214, tmp_path), unique_copy(sample_210, tmp_path)
    result = await ingest_file(runtime, client, source, sample_214)
    assert (result.units, result.failed_units) == (1, ())
    assert result.record_count == 1
    assert [(r.kind, r.id) for r in result.records] == [("edi.shipment_status", "BAWC:123456:X3:199709250830")]
    assert any(
        "interchange 000000263, group 000000001: GE01 says 2 sets but the group holds 1" in w for w in result.warnings
    )
    stored = sink.rows[RecordKey("edi", "BAWC:123456:X3:199709250830")]
    assert stored.attributes["location"]["city"] == "DECORAH"

    invoice = await ingest_file(runtime, client, source, sample_210)
    assert invoice.record_count == 1
    assert [r.id for r in invoice.records] == ["NLMI:3410889"]
    assert sink.rows[RecordKey("edi", "NLMI:3410889")].attributes["amount_due"] == "51.65"
    assert any("GS01 is 'IN'" in w for w in invoice.warnings)

    again = await ingest_file(runtime, client, source, sample_210)
    assert again == invoice  # the same file is one workflow
    assert len(sink.rows) == 2


async def test_files_of_older_releases_land_with_their_own_layouts(env: Env, tmp_path: Path) -> None:
    """A 003070 214 (AT7 with its century) and a 003040 214 (Q5 statuses) through the
    workflow: the statuses land at their real instants, not at midnight."""
    runtime, client, sink, source = env
    releases = Path(__file__).parent / "data" / "releases"
    at7 = await ingest_file(runtime, client, source, unique_copy(releases / "214_003070.x12", tmp_path))
    q5 = await ingest_file(runtime, client, source, unique_copy(releases / "214_003040.x12", tmp_path))
    assert (at7.units, at7.failed_units, at7.record_count, at7.warnings) == (2, (), 3, ())
    assert (q5.units, q5.failed_units, q5.record_count, q5.warnings) == (2, (), 2, ())
    x3 = sink.rows[RecordKey("edi", "BAWC:123456:X3:199709250830")]
    assert x3.occurred_at == datetime(1997, 9, 25, 13, 30, tzinfo=UTC)
    assert x3.attributes["status"]["layout"] == "AT7 003070"
    af = sink.rows[RecordKey("edi", "ODFL:BOL55120:AF:199907141430")]
    assert af.occurred_at == datetime(1999, 7, 14, 19, 30, tzinfo=UTC)


async def test_a_large_file_with_a_broken_set_fans_out(env: Env, tmp_path: Path) -> None:
    runtime, client, sink, source = env
    path = samples.write_statuses(tmp_path / "many.x12", 1000)
    text = path.read_text()
    broken = text.replace("ST*214*0500~\n", "ST*214*0500~\nB10*\x07\x07*not*x12~\n\x01~\n", 1)
    path.write_text(broken)
    result = await ingest_file(runtime, client, source, path, chunk_size=100)
    assert result.units == 999
    assert result.record_count == 999
    assert len(result.records) == 100  # a sample; every record is in the listing
    listed = record_refs(runtime, result)
    assert len(listed) == 999
    assert {r.id for r in listed} == {f"APXL:SH{700000 + n}:X6:202603010915" for n in range(1, 1001) if n != 500}
    assert {r.id for r in result.records} <= {r.id for r in listed}
    assert any("set 0500 (214): not read" in w for w in result.warnings)
    assert not any("GE01" in w for w in result.warnings)  # the broken set still counts as a set
    assert RecordKey("edi", "APXL:SH700999:X6:202603010915") in sink.rows
    assert RecordKey("edi", "APXL:SH700500:X6:202603010915") not in sink.rows
    assert sink.writes == 10  # one saga batch per chunk of 100 sets


async def test_a_file_that_is_not_x12_fails_the_workflow(env: Env, tmp_path: Path) -> None:
    runtime, client, _sink, source = env
    path = tmp_path / "letter.txt"
    path.write_text("Dear carrier,\nplease find the invoice attached.\n")
    # the workflow fails; ingest_file names the file and the connector's own reason
    with pytest.raises(ApexError, match=r"letter\.txt: .*not an X12 interchange: expected 'ISA'"):
        await ingest_file(runtime, client, source, path)


async def test_the_drop_folder_retries_a_failed_file_ingests_it_fixed_and_a_resent_file_once(
    env: Env, sample_214: Path, tmp_path: Path
) -> None:
    """A carrier's file: broken (not X12) → failed/ with the connector's reason; dropped
    again unchanged → read again (a new run), failed again; fixed → done/, its status
    lands; sent again → a duplicate, nothing written again; the same name with one more
    set (changed content) → ingested, the new status lands."""
    runtime, client, sink, source = env
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    seen: asyncio.Queue[Dropped] = asyncio.Queue()
    stop = asyncio.Event()
    watcher = asyncio.create_task(
        watch_inbox(runtime, client, source, inbox, stop, on_result=seen.put_nowait, interval=0.1)
    )

    async def drop(data: bytes) -> Dropped:
        path = inbox / "apxl-214.x12"
        path.write_bytes(data)
        old = time.time() - 60  # settled
        os.utime(path, (old, old))
        return await asyncio.wait_for(seen.get(), 60)

    def reason(dropped: Dropped) -> str:
        return dropped.moved_to.with_name(dropped.moved_to.name + ".reason.txt").read_text()

    good = unique_copy(sample_214, tmp_path).read_bytes()
    broken = b"ISB" + good[3:]  # a damaged header: nothing of it can be read
    failed = await drop(broken)
    assert (failed.outcome, failed.moved_to) == ("failed", inbox / "failed" / "apxl-214.x12")
    assert "not an X12 interchange: expected 'ISA'" in reason(failed)
    wf_id = file_workflow_id("edi", runtime.codec.blobs.put_file(failed.moved_to))
    first_run = (await client.get_workflow_handle(wf_id).describe()).run_id
    again = await drop(broken)
    assert again.outcome == "failed"
    assert again.moved_to.parent == inbox / "failed"
    assert (await client.get_workflow_handle(wf_id).describe()).run_id != first_run  # it was read again
    assert not sink.rows

    fixed = await drop(good)
    assert (fixed.outcome, fixed.moved_to) == ("ingested", inbox / "done" / "apxl-214.x12")
    assert "GE01 says 2 sets but the group holds 1" in reason(fixed)  # the file's warnings
    assert RecordKey("edi", "BAWC:123456:X3:199709250830") in sink.rows
    writes = sink.writes

    resent = await drop(good)
    assert resent.outcome == "duplicate"
    assert resent.result == fixed.result
    assert resent.moved_to.parent == inbox / "done"
    assert reason(resent).startswith(f"duplicate: this content was ingested already ({fixed.workflow_id})")
    assert sink.writes == writes  # nothing written again

    samples.write_statuses(tmp_path / "more.x12", 3)
    more = await drop((tmp_path / "more.x12").read_bytes() + unique_tail())
    assert more.outcome == "ingested"
    assert more.workflow_id != fixed.workflow_id
    assert more.result is not None
    assert more.result.record_count == 3
    assert RecordKey("edi", "APXL:SH700003:X6:202603010915") in sink.rows
    assert len(list((inbox / "done").glob("*.x12"))) == 3
    stop.set()
    await asyncio.wait_for(watcher, 30)


def long_control_numbers(text: str, n: int = 300) -> str:
    """The 214 sample with its interchange, group and set control numbers `n` digits long."""
    isa, gs, st = "9" * n, "8" * n, "7" * n
    return (
        text.replace("*000000263*", f"*{isa}*")
        .replace("IEA*1*000000263", f"IEA*1*{isa}")
        .replace("*000000001*X*", f"*{gs}*X*")
        .replace("GE*2*000000001", f"GE*2*{gs}")
        .replace("ST*214*0006", f"ST*214*{st}")
        .replace("SE*12*0006", f"SE*12*{st}")
    )


def write_drops(inbox: Path, sample: Path, files: dict[str, Callable[[str], str]]) -> None:
    """Files made of `sample` (changed, each with a unique tail) in `inbox`, settled."""
    inbox.mkdir(parents=True, exist_ok=True)
    text = sample.read_text()
    old = time.time() - 60
    for name, change in files.items():
        path = inbox / name
        path.write_bytes(change(text).encode() + unique_tail())
        os.utime(path, (old, old))


def test_unit_event_ids_are_bounded_whatever_the_name_and_control_numbers() -> None:
    """A 300-character file name or control numbers give an event id InboundEvent takes
    (at most 256 characters), stable, and different for different units."""
    name, unit = "n" * 300 + ".x12", ":".join(["9" * 300] * 3)
    event_id = unit_event_id(name, unit)
    assert len(event_id) <= MAX_EVENT_ID == 256
    assert event_id == unit_event_id(name, unit)
    assert event_id != unit_event_id(name, unit + "#2")
    InboundEvent(source="edi", event_id=event_id, received_at=datetime.now(UTC))


async def test_over_long_control_numbers_and_names_never_stall_the_drop_folder(
    env: Env, sample_214: Path, tmp_path: Path
) -> None:
    """Control numbers of 300 digits, and a file name as long as one can be (255 bytes):
    each file lands, its units' event ids bounded (a hash keeps them apart), its note
    beside it; and the file after them is read."""
    runtime, client, sink, source = env
    inbox = tmp_path / "inbox"
    longest = "b" * 251 + ".x12"
    write_drops(inbox, sample_214, {"a-control.x12": long_control_numbers, longest: str, "c-next.x12": str})
    seen: dict[str, Dropped] = {}
    stop = asyncio.Event()

    def on_result(dropped: Dropped) -> None:
        seen[dropped.path.name] = dropped
        if len(seen) == 3:
            stop.set()

    await asyncio.wait_for(watch_inbox(runtime, client, source, inbox, stop, on_result=on_result, interval=0.1), 90)
    assert {name: d.outcome for name, d in seen.items()} == {
        "a-control.x12": "ingested",
        longest: "ingested",
        "c-next.x12": "ingested",
    }
    for dropped in seen.values():
        assert dropped.result is not None
        assert (dropped.result.units, dropped.result.failed_count, dropped.result.record_count) == (1, 0, 1)
        assert dropped.moved_to.parent == inbox / "done"
        note = dropped.moved_to.with_name(dropped.moved_to.name + ".reason.txt")
        assert "GE01 says 2 sets but the group holds 1" in note.read_text()  # the sample's own warning
    assert len(seen[longest].moved_to.name + ".reason.txt") <= 255
    origins = {row["origin"] for row in await runtime.inbox.lineage("edi", "BAWC:123456:X3:199709250830", limit=50)}
    long_ids = [o.removeprefix("file:") for o in origins if o.startswith(("file:a-control.x12:", "file:bbbbbbbb"))]
    assert len(long_ids) == 2
    assert all(len(event_id) <= MAX_EVENT_ID for event_id in long_ids)
    assert RecordKey("edi", "BAWC:123456:X3:199709250830") in sink.rows
