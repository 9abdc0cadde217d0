"""`apex.reconcile_page`: one page of a source's listing, committed to the inbox."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from temporalio import activity
from temporalio.exceptions import ApplicationError

from apex_platform import metrics
from apex_platform.errors import ApexError, PayloadError, PluginError, SettingsError, VendorError
from apex_platform.inbox import Delivery, Inbox, InboxUnavailable
from apex_platform.models import InboundEvent
from apex_platform.plugins import Registry
from apex_platform.reconcile import MAX_PAGE_DELIVERIES, ORIGIN_HEADER, FoundDelivery, ReconcileSource
from apex_platform.temporal.activities import _non_retryable, _vendor_failure, heartbeating
from apex_platform.temporal.reconcile_workflow import ReconcilePageInput, ReconcilePageResult


class ReconcileActivities:
    def __init__(self, registry: Registry, inbox: Inbox) -> None:
        self.registry = registry
        self.inbox = inbox

    def _source(self, name: str) -> ReconcileSource:
        try:
            connector = self.registry.source(name)
        except PluginError as exc:
            raise ApplicationError(f"{exc} on this worker", type="SourceNotInstalled") from exc
        if not isinstance(connector, ReconcileSource):
            raise _non_retryable(PluginError(f"source {name!r} has no listing to reconcile from"))
        return connector

    @activity.defn(name="apex.reconcile_page")
    async def reconcile_page(self, inp: ReconcilePageInput) -> ReconcilePageResult:
        """List the page after `inp.cursor` and commit every delivery on it to the inbox
        (new ones are drained like webhooks; known ones are left as they are). Returns
        only the next cursor and counts. A retry lists the same page again: harmless."""
        started = time.perf_counter()
        connector = self._source(inp.source)
        try:
            if inp.account not in connector.reconcile_accounts():
                return ReconcilePageResult(disabled=True)
        except SettingsError as exc:
            raise _non_retryable(exc) from exc
        async with heartbeating():
            try:
                page = await connector.reconcile(inp.account, inp.cursor)
            except SettingsError as exc:
                raise _non_retryable(exc) from exc
            except VendorError as exc:
                raise _vendor_failure(exc) from exc
            except PayloadError as exc:  # an answer we cannot read: retried, not ours to drop
                raise ApplicationError(
                    f"{inp.source} {inp.account}: unreadable listing: {exc}", type="UnreadableVendorResponse"
                ) from exc
            if len(page.deliveries) > MAX_PAGE_DELIVERIES:
                raise _non_retryable(
                    PluginError(
                        f"{inp.source} reconcile page has {len(page.deliveries)} deliveries; "
                        f"at most {MAX_PAGE_DELIVERIES} per page"
                    )
                )
            unreadable = sum([self._check(connector, inp, found) for found in page.deliveries])
            now = datetime.now(UTC)
            origin = {ORIGIN_HEADER: f"reconcile:{inp.account}"}
            try:
                outcomes = await asyncio.gather(
                    *(
                        self.inbox.put(
                            Delivery(
                                source=inp.source,
                                event_id=found.event_id,
                                received_at=now,
                                headers={**found.headers, **origin},
                                body=found.body,
                            )
                        )
                        for found in page.deliveries
                    )
                )
            except (InboxUnavailable, ApexError) as exc:
                raise ApplicationError(f"{inp.source}: inbox: {exc}", type="InboxUnavailable") from exc
        new = outcomes.count("accepted")
        metrics.ACTIVITY_SECONDS.labels("reconcile_page", inp.source).observe(time.perf_counter() - started)
        if new:
            activity.logger.info(
                "%s/%s: reconciliation found %d deliveries the webhooks missed", inp.source, inp.account, new
            )
        return ReconcilePageResult(
            next_cursor=page.next_cursor,
            has_more=page.has_more,
            retry_after=page.retry_after,
            found=len(outcomes),
            new=new,
            unreadable=unreadable,
        )

    @staticmethod
    def _check(connector: ReconcileSource, inp: ReconcilePageInput, found: FoundDelivery) -> bool:
        """True when `receive` cannot read the found body (it is committed all the same and
        becomes an `apex.unparsed` record). A body `receive` reads under another event id
        is the connector's bug: it would defeat the dedupe with the webhooks, so nothing of
        the page is committed."""
        try:
            received = connector.receive(dict(found.headers), found.body)
        except PayloadError as exc:
            activity.logger.warning("%s: listed event %s is unreadable: %s", inp.source, found.event_id, exc)
            return True
        if isinstance(received, InboundEvent) and received.event_id != found.event_id:
            raise _non_retryable(
                PluginError(
                    f"{inp.source} reconcile: a listed event claims id {found.event_id!r} but its body is "
                    f"received as {received.event_id!r}; the ids must be those of the webhooks"
                )
            )
        return False
