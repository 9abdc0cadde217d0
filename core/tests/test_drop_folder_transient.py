"""A drop-folder file whose ingest meets an unreachable Temporal (restarting, a network
blip) stays in the folder and is ingested at a later pass — it is not moved to `failed/`
as if the file were at fault. Found by the chaos harness (tests/chaos): a Temporal restart
sent a file to failed/ while its workflow had started and its records landed."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import pytest
from temporalio.service import RPCError, RPCStatusCode

from apex_platform import batches
from apex_platform.batches import Dropped, FileOutcome, watch_inbox
from apex_platform.temporal.inputs import BatchFileResult


class _Source:
    name = "lines"


@pytest.mark.parametrize("status", [RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.UNKNOWN])
async def test_a_file_meeting_an_unreachable_temporal_stays_and_is_ingested_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, status: RPCStatusCode
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a.jsonl").write_text('{"id": 1}\n')
    old = time.time() - 60
    os.utime(inbox / "a.jsonl", (old, old))
    calls: list[str] = []

    async def ingest(runtime: Any, client: Any, source: Any, path: Path, **_: Any) -> FileOutcome:
        calls.append(path.name)
        if len(calls) < 3:
            assert os.path.exists(path)  # noqa: ASYNC240 - still in the drop folder, not in failed/
            raise RPCError("tcp connect error", status, b"")
        result = BatchFileResult(source="lines", file_name=path.name, units=1, record_count=1, written=1)
        return FileOutcome(result, "apex:batch:lines:x", "ingested")

    monkeypatch.setattr(batches, "ingest_file_outcome", ingest)
    stop = asyncio.Event()
    seen: list[Dropped] = []

    def on_result(dropped: Dropped) -> None:
        seen.append(dropped)
        stop.set()

    await asyncio.wait_for(
        watch_inbox(None, None, _Source(), inbox, stop, on_result=on_result, interval=0.05),  # type: ignore[arg-type]
        30,
    )
    assert calls == ["a.jsonl"] * 3
    assert [d.outcome for d in seen] == ["ingested"]
    assert (inbox / "done" / "a.jsonl").exists()
    assert not (inbox / "failed").exists() or not any((inbox / "failed").iterdir())


async def test_a_file_refused_by_temporal_for_another_reason_still_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "b.jsonl").write_text('{"id": 1}\n')
    old = time.time() - 60
    os.utime(inbox / "b.jsonl", (old, old))

    async def ingest(*_: Any, **__: Any) -> FileOutcome:
        raise RPCError("namespace not found", RPCStatusCode.NOT_FOUND, b"")

    monkeypatch.setattr(batches, "ingest_file_outcome", ingest)
    stop = asyncio.Event()
    seen: list[Dropped] = []

    def on_result(dropped: Dropped) -> None:
        seen.append(dropped)
        stop.set()

    await asyncio.wait_for(
        watch_inbox(None, None, _Source(), inbox, stop, on_result=on_result, interval=0.05),  # type: ignore[arg-type]
        30,
    )
    assert [d.outcome for d in seen] == ["failed"]
    assert (inbox / "failed" / "b.jsonl").exists()
