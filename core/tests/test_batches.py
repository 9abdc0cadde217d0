"""BatchFileWorkflow and the drop folder against the real Temporal dev server, with an
in-process worker and a line-per-unit fake batch source."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import pytest
from temporalio.client import Client

from apex_platform.batches import ingest_file, record_refs, watch_inbox
from apex_platform.contracts import BatchUnit, BatchWarning
from apex_platform.errors import ApexError, PayloadError
from apex_platform.models import InboundEvent, Record, RecordKey
from apex_platform.runtime import Runtime
from apex_platform.testing.sinks import MemorySink
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

    def __init__(self) -> None:
        self.max_line_seen = 0
        self.broken = False  # a connector bug (or missing setting) that a release fixes

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
                yield BatchUnit(id=f"L{n}", payload=line)

    def parse(self, event: InboundEvent) -> list[Record]:
        try:
            data = json.loads(event.payload)
        except ValueError as exc:
            raise PayloadError(f"line is not JSON: {exc}") from None
        if not isinstance(data, dict) or "id" not in data:
            raise PayloadError("line is not an object with an id")
        return [Record(source="lines", kind="lines.row", id=str(data["id"]), version=1, occurred_at=T0)]

    def read(self, path: Path) -> Iterable[Record]:
        return []


@pytest.fixture
async def env(
    apex_temporal_server: Any, apex_postgres_server: Any, tmp_path: Path
) -> AsyncIterator[tuple[Runtime, Client, MemorySink]]:
    sink = MemorySink("memory")
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


async def test_a_file_fans_out_in_chunks_and_keeps_good_units_when_one_is_broken(
    env: tuple[Runtime, Client, MemorySink], tmp_path: Path
) -> None:
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


async def test_split_streams_a_large_file_chunk_by_chunk(
    env: tuple[Runtime, Client, MemorySink], tmp_path: Path
) -> None:
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


async def test_drop_folder_moves_files_to_done_and_failed_with_reasons(
    env: tuple[Runtime, Client, MemorySink], tmp_path: Path
) -> None:
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

    def on_result(path: Path, result: Any, reason: str | None) -> None:
        seen.append(path.name)
        if len(seen) == 2:
            stop.set()

    await asyncio.wait_for(watch_inbox(runtime, client, source, inbox, stop, on_result=on_result, interval=0.2), 60)  # type: ignore[arg-type]
    assert (inbox / "done" / "good.jsonl").exists()
    assert "GE01" in (inbox / "done" / "good.jsonl.reason.txt").read_text()
    assert (inbox / "failed" / "junk.jsonl").exists()
    assert "nothing could be read" in (inbox / "failed" / "junk.jsonl.reason.txt").read_text()
    assert not any(p.is_file() for p in inbox.iterdir())
    assert len(sink.rows) == 3


async def test_a_file_whose_ingest_failed_is_ingested_again_once_fixed(
    env: tuple[Runtime, Client, MemorySink], tmp_path: Path
) -> None:
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
