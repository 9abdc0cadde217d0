"""BatchFileWorkflow and the drop folder against the real Temporal dev server, with an
in-process worker and a line-per-unit fake batch source."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import pytest
from temporalio.client import Client, WorkflowHistory
from temporalio.testing import ActivityEnvironment

from apex_platform import batches
from apex_platform.batches import (
    Dropped,
    FileOutcome,
    file_workflow_id,
    ingest_file,
    record_refs,
    watch_inbox,
)
from apex_platform.contracts import BatchUnit, BatchWarning
from apex_platform.errors import ApexError, PayloadError
from apex_platform.models import InboundEvent, Record, RecordKey
from apex_platform.runtime import Runtime
from apex_platform.safefiles import NOTE_SUFFIX
from apex_platform.temporal import activities, workflows
from apex_platform.temporal.activities import IngestActivities
from apex_platform.temporal.inputs import BatchFileInput, BatchFileResult, FinishFileInput, IngestChunkInput
from apex_platform.temporal.workflows import BatchFileWorkflow
from apex_platform.testing.sinks import CountingSink
from apex_platform.testing.worker import running_worker

pytestmark = pytest.mark.timeout(120)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


class LinesSource:
    """A file is JSON lines; each line is a unit; `#` lines are warnings; a line that is
    not an object fails to parse (but the others go on)."""

    name = "lines"
    mode = "batch"
    priority = "P2"
    settings_model: ClassVar[Any] = None

    def __init__(self, delay: float = 0.0) -> None:
        self.max_line_seen = 0
        self.broken = False  # a connector bug (or missing setting) that a release fixes
        self.delay = delay  # seconds of (blocking) work per unit, split and parse alike

    def split(self, path: Path) -> Iterator[BatchUnit | BatchWarning]:
        if self.broken:
            raise PayloadError(f"{path.name}: this connector version cannot read it")
        with path.open() as fh:
            for n, line in enumerate(fh, 1):
                line = line.strip()
                if not line:
                    continue
                if line.startswith("#"):
                    yield BatchWarning(f"{path.name} line {n}: {line[1:].strip()}")
                    continue
                time.sleep(self.delay)
                yield BatchUnit(id=f"L{n}", payload=line)

    def parse(self, event: InboundEvent) -> list[Record]:
        time.sleep(self.delay)
        try:
            data = json.loads(event.payload)
        except ValueError as exc:
            raise PayloadError(f"line is not JSON: {exc}") from None
        if not isinstance(data, dict) or "id" not in data:
            raise PayloadError("line is not an object with an id")
        return [Record(source="lines", kind="lines.row", id=str(data["id"]), version=1, occurred_at=T0)]

    def read(self, path: Path) -> Iterable[Record]:
        return []


Env = tuple[Runtime, Client, CountingSink]


@pytest.fixture
async def env(apex_temporal_server: Any, apex_postgres_server: Any, tmp_path: Path) -> AsyncIterator[Env]:
    sink = CountingSink()
    async with running_worker(
        apex_temporal_server.address,
        tmp_path / "home",
        sources=[LinesSource()],
        sinks=[sink],
        priorities=["P2"],
        inbox_dsn=apex_postgres_server.dsn,
    ) as harness:
        yield harness.runtime, harness.client, sink


def write_lines(path: Path, n: int, *, bad: set[int] = frozenset(), warn: bool = False) -> Path:  # type: ignore[assignment]
    with path.open("w") as fh:
        if warn:
            fh.write("# GE01 says 2 sets, the group holds 1\n")
        for i in range(n):
            fh.write("[not an object]\n" if i in bad else json.dumps({"id": f"r{i}"}) + "\n")
    return path


async def test_a_file_fans_out_in_chunks_and_keeps_good_units_when_one_is_broken(env: Env, tmp_path: Path) -> None:
    runtime, client, sink = env
    source = runtime.registry.source("lines")
    path = write_lines(tmp_path / "f1.jsonl", 230, bad={7}, warn=True)
    result = await ingest_file(runtime, client, source, path, chunk_size=50)  # type: ignore[arg-type]
    assert result.units == 230
    assert result.failed_units == ("f1.jsonl:L9",)  # line 9: one warning line, then index 7
    assert result.record_count == 229
    assert len(record_refs(runtime, result)) == 229  # every record is listed in the result's blob
    assert len(result.records) == 100  # the result itself carries a sample only
    assert any("GE01" in w for w in result.warnings)
    assert any("L9: not ingested: line is not JSON" in w for w in result.warnings)
    assert len(sink.rows) == 229
    assert sink.writes == 5  # one saga batch per chunk of 50 units

    again = await ingest_file(runtime, client, source, path, chunk_size=50)  # type: ignore[arg-type]
    assert again == result  # the same file is one workflow: the first result
    assert sink.writes == 5


async def test_split_streams_a_large_file_chunk_by_chunk(env: Env, tmp_path: Path) -> None:
    runtime, client, sink = env
    source = runtime.registry.source("lines")
    path = write_lines(tmp_path / "big.jsonl", 3000)
    result = await ingest_file(runtime, client, source, path, chunk_size=200)  # type: ignore[arg-type]
    assert (result.units, len(sink.rows)) == (3000, 3000)
    assert RecordKey("lines", "r2999") in sink.rows
    progress: list[tuple[int, int]] = []
    await ingest_file(runtime, client, source, path, chunk_size=200, on_progress=lambda d, t: progress.append((d, t)))  # type: ignore[arg-type]
    wf = client.get_workflow_handle(
        f"apex:batch:lines:{runtime.codec.blobs.put_file(path).removeprefix('sha256:')[:32]}"
    )
    assert await wf.query("progress") == [15, 15]  # 15 chunks of at most 200 units
    blobs = sorted(p for p in (runtime.core.blob_path).rglob("*") if p.is_file())
    # the file and the listing of its records stay; the 15 chunks and their manifest were
    # dropped once every chunk was written (no workflow needs them any more)
    assert len(blobs) == 2
    assert result.records_ref is not None
    assert len(record_refs(runtime, result)) == 3000


async def test_drop_folder_moves_files_to_done_and_failed_with_reasons(env: Env, tmp_path: Path) -> None:
    runtime, client, sink = env
    source = runtime.registry.source("lines")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    write_lines(inbox / "good.jsonl", 3, warn=True)
    write_lines(inbox / "junk.jsonl", 2, bad={0, 1})
    old = time.time() - 60
    for p in inbox.iterdir():
        os.utime(p, (old, old))
    stop = asyncio.Event()
    seen: list[str] = []

    def on_result(dropped: Dropped) -> None:
        seen.append(dropped.path.name)
        if len(seen) == 2:
            stop.set()

    await asyncio.wait_for(watch_inbox(runtime, client, source, inbox, stop, on_result=on_result, interval=0.2), 60)  # type: ignore[arg-type]
    assert (inbox / "done" / "good.jsonl").exists()
    assert "GE01" in (inbox / "done" / "good.jsonl.reason.txt").read_text()
    assert (inbox / "failed" / "junk.jsonl").exists()
    assert "nothing could be read" in (inbox / "failed" / "junk.jsonl.reason.txt").read_text()
    assert not any(p.is_file() for p in inbox.iterdir())
    assert len(sink.rows) == 3


async def test_a_file_whose_ingest_failed_is_ingested_again_once_fixed(env: Env, tmp_path: Path) -> None:
    """The same file twice is one ingest, but a failed ingest does not bar the file forever."""
    runtime, client, sink = env
    source = runtime.registry.source("lines")
    path = write_lines(tmp_path / "again.jsonl", 10)
    source.broken = True  # type: ignore[attr-defined]
    with pytest.raises(ApexError, match="cannot read it"):
        await ingest_file(runtime, client, source, path)  # type: ignore[arg-type]
    source.broken = False  # type: ignore[attr-defined]
    result = await ingest_file(runtime, client, source, path)  # type: ignore[arg-type]
    assert result.record_count == 10
    assert RecordKey("lines", "r9") in sink.rows
    again = await ingest_file(runtime, client, source, path)  # type: ignore[arg-type]
    assert again == result  # a file that landed is still one ingest


def tagged(n: int, tag: str, *, bad: Iterable[int] = ()) -> list[str]:
    """`n` lines of records whose ids carry `tag` (unique content, so a workflow of this
    test's own), the lines in `bad` broken."""
    broken = set(bad)
    return ["[not an object]" if i in broken else json.dumps({"id": f"{tag}-{i}"}) for i in range(n)]


def write_text(path: Path, lines: list[str], tail: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n" + tail)
    return path


async def runs_of(client: Client, wf_id: str) -> list[WorkflowHistory]:
    """The histories of every run of the latest chain of `wf_id`, first to last (following
    continue-as-new)."""
    desc = await client.get_workflow_handle(wf_id).describe()
    run_id = desc.raw_description.workflow_execution_info.first_run_id
    histories: list[WorkflowHistory] = []
    while run_id:
        history = await client.get_workflow_handle(wf_id, run_id=run_id).fetch_history()
        histories.append(history)
        last = history.events[-1]
        run_id = (
            last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
            if last.HasField("workflow_execution_continued_as_new_event_attributes")
            else ""
        )
    return histories


async def started_input(client: Client, history: WorkflowHistory) -> BatchFileInput:
    """The run's input, decoded (and decrypted) with the client's converter."""
    payloads = history.events[0].workflow_execution_started_event_attributes.input
    (value,) = await client.data_converter.decode_wrapper(payloads, [BatchFileInput])
    assert isinstance(value, BatchFileInput)
    return value


async def test_a_file_in_several_runs_lands_once_and_gives_the_result_of_one_run(env: Env, tmp_path: Path) -> None:
    """A lowered `chunks_per_run` makes a moderate file take several runs joined by
    continue-as-new: every record is written once, each run's history and input stay
    small, and the result (counts, samples, the listing blob itself) is the one a single
    run returns for the same units."""
    runtime, client, sink = env
    source = runtime.registry.source("lines")
    tag = uuid.uuid4().hex[:8]
    bad = range(5, 1230, 10)  # 123 broken units: more failures and warnings than a result lists
    lines = tagged(1230, tag, bad=bad)
    good = [f"{tag}-{i}" for i in range(1230) if i not in bad]
    in_runs = write_text(tmp_path / "a" / "f.jsonl", lines)
    in_one = write_text(tmp_path / "b" / "f.jsonl", lines, tail="\n\n")  # the same units, other bytes

    result = await ingest_file(runtime, client, source, in_runs, chunk_size=30, chunks_per_run=6)  # type: ignore[arg-type]
    assert (result.units, result.failed_count, result.record_count) == (1230, 123, 1107)
    assert (len(result.failed_units), len(result.warnings), len(result.records)) == (100, 100, 100)
    assert result.failed_units[:2] == ("f.jsonl:L6", "f.jsonl:L16")
    assert [r.id for r in record_refs(runtime, result)] == good  # every record, in file order, once
    assert sink.received == Counter(dict.fromkeys(good, 1))
    assert (result.written, result.skipped) == (1107, 0)

    wf_id = file_workflow_id("lines", runtime.codec.blobs.put_file(in_runs))
    runs = await runs_of(client, wf_id)
    assert len(runs) == 7  # 41 chunks, 6 a run
    for n, history in enumerate(runs):
        assert len(history.events) < 80
        progress = (await started_input(client, history)).progress
        assert (progress.next_chunk, progress.run) == (6 * n, n + 1) if progress else n == 0
        size = history.events[0].workflow_execution_started_event_attributes.input.ByteSize()
        assert size < 32_000, f"run {n + 1} started with {size} bytes"  # bounded samples and references only
    assert tuple(await client.get_workflow_handle(wf_id).query(BatchFileWorkflow.progress)) == (41, 41)

    single = await ingest_file(runtime, client, source, in_one, chunk_size=30)  # type: ignore[arg-type]
    assert len(await runs_of(client, file_workflow_id("lines", runtime.codec.blobs.put_file(in_one)))) == 1
    assert single == result  # the very same listing blob too
    assert sink.received == Counter(dict.fromkeys(good, 2))  # the second file wrote each record once more
    # the two files and their (one) listing stay: chunks, manifests, listing parts and the
    # chunks' listings were dropped
    assert runtime.codec.blobs.usage()["blobs"] == 3


async def test_a_run_starts_no_chunk_once_its_history_is_long(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The history bound cuts a run before `chunks_per_run` does (here: at 40 events)."""
    runtime, client, sink = env
    monkeypatch.setattr(workflows, "MAX_HISTORY_EVENTS", 40)
    source = runtime.registry.source("lines")
    tag = uuid.uuid4().hex[:8]
    path = write_text(tmp_path / "long.jsonl", tagged(800, tag))
    result = await ingest_file(runtime, client, source, path, chunk_size=20)  # type: ignore[arg-type]
    assert (result.units, result.record_count) == (800, 800)
    assert sink.received == Counter({f"{tag}-{i}": 1 for i in range(800)})
    runs = await runs_of(client, file_workflow_id("lines", runtime.codec.blobs.put_file(path)))
    assert len(runs) >= 4  # 40 chunks, about 5 history events each
    # the chunks in flight when a run is cut finish, then the checkpoint
    assert all(len(h.events) < 40 + 40 for h in runs), [len(h.events) for h in runs]


@pytest.fixture
async def slow_env(apex_temporal_server: Any, apex_postgres_server: Any, tmp_path: Path) -> AsyncIterator[Env]:
    """Units that take 25 ms each to split and to parse, and a 2 s heartbeat timeout."""
    sink = CountingSink()
    async with running_worker(
        apex_temporal_server.address,
        tmp_path / "home",
        sources=[LinesSource(delay=0.025)],
        sinks=[sink],
        priorities=["P2"],
        inbox_dsn=apex_postgres_server.dsn,
        activity_heartbeat_seconds=2.0,
    ) as harness:
        yield harness.runtime, harness.client, sink


async def test_a_long_split_and_long_chunks_heartbeat(slow_env: Env, tmp_path: Path) -> None:
    """The split (5 s) and each chunk (2.5 s of parsing) take longer than the heartbeat
    timeout: they heartbeat all along, so no attempt times out and none is retried."""
    runtime, client, sink = slow_env
    source = runtime.registry.source("lines")
    tag = uuid.uuid4().hex[:8]
    path = write_text(tmp_path / "slow.jsonl", tagged(200, tag))
    # an activity that does not heartbeat times out and is retried, again and again
    result = await asyncio.wait_for(ingest_file(runtime, client, source, path, chunk_size=100), 60)  # type: ignore[arg-type]
    assert result.record_count == 200
    [history] = await runs_of(client, file_workflow_id("lines", runtime.codec.blobs.put_file(path)))
    attempts = [
        e.activity_task_started_event_attributes.attempt
        for e in history.events
        if e.HasField("activity_task_started_event_attributes")
    ]
    assert attempts == [1, 1, 1, 1, 1]  # split, two chunks, checkpoint, finish: each once
    assert not [e for e in history.events if e.HasField("activity_task_timed_out_event_attributes")]
    assert set(sink.received.values()) == {1}


Drop = Callable[[str, list[str]], Awaitable[Dropped]]


@pytest.fixture
async def drop(env: Env, tmp_path: Path) -> AsyncIterator[Drop]:
    """A drop folder (`tmp_path/inbox`) watched in the background: `await drop(name, lines)`
    writes a file into it and returns what became of it."""
    runtime, client, _ = env
    source = runtime.registry.source("lines")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    seen: asyncio.Queue[Dropped] = asyncio.Queue()
    stop = asyncio.Event()
    watcher = asyncio.create_task(
        watch_inbox(runtime, client, source, inbox, stop, on_result=seen.put_nowait, interval=0.1)  # type: ignore[arg-type]
    )

    async def _drop(name: str, lines: list[str]) -> Dropped:
        path = write_text(inbox / name, lines)
        old = time.time() - 60  # settled: not being written any more
        os.utime(path, (old, old))
        return await asyncio.wait_for(seen.get(), 60)

    yield _drop
    stop.set()
    await asyncio.wait_for(watcher, 30)


def reason(dropped: Dropped) -> str:
    return dropped.moved_to.with_name(dropped.moved_to.name + ".reason.txt").read_text()


async def test_the_drop_folder_ingests_changed_content_and_answers_the_same_content_as_a_duplicate(
    env: Env, drop: Drop, tmp_path: Path
) -> None:
    sink = env[2]
    done = tmp_path / "inbox" / "done"
    tag = uuid.uuid4().hex[:8]
    lines = tagged(5, tag)
    first = await drop("f.jsonl", lines)
    assert (first.outcome, first.moved_to, first.note) == ("ingested", done / "f.jsonl", None)
    assert first.result is not None
    assert first.result.record_count == 5
    assert sink.received == Counter({f"{tag}-{i}": 1 for i in range(5)})
    writes = sink.writes

    again = await drop("f.jsonl", lines)  # the same content again: one ingest
    assert again.outcome == "duplicate"
    assert again.workflow_id == first.workflow_id
    assert again.result == first.result
    assert again.moved_to.parent == done
    assert again.moved_to != first.moved_to  # both kept
    assert reason(again).startswith(f"duplicate: this content was ingested already ({first.workflow_id})")
    assert sink.writes == writes  # nothing written again

    changed = [json.dumps({"id": f"{tag}-fixed"}), *lines[1:], json.dumps({"id": f"{tag}-new"})]
    third = await drop("f.jsonl", changed)  # same name, new content: a new ingest
    assert third.outcome == "ingested"
    assert third.workflow_id != first.workflow_id
    assert third.result is not None
    assert third.result.record_count == 6
    assert third.moved_to.parent == done
    assert third.moved_to not in (first.moved_to, again.moved_to)
    assert sink.received[f"{tag}-fixed"] == sink.received[f"{tag}-new"] == 1
    assert RecordKey("lines", f"{tag}-new") in sink.rows
    assert len([p for p in done.iterdir() if p.suffix == ".jsonl"]) == 3


async def test_the_drop_folder_retries_a_failed_file_and_ingests_it_fixed(env: Env, drop: Drop, tmp_path: Path) -> None:
    runtime, client, sink = env
    failed = tmp_path / "inbox" / "failed"
    source = runtime.registry.source("lines")
    tag = uuid.uuid4().hex[:8]
    lines = tagged(4, tag)

    source.broken = True  # type: ignore[attr-defined]  # the workflow fails (e.g. a connector bug)
    broken = await drop("g.jsonl", lines)
    assert (broken.outcome, broken.moved_to) == ("failed", failed / "g.jsonl")
    assert "cannot read it" in reason(broken)
    assert not sink.received
    source.broken = False  # type: ignore[attr-defined]  # a release fixes it
    retried = await drop("g.jsonl", lines)  # dropped again unchanged: ingested again
    assert retried.outcome == "retried"
    assert retried.moved_to == tmp_path / "inbox" / "done" / "g.jsonl"
    assert f"ingested again: the earlier ingest of this content ({retried.workflow_id}) failed" in reason(retried)
    assert sink.received == Counter({f"{tag}-{i}": 1 for i in range(4)})

    junk = ["[not an object]", "[nor this]"]
    unread = await drop("h.jsonl", junk)  # nothing can be read: the workflow completes, the file failed
    assert (unread.outcome, unread.moved_to) == ("failed", failed / "h.jsonl")
    assert reason(unread).startswith("nothing could be read")
    assert unread.workflow_id is not None
    first_run = (await client.get_workflow_handle(unread.workflow_id).describe()).run_id
    unread_again = await drop("h.jsonl", junk)  # unchanged: read again (a fixed connector might read it)
    assert unread_again.outcome == "failed"
    assert unread_again.moved_to.parent == failed
    assert unread_again.moved_to != unread.moved_to
    assert f"read again: the earlier ingest of this content ({unread.workflow_id})" in reason(unread_again)
    assert (await client.get_workflow_handle(unread.workflow_id).describe()).run_id != first_run

    fixed = await drop("h.jsonl", [json.dumps({"id": f"{tag}-h0"}), junk[1]])  # fixed (in part) and dropped again
    assert fixed.outcome == "ingested"
    assert fixed.result is not None
    assert (fixed.result.record_count, fixed.result.failed_count) == (1, 1)
    assert "h.jsonl:L2: not ingested" in reason(fixed)  # done/, with the file's warnings
    assert sink.received[f"{tag}-h0"] == 1


class Gate:
    """Holds a split at a line (in the split's thread) until opened."""

    def __init__(self, line: str) -> None:
        self.line = line
        self.reached = threading.Event()
        self.opened = threading.Event()

    def split(self, source: LinesSource) -> Callable[[Path], Iterator[BatchUnit | BatchWarning]]:
        plain = source.split

        def split(path: Path) -> Iterator[BatchUnit | BatchWarning]:
            for item in plain(path):
                if isinstance(item, BatchUnit) and item.payload == self.line:
                    self.reached.set()
                    assert self.opened.wait(60), "the gate was never opened"
                yield item

        return split


async def test_a_file_whose_listing_is_another_files_chunk_listing_keeps_it(env: Env, tmp_path: Path) -> None:
    """A file of one chunk lists exactly that chunk's records; a later file extending it
    lists the same records for its first chunk. The blob store is content-addressed:
    finishing the later file must not take the earlier file's listing with its own."""
    runtime, client, _ = env
    source = runtime.registry.source("lines")
    tag = uuid.uuid4().hex[:8]
    lines = tagged(8, tag)
    first = await ingest_file(runtime, client, source, write_text(tmp_path / "a" / "f.jsonl", lines[:4]), chunk_size=4)  # type: ignore[arg-type]
    later = await ingest_file(runtime, client, source, write_text(tmp_path / "b" / "f.jsonl", lines), chunk_size=4)  # type: ignore[arg-type]
    assert [r.id for r in record_refs(runtime, later)] == [f"{tag}-{i}" for i in range(8)]
    assert [r.id for r in record_refs(runtime, first)] == [f"{tag}-{i}" for i in range(4)]  # still readable
    # the two files and their two listings stay; every working blob of either is gone
    assert runtime.codec.blobs.usage()["blobs"] == 4


async def test_a_file_finishing_leaves_the_chunks_of_another_file_in_flight(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two files of the same name, one the other extended, split at the same instant
    (the clock is frozen: their first chunks are the very same bytes, as a file and its
    fixed version can be). The longer one is held in its split, after its first chunk;
    the shorter is ingested meanwhile and finishes. The longer one's chunk and the
    shorter one's listing (the same records) are still there: both land whole."""
    runtime, client, sink = env
    source: LinesSource = runtime.registry.source("lines")  # type: ignore[assignment]

    class Frozen(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Frozen:
            return cls(2026, 3, 1, tzinfo=UTC)

    monkeypatch.setattr(activities, "datetime", Frozen)
    tag = uuid.uuid4().hex[:8]
    lines = tagged(9, tag)
    gate = Gate(lines[6])
    monkeypatch.setattr(source, "split", gate.split(source))
    longer = asyncio.create_task(
        ingest_file(runtime, client, source, write_text(tmp_path / "b" / "f.jsonl", lines), chunk_size=3)  # type: ignore[arg-type]
    )
    try:
        assert await asyncio.to_thread(gate.reached.wait, 30)  # its first two chunks are written
        shorter_path = write_text(tmp_path / "a" / "f.jsonl", lines[:6])
        shorter = await ingest_file(runtime, client, source, shorter_path, chunk_size=3)  # type: ignore[arg-type]
        assert shorter.record_count == 6
    finally:
        gate.opened.set()
    result = await asyncio.wait_for(longer, 60)
    assert (result.units, result.record_count, result.failed_count) == (9, 9, 0)
    assert [r.id for r in record_refs(runtime, result)] == [f"{tag}-{i}" for i in range(9)]  # each once
    assert [r.id for r in record_refs(runtime, shorter)] == [f"{tag}-{i}" for i in range(6)]
    assert sink.received == Counter({f"{tag}-{i}": 2 if i < 6 else 1 for i in range(9)})
    assert runtime.codec.blobs.usage()["blobs"] == 4  # two files, two listings


@pytest.mark.parametrize(
    ("chunks_per_run", "fail_after"),
    [
        (None, 2),  # amid the chunks' listings
        (None, 5),  # the listing part and its list dropped, no chunk yet
        (None, 6),  # amid the chunks
        (2, 4),  # several runs: amid the listing parts
    ],
)
async def test_finish_file_completes_on_retry_after_dropping_part_of_its_inputs(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunks_per_run: int | None, fail_after: int
) -> None:
    """`apex.finish_file` fails once after `fail_after` deletes (a crash part-way through
    its cleanup): the retry completes with the same listing, and drops the rest."""
    runtime, client, sink = env
    source = runtime.registry.source("lines")
    blobs = runtime.codec.blobs
    plain_delete = blobs.delete
    deletes = 0

    def delete(ref: str) -> None:
        nonlocal deletes
        deletes += 1
        if deletes == fail_after + 1:
            raise OSError("injected: the worker died while dropping blobs")
        plain_delete(ref)

    monkeypatch.setattr(blobs, "delete", delete)
    tag = uuid.uuid4().hex[:8]
    path = write_text(tmp_path / "f.jsonl", tagged(9, tag))
    result = await ingest_file(runtime, client, source, path, chunk_size=3, chunks_per_run=chunks_per_run)  # type: ignore[arg-type]
    assert (result.units, result.record_count) == (9, 9)
    assert [r.id for r in record_refs(runtime, result)] == [f"{tag}-{i}" for i in range(9)]
    assert sink.received == Counter({f"{tag}-{i}": 1 for i in range(9)})
    runs = await runs_of(client, file_workflow_id("lines", blobs.put_file(path)))
    finish = [
        e.activity_task_started_event_attributes.attempt
        for e in runs[-1].events
        if e.HasField("activity_task_started_event_attributes")
    ][-1]
    assert finish == 2  # the finish failed once, then completed
    assert deletes > fail_after + 1  # the retry dropped what was left
    assert blobs.usage()["blobs"] == 2  # the file and its listing


async def test_blobs_written_before_they_named_their_workflow_are_read_and_kept(env: Env) -> None:
    """Runs in flight across the upgrade: a chunk, a manifest and a chunk listing written
    without the owner line are read as before, and `finish_file` leaves them to garbage
    collection (they might be another file's as well)."""
    runtime, _, _ = env
    blobs = runtime.codec.blobs
    acts = IngestActivities(runtime.registry, runtime.saga, runtime.codec, runtime.inbox)
    tag = uuid.uuid4().hex[:8]
    events = tuple(
        InboundEvent(
            source="lines", event_id=f"old.jsonl:L{i}", received_at=T0, payload=json.dumps({"id": f"{tag}-{i}"})
        )
        for i in range(3)
    )
    chunk = blobs.put(activities.ChunkFile(events=events).model_dump_json().encode())
    manifest = blobs.put(json.dumps([chunk]).encode())
    env_ = ActivityEnvironment()
    done = await env_.run(
        acts.ingest_chunk,
        IngestChunkInput(source="lines", file_name="old.jsonl", manifest_ref=manifest, index=0, batch_id=f"{tag}#0"),
    )
    assert done.record_count == 3
    assert done.records_ref is not None
    old_listing = "".join(r.model_dump_json() + "\n" for r in done.records).encode()
    legacy = blobs.put(old_listing)  # the listing as the chunk's activity used to write it
    records_ref = await env_.run(
        acts.finish_file,
        FinishFileInput(
            source="lines", file_name="old.jsonl", manifest_ref=manifest, records_refs=(legacy, done.records_ref)
        ),
    )
    assert records_ref is not None
    assert blobs.get(records_ref) == old_listing * 2
    for ref in (chunk, manifest, legacy, done.records_ref):
        assert blobs.get(ref)  # nothing dropped: not one of them is sure to be this workflow's alone


# -- the drop folder against hostile entries -------------------------------------------------


def settle(*paths: Path) -> None:
    """Make entries look written a minute ago (links themselves, not their targets)."""
    old = time.time() - 60
    for path in paths:
        os.utime(path, (old, old), follow_symlinks=False)


async def watch_until(
    env: Env, inbox: Path, count: int, *, within: float = 60, file_timeout: float | None = None
) -> list[Dropped]:
    """Run a watcher over `inbox` until it has taken `count` entries."""
    runtime, client, _ = env
    source = runtime.registry.source("lines")
    seen: list[Dropped] = []
    stop = asyncio.Event()

    def on_result(dropped: Dropped) -> None:
        seen.append(dropped)
        if len(seen) >= count:
            stop.set()

    timeouts = {} if file_timeout is None else {"file_timeout": file_timeout}
    watcher = watch_inbox(runtime, client, source, inbox, stop, on_result=on_result, interval=0.1, **timeouts)  # type: ignore[arg-type]
    await asyncio.wait_for(watcher, within)
    return seen


def notes(inbox: Path) -> str:
    """Every note the watcher wrote (regular files only: a planted link is no note)."""
    return "".join(p.read_text() for p in inbox.rglob(f"*{NOTE_SUFFIX}") if p.is_file() and not p.is_symlink())


def by_name(seen: list[Dropped]) -> dict[str, Dropped]:
    return {d.path.name: d for d in seen}


async def test_the_drop_folder_refuses_links_and_fifos_unread(env: Env, tmp_path: Path) -> None:
    """A link to a file the worker can read (its lines would parse) and a FIFO go to
    failed/ as they are, unread: the target's bytes are in no note and no store; the file
    after them lands."""
    sink = env[2]
    tag = uuid.uuid4().hex[:8]
    secret = write_text(tmp_path / "secret.jsonl", [json.dumps({"id": f"SECRET-{tag}"})])
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a-link.jsonl").symlink_to(secret)
    os.mkfifo(inbox / "b-pipe.jsonl")
    write_text(inbox / "c-next.jsonl", tagged(2, tag))
    settle(*inbox.iterdir())
    seen = by_name(await watch_until(env, inbox, 3))
    failed = inbox / "failed"
    link, pipe, after = seen["a-link.jsonl"], seen["b-pipe.jsonl"], seen["c-next.jsonl"]
    assert (link.outcome, link.moved_to) == ("failed", failed / "a-link.jsonl")
    assert link.moved_to.readlink() == secret  # moved as itself, never followed
    assert link.note == "UnsafeFile: a-link.jsonl: a symbolic link; not followed, nothing read"
    assert (pipe.outcome, pipe.moved_to) == ("failed", failed / "b-pipe.jsonl")
    assert pipe.note == "UnsafeFile: b-pipe.jsonl: a FIFO; nothing read"
    assert after.outcome == "ingested"
    assert f"SECRET-{tag}" not in notes(inbox)
    assert not any("SECRET" in record_id for record_id in sink.received)
    assert sink.received == Counter({f"{tag}-0": 1, f"{tag}-1": 1})


async def test_links_planted_for_done_failed_and_notes_are_never_followed(env: Env, tmp_path: Path) -> None:
    """`done` a link to another folder, `failed/<name>.reason.txt` a dangling link, and
    `done/<name>` a link to a file: nothing is written through any of them, their targets
    are as they were, and the files land beside them."""
    tag = uuid.uuid4().hex[:8]
    inbox, elsewhere = tmp_path / "inbox", tmp_path / "elsewhere"
    (inbox / "failed").mkdir(parents=True)
    elsewhere.mkdir()
    (elsewhere / "good.jsonl").symlink_to(tmp_path / "victim.txt")  # seen through the `done` link
    victim = tmp_path / "victim.txt"
    victim.write_text("victim\n")
    planted = tmp_path / "planted.txt"  # where writing through the dangling link would create a file
    (inbox / "done").symlink_to(elsewhere)
    (inbox / "failed" / f"junk.jsonl{NOTE_SUFFIX}").symlink_to(planted)
    write_text(inbox / "good.jsonl", tagged(2, tag))
    write_text(inbox / "junk.jsonl", ["[not an object]"])
    settle(inbox / "good.jsonl", inbox / "junk.jsonl")
    seen = by_name(await watch_until(env, inbox, 2))
    good, junk = seen["good.jsonl"], seen["junk.jsonl"]
    assert (good.outcome, good.moved_to) == ("ingested", inbox / "done" / "good.jsonl")
    assert not (inbox / "done").is_symlink()
    assert [p.name for p in elsewhere.iterdir()] == ["good.jsonl"]  # the other folder is untouched
    assert victim.read_text() == "victim\n"
    assert [p.readlink() for p in inbox.glob(".done.not-a-folder.*")] == [elsewhere]
    assert junk.outcome == "failed"
    assert junk.moved_to.parent == inbox / "failed"
    assert junk.moved_to.name != "junk.jsonl"  # its note's name was taken: another name
    assert junk.moved_to.with_name(junk.moved_to.name + NOTE_SUFFIX).read_text().startswith("nothing could be read")
    assert not planted.exists()
    assert (inbox / "failed" / f"junk.jsonl{NOTE_SUFFIX}").readlink() == planted


async def test_hostile_file_names_are_escaped_in_notes_and_fitted(env: Env, tmp_path: Path) -> None:
    """A name with a newline, an escape sequence and a bidirectional override cannot forge
    a line of its note; a name that is not UTF-8 is written escaped (not a crash); a name
    as long as a file name can be still gets its note beside it; the next file lands."""
    tag = uuid.uuid4().hex[:8]
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    forged = "a\nnothing could be read: forged\x1b[2J\u202e.jsonl"
    undecodable = os.fsdecode(b"b-\xff\x07.jsonl")
    longest = "c" * 245 + ".jsonl"
    write_text(inbox / forged, [f"[not an object {tag}-a]"])
    write_text(inbox / undecodable, [f"[not an object {tag}-b]"])
    write_text(inbox / longest, tagged(1, tag))
    write_text(inbox / "d-next.jsonl", tagged(1, f"{tag}-next"))
    settle(*inbox.iterdir())
    seen = by_name(await watch_until(env, inbox, 4))
    note = seen[forged].moved_to.with_name(seen[forged].moved_to.name + NOTE_SUFFIX).read_text()
    assert note.count("\n") == 1  # one line: the name's newline is escaped
    assert note.startswith("nothing could be read: a\\nnothing could be read: forged\\x1b[2J\\u202e.jsonl:L1")
    assert seen[forged].moved_to.name == forged  # the file itself keeps its name
    other = seen[undecodable].moved_to
    assert "b-\\xff\\x07.jsonl:L1: not ingested" in other.with_name(other.name + NOTE_SUFFIX).read_text()
    assert seen[longest].outcome == "ingested"
    fitted_name = seen[longest].moved_to.name
    assert len(fitted_name + NOTE_SUFFIX) <= 255
    assert fitted_name.startswith("ccc")
    assert fitted_name.endswith(".jsonl")
    assert seen["d-next.jsonl"].outcome == "ingested"
    assert "\x1b" not in notes(inbox)
    assert "\u202e" not in notes(inbox)


async def test_a_unit_that_fails_validation_is_a_failed_unit_not_retried_forever(env: Env, tmp_path: Path) -> None:
    """A line whose record cannot be (an id over 512 characters: pydantic's
    ValidationError) fails that unit, once, with the reason; the file's other units land
    and the next file is read. It used to be retried forever, holding the folder."""
    tag = uuid.uuid4().hex[:8]
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    write_text(inbox / "a.jsonl", [json.dumps({"id": "x" * 600}), *tagged(2, tag)])
    write_text(inbox / "b.jsonl", tagged(1, f"{tag}-b"))
    settle(*inbox.iterdir())
    seen = by_name(await watch_until(env, inbox, 2, within=45))
    a = seen["a.jsonl"]
    assert a.outcome == "ingested"
    assert a.result is not None
    assert (a.result.record_count, a.result.failed_units) == (2, ("a.jsonl:L1",))
    assert a.note is not None
    assert "a.jsonl:L1: not ingested: invalid Record: id: String should have at most 512 characters" in a.note
    assert seen["b.jsonl"].outcome == "ingested"
    assert env[2].received[f"{tag}-b-0"] == 1


async def test_a_split_that_fails_validation_fails_the_file_at_once(env: Env, tmp_path: Path) -> None:
    """A split that raises a ValidationError (a connector building a model from the file)
    fails the workflow without a retry: the file goes to failed/ naming the field, and the
    next file is read."""
    runtime = env[0]
    source = runtime.registry.source("lines")
    plain = source.split  # type: ignore[attr-defined]

    def split(path: Path) -> Iterator[BatchUnit | BatchWarning]:
        for item in plain(path):
            if isinstance(item, BatchUnit) and item.payload == "[invalid]":
                Record(source="lines", kind="lines.row", id="", version=1, occurred_at=T0)
            yield item

    source.split = split  # type: ignore[attr-defined]
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    tag = uuid.uuid4().hex[:8]
    write_text(inbox / "a.jsonl", [*tagged(1, tag), "[invalid]"])
    write_text(inbox / "b.jsonl", tagged(1, f"{tag}-b"))
    settle(*inbox.iterdir())
    try:
        seen = by_name(await watch_until(env, inbox, 2, within=45))
    finally:
        del source.split  # type: ignore[attr-defined]
    a = seen["a.jsonl"]
    assert (a.outcome, a.moved_to.parent.name) == ("failed", "failed")
    assert a.note is not None
    assert a.note == "ApexError: a.jsonl: ValidationError: invalid Record: id: String should have at least 1 character"
    assert seen["b.jsonl"].outcome == "ingested"


async def test_a_file_that_hangs_is_given_up_on_and_the_next_files_go_on(env: Env, tmp_path: Path) -> None:
    """A split that never returns (held by a gate) is cancelled after the file timeout:
    the file goes to failed/ saying so, its workflow is cancelled, and the files after it
    land meanwhile."""
    runtime, client, sink = env
    source = runtime.registry.source("lines")
    tag = uuid.uuid4().hex[:8]
    gate = Gate(json.dumps({"id": f"{tag}-stuck"}))
    source.split = gate.split(source)  # type: ignore[attr-defined, arg-type]
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    write_text(inbox / "a-stuck.jsonl", [gate.line])
    write_text(inbox / "b.jsonl", tagged(1, f"{tag}-b"))
    write_text(inbox / "c.jsonl", tagged(1, f"{tag}-c"))
    settle(*inbox.iterdir())
    try:
        seen = by_name(await watch_until(env, inbox, 3, within=60, file_timeout=3))
    finally:
        gate.opened.set()
        del source.split  # type: ignore[attr-defined]
    stuck = seen["a-stuck.jsonl"]
    assert (stuck.outcome, stuck.moved_to.parent.name) == ("failed", "failed")
    assert stuck.note is not None
    assert stuck.note.startswith("not ingested within 3s (APEX_FILES_TIMEOUT): its ingest apex:batch:lines:")
    assert "was cancelled and the next files went on" in stuck.note
    wf_id = stuck.note.split("its ingest ")[1].split(" ")[0]
    status = (await client.get_workflow_handle(wf_id).describe()).status
    assert status is not None
    assert status.name == "CANCELED"
    assert seen["b.jsonl"].outcome == seen["c.jsonl"].outcome == "ingested"
    assert sink.received[f"{tag}-b-0"] == sink.received[f"{tag}-c-0"] == 1
    assert f"{tag}-stuck" not in sink.received


async def test_a_file_taken_away_mid_ingest_does_not_bar_its_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file removed while it was being ingested (nothing left to move) is forgotten: a
    file dropped later under the same name is read."""
    inbox = tmp_path / "inbox"
    write_text(inbox / "a.jsonl", ['{"id": 1}'])
    settle(inbox / "a.jsonl")
    calls: list[str] = []

    def drop_again() -> None:
        write_text(inbox / "a.jsonl", ['{"id": 2}'])
        settle(inbox / "a.jsonl")

    async def ingest(runtime: Any, client: Any, source: Any, path: Path, **_: Any) -> FileOutcome:
        calls.append(path.name)
        if len(calls) == 1:
            os.unlink(path)  # taken away by its sender
            asyncio.get_running_loop().call_later(0.3, drop_again)
            raise FileNotFoundError(path)
        result = BatchFileResult(source="lines", file_name=path.name, units=1, record_count=1, written=1)
        return FileOutcome(result, "apex:batch:lines:x", "ingested")

    monkeypatch.setattr(batches, "ingest_file_outcome", ingest)
    stop = asyncio.Event()
    seen: list[Dropped] = []

    def on_result(dropped: Dropped) -> None:
        seen.append(dropped)
        stop.set()

    source = LinesSource()
    await asyncio.wait_for(
        watch_inbox(None, None, source, inbox, stop, on_result=on_result, interval=0.05),  # type: ignore[arg-type]
        30,
    )
    assert calls == ["a.jsonl", "a.jsonl"]
    assert [(d.outcome, d.moved_to.name) for d in seen] == [("ingested", "a.jsonl")]
