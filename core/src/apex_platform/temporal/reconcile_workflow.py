"""`ReconcileWorkflow`: one account's reconciliation poller (see `apex_platform.reconcile`).

Deterministic code only. Each page is one activity (`apex.reconcile_page`) that lists,
commits what it found to the inbox and returns the next cursor and counts; the cursor
moves only once that activity returned, i.e. once the inbox committed the page.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict
from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from apex_platform.temporal.inputs import ActivityTimeouts
    from apex_platform.temporal.workflows import _history_is_long, activity_options


class ReconcileInput(BaseModel):
    """Start (or continue-as-new) of one account's reconciler."""

    model_config = ConfigDict(frozen=True)

    source: str
    account: str
    #: the cursor committed so far (every delivery the listing showed before it is in the inbox)
    cursor: str | None = None
    interval_seconds: float = 300.0
    #: stop after one complete pass (tests, `sources sync`)
    once: bool = False
    pages_before_continue: int = 200
    timeouts: ActivityTimeouts = ActivityTimeouts()
    # carried across continue-as-new, for `sources list`
    pages: int = 0
    passes: int = 0
    found: int = 0
    new: int = 0
    last_pass_at: str | None = None
    sync_pending: bool = False


class ReconcilePageInput(BaseModel):
    model_config = ConfigDict(frozen=True)

    source: str
    account: str
    cursor: str | None = None


class ReconcilePageResult(BaseModel):
    """Counts of one committed page; the page itself never enters Temporal."""

    model_config = ConfigDict(frozen=True)

    next_cursor: str | None = None
    has_more: bool = False
    retry_after: float | None = None
    #: deliveries the page listed / of them new to the inbox (the webhook had not come)
    found: int = 0
    new: int = 0
    #: listed deliveries the connector's `receive` could not read (committed all the same:
    #: the drain keeps them as `apex.unparsed` records)
    unreadable: int = 0
    #: the account's reconciliation is off now: the workflow ends
    disabled: bool = False


class ReconcileState(BaseModel):
    """What `sources list` shows of a reconciler."""

    model_config = ConfigDict(frozen=True)

    source: str
    account: str
    cursor: str | None = None
    stage: str = "starting"
    pages: int = 0
    passes: int = 0
    #: deliveries listed so far, and how many of them the webhooks had missed
    found: int = 0
    new: int = 0
    last_success: str | None = None
    last_pass_at: str | None = None
    last_error: str | None = None


@workflow.defn(name="ReconcileWorkflow")
class ReconcileWorkflow:
    def __init__(self) -> None:
        self._state = ReconcileState(source="", account="")
        self._sync = False
        self._stop = False

    @workflow.signal
    def sync_now(self) -> None:
        """Start a pass now instead of waiting for the interval."""
        self._sync = True

    @workflow.signal
    def stop(self) -> None:
        """Finish the page in hand (its commit and cursor), then end."""
        self._stop = True

    @workflow.query
    def state(self) -> ReconcileState:
        return self._state

    def _set(self, **changes: Any) -> None:
        self._state = self._state.model_copy(update=changes)

    @workflow.run
    async def run(self, inp: ReconcileInput) -> ReconcileState:
        # imported here, not at the top: reconcile_activities imports this module (the page
        # models) and apex_platform.reconcile, which imports this module too
        with workflow.unsafe.imports_passed_through():
            from apex_platform.temporal.reconcile_activities import ReconcileActivities

        self._state = ReconcileState(
            source=inp.source,
            account=inp.account,
            cursor=inp.cursor,
            pages=inp.pages,
            passes=inp.passes,
            found=inp.found,
            new=inp.new,
            last_pass_at=inp.last_pass_at,
        )
        self._sync = self._sync or inp.sync_pending
        options = activity_options(inp.timeouts, maximum_attempts=8)
        pages_this_run = 0
        while not self._stop:
            s = self._state
            self._set(stage="listing")
            try:
                page = await workflow.execute_activity_method(
                    ReconcileActivities.reconcile_page,
                    ReconcilePageInput(source=inp.source, account=inp.account, cursor=s.cursor),
                    **options,
                )
            except ActivityError as err:
                self._set(last_error=str(err.cause or err))
                await self._wait(inp.interval_seconds)
                if _history_is_long():
                    self._continue(inp)
                continue
            if page.disabled:
                self._set(stage="disabled")
                return self._state
            # the inbox committed the page: only now does the cursor move
            now = workflow.now().isoformat(timespec="seconds")
            self._set(
                cursor=page.next_cursor if page.next_cursor is not None else s.cursor,
                pages=s.pages + 1,
                found=s.found + page.found,
                new=s.new + page.new,
                last_success=now,
                last_error=None,
            )
            pages_this_run += 1
            if not page.has_more:
                self._set(passes=self._state.passes + 1, last_pass_at=now)
                if inp.once:
                    break
                await self._wait(max(inp.interval_seconds, page.retry_after or 0.0))
            elif page.retry_after:
                await workflow.sleep(timedelta(seconds=page.retry_after))
            if not self._stop and (pages_this_run >= inp.pages_before_continue or _history_is_long()):
                self._continue(inp)
        self._set(stage="stopped" if self._stop else "done")
        return self._state

    async def _wait(self, seconds: float) -> None:
        self._set(stage="waiting")
        self._sync = False
        with contextlib.suppress(asyncio.TimeoutError):
            await workflow.wait_condition(lambda: self._sync or self._stop, timeout=timedelta(seconds=seconds))

    def _continue(self, inp: ReconcileInput) -> None:
        s = self._state
        workflow.continue_as_new(
            inp.model_copy(
                update={
                    "cursor": s.cursor,
                    "pages": s.pages,
                    "passes": s.passes,
                    "found": s.found,
                    "new": s.new,
                    "last_pass_at": s.last_pass_at,
                    "sync_pending": self._sync,
                }
            )
        )
