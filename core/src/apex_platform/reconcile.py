"""Reconciliation pollers: what a webhook source's listing API says happened, committed to
the same inbox under the same event ids the webhooks use, so missed deliveries heal.

The rule: a reconciler never writes records. It finds deliveries (a body its connector's
`receive` decodes, with the event id `receive` gives it) and commits them to the inbox,
where `(source, event id)` is unique: an event whose webhook did arrive and its reconciled
twin are one delivery, and the drain parses it once. Only after the commit does the
reconciler's cursor move (workflow state of `ReconcileWorkflow`): a crash before the
commit re-reads the page (nothing lost), a crash after it re-commits known ids (nothing
doubled). Cursors should re-read an overlap window, since listings are eventually
consistent and dedupe makes the re-read free. The contract is in docs/reconciliation.md.

Workflow ids are fixed (`apex:reconcile:{source}:{account}`); every worker that serves
the source's priority starts the reconcilers of the accounts the source enables (off by
default), and a running one is kept.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol, runtime_checkable

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle, WorkflowQueryFailedError
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy
from temporalio.service import RPCError

from apex_platform.models import Priority
from apex_platform.settings import TemporalSettings
from apex_platform.temporal.client import SOURCE_ATTR, STATUS_ATTR, task_queue
from apex_platform.temporal.inputs import ActivityTimeouts
from apex_platform.temporal.reconcile_workflow import ReconcileInput, ReconcileState, ReconcileWorkflow

log = logging.getLogger(__name__)

#: the most deliveries one page may hand over (bounded pages: one activity, one commit)
MAX_PAGE_DELIVERIES = 1000
#: the header every reconciled delivery carries in the inbox (operators tell them apart)
ORIGIN_HEADER = "x-apex-origin"


@dataclass(frozen=True)
class FoundDelivery:
    """One event found in a vendor's listing, as the webhook would have delivered it:
    `body` (and `headers`) are what the connector's `receive` decodes, and `event_id` is
    the id `receive` gives that body (checked before anything is committed)."""

    event_id: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ReconcilePage:
    """One bounded page of a listing. `next_cursor` is committed once the deliveries are
    (None: keep the cursor); `has_more` false ends a pass (the reconciler then waits
    `reconcile_interval_seconds`); `retry_after` is waited before the next call."""

    deliveries: Sequence[FoundDelivery] = ()
    next_cursor: str | None = None
    has_more: bool = False
    retry_after: float | None = None


@runtime_checkable
class ReconcileSource(Protocol):
    """A webhook source with a listing API that can find what its webhooks missed.

    Besides `receive` (it is a `WebhookSource`), it provides the accounts to reconcile and
    one page of the listing after a cursor. The cursor is the connector's own string (kept
    in workflow history: never a secret); it should re-read an overlap behind the last
    event seen.
    """

    name: str
    priority: Priority

    @property
    def reconcile_interval_seconds(self) -> float:
        """Seconds between two passes (a pass ends at a page with `has_more` false)."""
        ...

    def reconcile_accounts(self) -> list[str]:
        """The accounts whose reconciliation is on (none by default); no I/O."""
        ...

    async def reconcile(self, account: str, cursor: str | None) -> ReconcilePage:
        """The page after `cursor` (None: the connector's starting point). Raise `VendorError`
        (with `retry_after` for 429) or `SettingsError` naming the variable."""
        ...

    def receive(self, headers: Mapping[str, str], body: bytes) -> object:
        """The connector's `WebhookSource.receive`: decodes a found delivery as the drain will."""
        ...


def as_reconcile_source(source: object) -> ReconcileSource | None:
    return source if isinstance(source, ReconcileSource) else None


def reconciler_id(source: str, account: str, prefix: str = "apex") -> str:
    return f"{prefix}:reconcile:{source}:{account}"


async def start_reconciler(
    client: Client,
    source: ReconcileSource,
    account: str,
    temporal: TemporalSettings,
    *,
    once: bool = False,
) -> WorkflowHandle[Any, ReconcileState]:
    """Start the account's reconciler (a new run resumes from the last closed run's
    cursor), or find the running one."""
    wf_id = reconciler_id(source.name, account, temporal.task_queue_prefix) + (":once" if once else "")
    cursor = await last_cursor(client, source.name, account, temporal.task_queue_prefix)
    inp = ReconcileInput(
        source=source.name,
        account=account,
        cursor=cursor,
        interval_seconds=source.reconcile_interval_seconds,
        once=once,
        timeouts=ActivityTimeouts(
            start_to_close_seconds=temporal.activity_timeout_seconds,
            heartbeat_seconds=temporal.activity_heartbeat_seconds,
        ),
    )
    handle: WorkflowHandle[Any, ReconcileState] = await client.start_workflow(
        ReconcileWorkflow.run,
        inp,
        id=wf_id,
        task_queue=task_queue(source.priority, temporal),
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        search_attributes=TypedSearchAttributes(
            [SearchAttributePair(SOURCE_ATTR, source.name), SearchAttributePair(STATUS_ATTR, "reconciling")]
        ),
    )
    return handle


async def last_cursor(client: Client, source: str, account: str, prefix: str = "apex") -> str | None:
    """The committed cursor of the most recently closed run (None: never reconciled)."""
    best: tuple[Any, str | None] | None = None
    base = reconciler_id(source, account, prefix)
    for wf_id in (base, base + ":once"):
        handle = client.get_workflow_handle(wf_id, result_type=ReconcileState)
        try:
            desc = await handle.describe()
        except RPCError:
            continue
        if desc.status == WorkflowExecutionStatus.RUNNING or desc.close_time is None:
            continue
        try:
            if desc.status == WorkflowExecutionStatus.COMPLETED:
                state = await handle.result()
            else:  # terminated, failed: its last state still holds the committed cursor
                state = await handle.query(ReconcileWorkflow.state, rpc_timeout=timedelta(seconds=10))
        except (RPCError, WorkflowQueryFailedError) as exc:
            log.warning("no cursor from the closed run %s (%s); it is not resumed from", wf_id, exc)
            continue
        if best is None or desc.close_time > best[0]:
            best = (desc.close_time, state.cursor)
    return best[1] if best else None


async def reconciler_state(client: Client, source: str, account: str, prefix: str = "apex") -> dict[str, Any]:
    """What `sources list` shows of one account's reconciler: running, cursor, counts."""
    handle = client.get_workflow_handle(reconciler_id(source, account, prefix), result_type=ReconcileState)
    try:
        desc = await handle.describe()
    except RPCError:
        return {"account": account, "running": False}
    state: dict[str, Any] = {
        "account": account,
        "running": desc.status == WorkflowExecutionStatus.RUNNING,
        "workflow_id": handle.id,
        "status": desc.status.name if desc.status else None,
    }
    try:
        st = await handle.query(ReconcileWorkflow.state, rpc_timeout=timedelta(seconds=10))
        state.update(st.model_dump(exclude={"source", "account"}))
    except (RPCError, WorkflowQueryFailedError) as exc:
        state["query_error"] = str(exc)
    return state


async def keep_reconcilers(client: Client, sources: Sequence[object], temporal: TemporalSettings) -> None:
    """Start the reconciler of every enabled account of these sources (fixed ids: a
    running one is kept). Called by workers every minute; failures wait for the next round."""
    for source in sources:
        rec = as_reconcile_source(source)
        if rec is None:
            continue
        try:
            accounts = rec.reconcile_accounts()
        except Exception as exc:  # noqa: BLE001 - a settings problem of one source
            log.warning("reconciliation of %s not started: %s", rec.name, exc)
            continue
        for account in accounts:
            try:
                await start_reconciler(client, rec, account, temporal)
            except Exception as exc:  # noqa: BLE001 - Temporal down: next round
                log.warning(
                    "could not start the reconciler of %s/%s (retrying in a minute): %s", rec.name, account, exc
                )
