"""Starting, signalling and listing the pollers and stream readers of poll/stream sources.

Workflow ids are fixed (`apex:poll:{source}:{account}`, `apex:stream:{source}:{account}`),
so starting twice is harmless: the second start finds the running one.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle, WorkflowQueryFailedError
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy
from temporalio.service import RPCError

from apex_platform.contracts import PollSource, SourceConnector
from apex_platform.errors import PluginError
from apex_platform.settings import TemporalSettings
from apex_platform.temporal.client import SOURCE_ATTR, STATUS_ATTR, task_queue
from apex_platform.temporal.inputs import ActivityTimeouts, PollInput, PollState
from apex_platform.temporal.workflows import PollWorkflow, StreamWorkflow

log = logging.getLogger(__name__)


def poller_id(source: SourceConnector, account: str, prefix: str = "apex") -> str:
    """`apex:poll:{source}:{account}` (or `apex:stream:…`); the first part is the task-queue
    prefix, so two deployments sharing a namespace with different prefixes never collide."""
    kind = "stream" if source.mode == "stream" else "poll"
    return f"{prefix}:{kind}:{source.name}:{account}"


def _workflow(source: SourceConnector) -> Any:
    return StreamWorkflow.run if source.mode == "stream" else PollWorkflow.run


def as_poll_source(source: SourceConnector) -> PollSource:
    if not isinstance(source, PollSource):
        raise PluginError(f"source {source.name!r} ({source.mode}) has no poller or stream to run")
    return source


def accounts_of(source: SourceConnector, account: str | None) -> list[str]:
    poll = as_poll_source(source)
    if account:
        return [account]
    accounts = poll.accounts()
    if not accounts:
        raise PluginError(f"source {source.name!r} has no configured account; see its README for the settings")
    return accounts


async def start_poller(
    client: Client,
    source: SourceConnector,
    account: str,
    temporal: TemporalSettings,
    *,
    once: bool = False,
    sync_now: bool = False,
) -> WorkflowHandle[Any, PollState]:
    """Start the account's poller, or find the running one (and signal `sync_now`)."""
    poll = as_poll_source(source)
    wf_id = poller_id(source, account, temporal.task_queue_prefix) + (":once" if once else "")
    inp = PollInput(
        source=source.name,
        account=account,
        interval_seconds=poll.poll_interval_seconds,
        once=once,
        timeouts=ActivityTimeouts(
            start_to_close_seconds=temporal.activity_timeout_seconds,
            heartbeat_seconds=temporal.activity_heartbeat_seconds,
        ),
    )
    # a new run (one-off or not) continues from where the last run of this account stopped;
    # a poller already running keeps its own cursor (the start finds it)
    cursor = await last_cursor(client, source, account, temporal.task_queue_prefix)
    inp = inp.model_copy(update={"cursor": cursor, "loop_cursor": cursor})
    extra: dict[str, Any] = {}
    if sync_now:
        extra = {"start_signal": "sync_now"}
    handle: WorkflowHandle[Any, PollState] = await client.start_workflow(
        _workflow(source),
        inp,
        id=wf_id,
        task_queue=task_queue(source.priority, temporal),
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        search_attributes=TypedSearchAttributes(
            [SearchAttributePair(SOURCE_ATTR, source.name), SearchAttributePair(STATUS_ATTR, "polling")]
        ),
        **extra,
    )
    return handle


async def last_cursor(client: Client, source: SourceConnector, account: str, prefix: str = "apex") -> str | None:
    """The committed cursor of the most recently closed run of the account's poller or
    one-off syncs (None: start from the beginning). A poller stopped, terminated or failed
    still has its committed cursor in its last state (queried from its closed run)."""
    best: tuple[Any, str | None] | None = None
    for wf_id in (poller_id(source, account, prefix), poller_id(source, account, prefix) + ":once"):
        handle = client.get_workflow_handle(wf_id, result_type=PollState)
        try:
            desc = await handle.describe()
        except RPCError:
            continue
        if desc.status == WorkflowExecutionStatus.RUNNING or desc.close_time is None:
            continue
        if desc.status == WorkflowExecutionStatus.COMPLETED:
            state = await handle.result()
        else:  # terminated, failed, timed out: its last state still holds the committed cursor
            try:
                state = await handle.query(
                    PollWorkflow.state if source.mode != "stream" else StreamWorkflow.state,
                    rpc_timeout=timedelta(seconds=10),
                )
            except (RPCError, WorkflowQueryFailedError) as exc:
                log.warning("no cursor from the closed run %s (%s); it is not resumed from", wf_id, exc)
                continue
        if best is None or desc.close_time > best[0]:
            best = (desc.close_time, state.cursor)
    return best[1] if best else None


async def poller_state(client: Client, source: SourceConnector, account: str, prefix: str = "apex") -> dict[str, Any]:
    """State of the account's poller: running or not, cursor, last success."""
    handle = client.get_workflow_handle(poller_id(source, account, prefix), result_type=PollState)
    try:
        desc = await handle.describe()
    except RPCError:
        return {"account": account, "running": False}
    running = desc.status == WorkflowExecutionStatus.RUNNING
    state: dict[str, Any] = {
        "account": account,
        "running": running,
        "workflow_id": handle.id,
        "status": desc.status.name if desc.status else None,
    }
    if running:
        try:
            st = await handle.query(PollWorkflow.state if source.mode != "stream" else StreamWorkflow.state)
            state.update(st.model_dump(exclude={"source", "account"}))
        except RPCError as exc:
            state["query_error"] = str(exc)
    return state
