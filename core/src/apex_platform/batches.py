"""Ingesting files of batch sources: one `BatchFileWorkflow` per file, and a drop folder.

The workflow id comes from the file's content hash, so the same file dropped twice is
ingested once (the second call returns the first result).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from temporalio.client import Client, WorkflowFailureError
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from apex_platform.contracts import BatchSource
from apex_platform.errors import ApexError, PluginError
from apex_platform.runtime import Runtime
from apex_platform.temporal.client import SOURCE_ATTR, STATUS_ATTR, task_queue
from apex_platform.temporal.inputs import ActivityTimeouts, BatchFileInput, BatchFileResult, RecordRef
from apex_platform.temporal.workflows import BatchFileWorkflow

log = logging.getLogger(__name__)

#: a file younger than this may still be being written into the drop folder
SETTLE_SECONDS = 2.0


def batch_source(runtime: Runtime, name: str) -> BatchSource:
    source = runtime.registry.source(name)
    if not isinstance(source, BatchSource):
        raise PluginError(f"source {name!r} ({source.mode}) does not read files")
    return source


def expand(paths: list[Path]) -> list[Path]:
    """Files as given, and the files of folders (sorted, hidden ones skipped)."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out += sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        elif path.is_file():
            out.append(path)
        else:
            raise ApexError(f"no such file or folder: {path}")
    return out


async def ingest_file(
    runtime: Runtime,
    client: Client,
    source: BatchSource,
    path: Path,
    *,
    chunk_size: int = 500,
    on_progress: Callable[[int, int], None] | None = None,
) -> BatchFileResult:
    ref = await asyncio.to_thread(runtime.codec.blobs.put_file, path)  # an upload, with a shared store
    wf_id = f"apex:batch:{source.name}:{ref.removeprefix('sha256:')[:32]}"
    inp = BatchFileInput(
        source=source.name,
        file_name=path.name,
        file_ref=ref,
        chunk_size=chunk_size,
        timeouts=ActivityTimeouts(
            start_to_close_seconds=runtime.temporal.activity_timeout_seconds,
            heartbeat_seconds=runtime.temporal.activity_heartbeat_seconds,
        ),
    )
    try:
        handle = await client.start_workflow(
            BatchFileWorkflow.run,
            inp,
            id=wf_id,
            task_queue=task_queue(source.priority, runtime.temporal),
            # the same file twice is one ingest; a file whose ingest failed can be ingested again
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
            search_attributes=TypedSearchAttributes(
                [SearchAttributePair(SOURCE_ATTR, source.name), SearchAttributePair(STATUS_ATTR, "batch")]
            ),
        )
    except WorkflowAlreadyStartedError:
        handle = client.get_workflow_handle(wf_id, result_type=BatchFileResult)
    result_task = asyncio.ensure_future(handle.result())
    while not result_task.done():
        if on_progress is not None:
            try:
                done, total = await handle.query(BatchFileWorkflow.progress)
                on_progress(done, total)
            except Exception:  # noqa: BLE001, S110 - progress is cosmetic
                pass
        await asyncio.wait([result_task], timeout=0.5)
    try:
        result: BatchFileResult = result_task.result()
    except WorkflowFailureError as exc:
        raise ApexError(f"{path.name}: {root_cause(exc)}") from None
    return result


def record_refs(runtime: Runtime, result: BatchFileResult) -> list[RecordRef]:
    """Every record a file produced (the result itself carries a sample only)."""
    if result.records_ref is None:
        return list(result.records)
    data = runtime.codec.blobs.get(result.records_ref)
    return [RecordRef.model_validate_json(line) for line in data.splitlines() if line.strip()]


def root_cause(exc: BaseException) -> str:
    """The innermost message of a Temporal failure chain (what the connector said)."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return str(exc) or type(exc).__name__


def _settled(path: Path) -> bool:
    try:
        return time.time() - path.stat().st_mtime >= SETTLE_SECONDS
    except FileNotFoundError:
        return False


def _move(path: Path, folder: Path, reason: str | None) -> Path:
    """Move a processed file aside (never delete it); a name clash gets a time suffix."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / path.name
    if target.exists():
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        target = folder / f"{path.stem}.{stamp}{path.suffix}"
    shutil.move(str(path), target)
    if reason is not None:
        target.with_name(target.name + ".reason.txt").write_text(reason + "\n")
    return target


async def watch_inbox(
    runtime: Runtime,
    client: Client,
    source: BatchSource,
    inbox: Path,
    stop: asyncio.Event,
    *,
    interval: float = 2.0,
    on_result: Callable[[Path, BatchFileResult | None, str | None], None] | None = None,
) -> None:
    """Ingest every file dropped into `inbox`; move it to `done/` or `failed/` (with a
    `.reason.txt` next to it). Files still being written (modified in the last seconds)
    wait for the next pass."""

    def listing() -> list[Path]:
        inbox.mkdir(parents=True, exist_ok=True)
        return sorted(p for p in inbox.iterdir() if p.is_file() and not p.name.startswith("."))

    done, failed = inbox / "done", inbox / "failed"
    while not stop.is_set():
        for path in await asyncio.to_thread(listing):
            if stop.is_set() or not _settled(path):
                continue
            try:
                result = await ingest_file(runtime, client, source, path)
            except Exception as exc:  # noqa: BLE001 - one bad file must not stop the folder
                reason = f"{type(exc).__name__}: {exc}"
                log.error("%s: %s", path, reason)
                _move(path, failed, reason)
                if on_result:
                    on_result(path, None, reason)
                continue
            if result.units == 0 or result.failed_count == result.units:
                reason = "nothing could be read: " + "; ".join(result.warnings[:20])
                _move(path, failed, reason)
                if on_result:
                    on_result(path, result, reason)
                continue
            warnings = "\n".join(result.warnings) if result.warnings else None
            _move(path, done, warnings)
            if on_result:
                on_result(path, result, None)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
