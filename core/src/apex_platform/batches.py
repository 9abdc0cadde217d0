"""Ingesting files of batch sources: one `BatchFileWorkflow` per file, and a drop folder.

The workflow id comes from the file's content hash (`file_workflow_id`), so:

- new content (a new file, or a file of the same name changed) is a new ingest;
- the same content again is one ingest: the answer is the first ingest's result (a
  duplicate; nothing is written again), also while the first is still running;
- the same content after an ingest that failed (the workflow failed, or nothing in the
  file could be read) is ingested again: a retry.

Temporal remembers closed workflows for its retention only: the same content dropped
after that is ingested anew (the sinks keep the versions they hold, nothing changes).

Files come from users (a carrier's upload): each is read through `safefiles` (no link
followed, no FIFO waited on, owner, mode and size checked, names escaped in every text),
and the drop folder gives each file at most `APEX_FILES_TIMEOUT`, so no file ever keeps
the next ones waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from apex_platform.contracts import BatchSource
from apex_platform.errors import ApexError, PluginError
from apex_platform.runtime import Runtime
from apex_platform.safefiles import (
    FilePolicy,
    Folder,
    display_line,
    display_name,
    file_settings,
    input_policy,
    move_with_note,
)
from apex_platform.temporal.client import SOURCE_ATTR, STATUS_ATTR, TRANSIENT_STATUSES, task_queue
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
    """Files as given, and the entries of folders that are not folders (sorted, hidden ones
    skipped). Links and FIFOs are listed as they are, never followed: ingesting one
    refuses it (`safefiles.UnsafeFile`), naming it. A folder given may be a link."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            with Folder.open(path, create=False) as folder:
                out += [
                    path / name
                    for name, st in folder.entries()
                    if not stat.S_ISDIR(st.st_mode) and not name.startswith(".")
                ]
        elif path.is_file() or path.is_symlink():
            out.append(path)
        else:
            raise ApexError(f"no such file or folder: {display_name(path)}")
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
    on_start: Callable[[str], None] | None = None,
    policy: FilePolicy | None = None,
) -> FileOutcome:
    """`ingest_file`, saying whether the file was new, a retry or a duplicate.
    `chunks_per_run` bounds the chunks one workflow run ingests before it continues as
    new (the workflow's default otherwise). The file is read as `policy` allows
    (`APEX_FILES_*` by default; `UnsafeFile`, nothing read, otherwise). `on_start` is
    told the workflow's id when this call starts it (not when it joins another's)."""
    checks = policy or input_policy()
    # an upload, with a shared store
    ref = await asyncio.to_thread(lambda: runtime.codec.blobs.put_file(path, policy=checks))
    wf_id = file_workflow_id(source.name, ref)
    inp = BatchFileInput(
        source=source.name,
        file_name=display_line(path.name),  # it names units and lineage: one printable line
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
    reuse = WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY
    if earlier == WorkflowExecutionStatus.COMPLETED:
        previous: BatchFileResult = await client.get_workflow_handle(wf_id, result_type=BatchFileResult).result()
        if landed(previous):
            return FileOutcome(previous, wf_id, "duplicate", earlier.name)
        reuse = WorkflowIDReusePolicy.ALLOW_DUPLICATE  # nothing of it could be read: read it again
    outcome: Literal["ingested", "retried", "duplicate"] = "ingested" if earlier is None else "retried"
    try:
        handle = await client.start_workflow(
            BatchFileWorkflow.run,
            inp,
            id=wf_id,
            task_queue=task_queue(source.priority, runtime.temporal),
            id_reuse_policy=reuse,
            search_attributes=TypedSearchAttributes(
                [SearchAttributePair(SOURCE_ATTR, source.name), SearchAttributePair(STATUS_ATTR, "batch")]
            ),
        )
    except WorkflowAlreadyStartedError:  # being ingested (or just was, by another caller)
        handle = client.get_workflow_handle(wf_id, result_type=BatchFileResult)
        outcome = "duplicate"
    else:
        if on_start is not None:
            on_start(wf_id)
    result_task = asyncio.ensure_future(handle.result())
    try:
        while not result_task.done():
            if on_progress is not None:
                try:
                    done, total = await handle.query(BatchFileWorkflow.progress)
                    on_progress(done, total)
                except Exception:  # noqa: BLE001, S110 - progress is cosmetic
                    pass
            await asyncio.wait([result_task], timeout=0.5)
    finally:
        result_task.cancel()  # given up on (a timeout): stop waiting for it
    try:
        result: BatchFileResult = result_task.result()
    except WorkflowFailureError as exc:
        raise ApexError(f"{display_name(path.name)}: {root_cause(exc)}") from None
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
    file_timeout: float | None = None,
    policy: FilePolicy | None = None,
) -> None:
    """Ingest every file dropped into `inbox`; move it to `done/` (its content is in the
    stores: ingested now, retried, or a duplicate of an earlier ingest) or `failed/`, with
    a `.reason.txt` next to it saying which, and the file's warnings. Files still being
    written (modified in the last seconds) wait for the next pass.

    What users drop is not trusted (`safefiles`): a link, a FIFO or a file the policy
    refuses goes to `failed/` as it is, unread, with the reason; `done/` and `failed/`
    are never followed if something else stands in their place, nor is a name in them;
    names are escaped in every note. A file not ingested within `file_timeout` seconds
    (`APEX_FILES_TIMEOUT`) has its ingest cancelled and goes to `failed/`, and the next
    files go on; nothing one file does stops the folder."""
    timeout = file_timeout if file_timeout is not None else file_settings().timeout.total_seconds()
    policy = policy or input_policy()
    skipped: set[str] = set()  # files that could not be moved: never ingested again and again

    def listing(root: Folder) -> list[str]:
        return [
            name
            for name, st in root.entries()
            if not name.startswith(".") and name not in _FOLDERS and not stat.S_ISDIR(st.st_mode)
        ]

    def settled(root: Folder, name: str) -> bool:
        st = root.lstat(name)
        return st is not None and time.time() - st.st_mtime >= SETTLE_SECONDS

    def moved(root: Folder, name: str, dropped: Dropped, lines: list[str]) -> None:
        note = "\n".join(display_line(line) for line in lines) if lines else None
        where = "failed" if dropped.outcome == "failed" else "done"
        try:
            with root.subfolder(where) as folder:
                new_name = move_with_note(root, name, folder, None if note is None else note + "\n")
        except FileNotFoundError:  # taken away meanwhile: a new file of that name is read anew
            log.warning("%s/%s: gone before it was moved to %s/", inbox, display_name(name), where)
            return
        except OSError as exc:  # e.g. not allowed to rename it: say so once, go on
            skipped.add(name)
            shown = display_name(name)
            log.error("%s/%s: not moved to %s/ (%s); it stays, and is not ingested again", inbox, shown, where, exc)
            return
        entry = Dropped(
            dropped.path, folder.path / new_name, dropped.outcome, dropped.result, note, dropped.workflow_id
        )
        level = logging.ERROR if entry.outcome == "failed" else logging.INFO
        first = f": {display_line(lines[0], 300)}" if lines else ""
        log.log(level, "%s/%s → %s/ (%s)%s", inbox, display_name(name), where, entry.outcome, first)
        if on_result:
            on_result(entry)

    async def one(root: Folder, name: str) -> None:
        path = inbox / name
        started: list[str] = []
        deadline = asyncio.timeout(timeout)
        try:
            async with deadline:
                outcome = await ingest_file_outcome(
                    runtime, client, source, path, on_start=started.append, policy=policy
                )
        except Exception as exc:  # noqa: BLE001 - one bad file must not stop the folder
            if _temporal_unreachable(exc):
                # transient, not the file's fault: it stays and is tried again at the next pass
                # (same content, same workflow: one that was started meanwhile is found again)
                log.warning(
                    "%s/%s: Temporal is unreachable (%s); it stays and is tried again", inbox, display_name(name), exc
                )
                return
            if isinstance(exc, TimeoutError) and deadline.expired():
                lines = [await _given_up(client, timeout, started)]
            else:
                lines = [f"{type(exc).__name__}: {exc}"]
            await asyncio.to_thread(moved, root, name, Dropped(path, path, "failed", None, None), lines)
            return
        result, lines = outcome.result, _note(outcome)
        if landed(result):
            entry = Dropped(path, path, outcome.outcome, result, None, outcome.workflow_id)
            lines = [*lines, *result.warnings]
        else:
            entry = Dropped(path, path, "failed", result, None, outcome.workflow_id)
            lines = [f"nothing could be read: {'; '.join(result.warnings[:20])}", *lines]
        await asyncio.to_thread(moved, root, name, entry, lines)

    while not stop.is_set():
        with await asyncio.to_thread(Folder.open, inbox) as root:  # opened anew: it may be made anew
            for name in await asyncio.to_thread(listing, root):
                if stop.is_set():
                    break
                if name in skipped or not await asyncio.to_thread(settled, root, name):
                    continue
                try:
                    await one(root, name)
                except Exception:  # a bug of ours: the folder goes on all the same
                    skipped.add(name)
                    log.exception("%s/%s: not processed; it stays, and is not tried again", inbox, display_name(name))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)


#: the folders processed files move to, inside the drop folder
_FOLDERS = frozenset({"done", "failed"})


def _temporal_unreachable(exc: BaseException) -> bool:
    """A Temporal answer that means "not now", not "this file cannot be" (only Temporal's:
    a parser's own error that mentions a time-out is the file's)."""
    return isinstance(exc, RPCError) and exc.status in TRANSIENT_STATUSES


async def _given_up(client: Client, seconds: float, started: list[str]) -> str:
    """A file's ingest that took longer than the drop folder gives a file: cancelled (if
    this watcher started it), and the reason it was given up on."""
    limit = f"not ingested within {seconds:g}s (APEX_FILES_TIMEOUT)"
    if not started:
        return f"{limit}: it was still being read or another ingest of the same content was; drop it again to retry"
    with contextlib.suppress(RPCError):
        await client.get_workflow_handle(started[0]).cancel()
    return f"{limit}: its ingest {started[0]} was cancelled and the next files went on; drop it again to retry"
