"""Ingesting files of batch sources: one `BatchFileWorkflow` per file, and a drop folder.

The workflow id comes from the file's content hash (`file_workflow_id`), so:

- new content (a new file, or a file of the same name changed) is a new ingest;
- the same content again is one ingest: the answer is the first ingest's result (a
  duplicate; nothing is written again), also while the first is still running;
- the same content after an ingest that failed (the workflow failed, or nothing in the
  file could be read) is ingested again: a retry.

Temporal remembers closed workflows for its retention only: the same content dropped
after that is ingested anew (the sinks keep the versions they hold, nothing changes).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

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


def file_workflow_id(source: str, file_ref: str) -> str:
    """The workflow of a file: its source and its content's hash (the blob reference)."""
    return f"apex:batch:{source}:{file_ref.removeprefix('sha256:')[:32]}"


def landed(result: BatchFileResult) -> bool:
    """Whether anything of the file was read (else the file failed, and is read again when
    dropped again, even unchanged)."""
    return result.units > 0 and result.failed_count < result.units


@dataclass(frozen=True)
class FileOutcome:
    """What `ingest_file_outcome` did with one file."""

    result: BatchFileResult
    workflow_id: str
    #: `ingested`: content not seen before; `retried`: this content's earlier ingest failed
    #: (or read nothing) and ran again; `duplicate`: this content was ingested already (or
    #: is being): the result is that ingest's, nothing was written again
    outcome: Literal["ingested", "retried", "duplicate"]
    #: the status of the earlier ingest of this content (`FAILED`, `COMPLETED`…), if any
    earlier: str | None = None


async def _status(client: Client, wf_id: str) -> WorkflowExecutionStatus | None:
    """The status of the latest run of `wf_id`, None when Temporal knows no such workflow."""
    try:
        status = (await client.get_workflow_handle(wf_id).describe()).status
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    return status


async def ingest_file(
    runtime: Runtime,
    client: Client,
    source: BatchSource,
    path: Path,
    *,
    chunk_size: int = 500,
    chunks_per_run: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> BatchFileResult:
    """Ingest one file (see the module's docstring for what the same content twice does)."""
    outcome = await ingest_file_outcome(
        runtime, client, source, path, chunk_size=chunk_size, chunks_per_run=chunks_per_run, on_progress=on_progress
    )
    return outcome.result


async def ingest_file_outcome(
    runtime: Runtime,
    client: Client,
    source: BatchSource,
    path: Path,
    *,
    chunk_size: int = 500,
    chunks_per_run: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> FileOutcome:
    """`ingest_file`, saying whether the file was new, a retry or a duplicate.
    `chunks_per_run` bounds the chunks one workflow run ingests before it continues as
    new (the workflow's default otherwise)."""
    ref = await asyncio.to_thread(runtime.codec.blobs.put_file, path)  # an upload, with a shared store
    wf_id = file_workflow_id(source.name, ref)
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
    if chunks_per_run is not None:
        inp = inp.model_copy(update={"chunks_per_run": chunks_per_run})
    earlier = await _status(client, wf_id)
    # the same content twice is one ingest; content whose ingest failed is ingested again
    policy = WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY
    if earlier == WorkflowExecutionStatus.COMPLETED:
        previous: BatchFileResult = await client.get_workflow_handle(wf_id, result_type=BatchFileResult).result()
        if landed(previous):
            return FileOutcome(previous, wf_id, "duplicate", earlier.name)
        policy = WorkflowIDReusePolicy.ALLOW_DUPLICATE  # nothing of it could be read: read it again
    outcome: Literal["ingested", "retried", "duplicate"] = "ingested" if earlier is None else "retried"
    try:
        handle = await client.start_workflow(
            BatchFileWorkflow.run,
            inp,
            id=wf_id,
            task_queue=task_queue(source.priority, runtime.temporal),
            id_reuse_policy=policy,
            search_attributes=TypedSearchAttributes(
                [SearchAttributePair(SOURCE_ATTR, source.name), SearchAttributePair(STATUS_ATTR, "batch")]
            ),
        )
    except WorkflowAlreadyStartedError:  # being ingested (or just was, by another caller)
        handle = client.get_workflow_handle(wf_id, result_type=BatchFileResult)
        outcome = "duplicate"
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
    return FileOutcome(result, wf_id, outcome, earlier.name if earlier is not None else None)


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
    if target.exists() or target.with_name(target.name + ".reason.txt").exists():
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        target = folder / f"{path.stem}.{stamp}{path.suffix}"
    shutil.move(str(path), target)
    if reason is not None:
        target.with_name(target.name + ".reason.txt").write_text(reason + "\n")
    return target


@dataclass(frozen=True)
class Dropped:
    """A file the drop folder took: where it went and why."""

    #: where it was dropped
    path: Path
    #: where it is now: in `done/` (its content is in the stores) or `failed/`
    moved_to: Path
    #: `ingested`, `retried` (the earlier ingest of this content had failed), `duplicate`
    #: (this content was ingested already: nothing written again) or `failed`
    outcome: Literal["ingested", "retried", "duplicate", "failed"]
    result: BatchFileResult | None
    #: what its `.reason.txt` says (None: there is none)
    note: str | None
    workflow_id: str | None = None


def _note(outcome: FileOutcome) -> list[str]:
    if outcome.outcome == "duplicate":
        return [f"duplicate: this content was ingested already ({outcome.workflow_id}); nothing written again"]
    if outcome.outcome == "retried":
        if outcome.earlier == WorkflowExecutionStatus.COMPLETED.name:
            return [f"read again: the earlier ingest of this content ({outcome.workflow_id}) read nothing"]
        earlier = (outcome.earlier or "failed").lower().replace("_", " ")
        return [f"ingested again: the earlier ingest of this content ({outcome.workflow_id}) {earlier}"]
    return []


async def watch_inbox(
    runtime: Runtime,
    client: Client,
    source: BatchSource,
    inbox: Path,
    stop: asyncio.Event,
    *,
    interval: float = 2.0,
    on_result: Callable[[Dropped], None] | None = None,
) -> None:
    """Ingest every file dropped into `inbox`; move it to `done/` (its content is in the
    stores: ingested now, retried, or a duplicate of an earlier ingest) or `failed/`, with
    a `.reason.txt` next to it saying which, and the file's warnings. Files still being
    written (modified in the last seconds) wait for the next pass."""

    def listing() -> list[Path]:
        inbox.mkdir(parents=True, exist_ok=True)
        return sorted(p for p in inbox.iterdir() if p.is_file() and not p.name.startswith("."))

    def moved(path: Path, dropped: Dropped, lines: list[str]) -> None:
        note = "\n".join(lines) if lines else None
        folder = failed if dropped.outcome == "failed" else done
        entry = replace(dropped, moved_to=_move(path, folder, note), note=note)
        level = logging.ERROR if entry.outcome == "failed" else logging.INFO
        log.log(level, "%s → %s/ (%s)%s", path, folder.name, entry.outcome, f": {lines[0]}" if lines else "")
        if on_result:
            on_result(entry)

    done, failed = inbox / "done", inbox / "failed"
    while not stop.is_set():
        for path in await asyncio.to_thread(listing):
            if stop.is_set() or not _settled(path):
                continue
            try:
                outcome = await ingest_file_outcome(runtime, client, source, path)
            except Exception as exc:  # noqa: BLE001 - one bad file must not stop the folder
                moved(path, Dropped(path, path, "failed", None, None), [f"{type(exc).__name__}: {exc}"])
                continue
            result, lines = outcome.result, _note(outcome)
            if landed(result):
                entry = Dropped(path, path, outcome.outcome, result, None, outcome.workflow_id)
                moved(path, entry, [*lines, *result.warnings])
            else:
                lines = [f"nothing could be read: {'; '.join(result.warnings[:20])}", *lines]
                moved(path, Dropped(path, path, "failed", result, None, outcome.workflow_id), lines)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
