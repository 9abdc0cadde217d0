"""Accepting a delivery at the edge: the durability contract of intake.

202 only once the delivery is committed to the inbox (PostgreSQL, shared by every API
process); 200 "duplicate" when its (source, event id) has already landed; 503 +
Retry-After when the inbox cannot be written, so the vendor retries instead of losing
the event. Temporal is not on this path: when it is down, intake goes on and the
source's drain loop catches up once it is back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from litestar import Response
from temporalio.client import Client
from temporalio.service import RPCError

from apex_platform import metrics, tracing
from apex_platform.api.errors import problem
from apex_platform.capabilities import redacted_keys, verifies_locally
from apex_platform.contracts import PollTrigger, SourceConnector, WebhookSource
from apex_platform.errors import PayloadError, SettingsError
from apex_platform.inbox import Delivery, InboxUnavailable
from apex_platform.logs import log_context
from apex_platform.models import InboundEvent
from apex_platform.partitions import partition_of
from apex_platform.payloads import redact_json_keys
from apex_platform.runtime import Runtime
from apex_platform.temporal.client import TRANSIENT_STATUSES
from apex_platform.temporal.worker import drain_id

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5


@dataclass(frozen=True)
class EdgeSource:
    """What the edge asks of one installed source on every request, worked out once per
    connector object: the contract's runtime-checkable protocols take tens of microseconds
    per `isinstance`, several times a request's own work."""

    connector: SourceConnector
    webhook: bool
    redacted: frozenset[str]
    verify_inline: bool


def edge_source(runtime: Runtime, connector: SourceConnector) -> EdgeSource:
    """`connector`'s `EdgeSource`, remembered in `runtime.edge` (a source registered again
    is a new connector object, and is worked out again)."""
    known: dict[str, EdgeSource] = runtime.edge.setdefault("sources", {})
    found = known.get(connector.name)
    if found is None or found.connector is not connector:
        found = known[connector.name] = EdgeSource(
            connector=connector,
            webhook=isinstance(connector, WebhookSource),
            redacted=redacted_keys(connector),
            verify_inline=verifies_locally(connector),
        )
    return found


async def accept(
    runtime: Runtime, connector: SourceConnector, event: InboundEvent, headers: Mapping[str, str], body: bytes
) -> Response[dict[str, Any]]:
    """Commit the delivery to the inbox and answer as the contract says."""
    partitions = runtime.temporal.drain_partitions  # the drain loop that will take it (apex_platform.partitions)
    partition = partition_of(event.event_id, partitions) if partitions > 1 else 0
    wf_id = drain_id(connector.name, runtime.temporal.task_queue_prefix, partition, partitions)
    attributes = {"apex.source": connector.name, "apex.event_id": event.event_id}
    with (
        log_context(source=connector.name, event_id=event.event_id, workflow_id=wf_id),
        tracing.span("apex.inbox.put", attributes),
    ):
        return await _accept(runtime, connector, event, headers, body, wf_id)


async def _accept(
    runtime: Runtime,
    connector: SourceConnector,
    event: InboundEvent,
    headers: Mapping[str, str],
    body: bytes,
    wf_id: str,
) -> Response[dict[str, Any]]:
    source = connector.name
    traceparent = tracing.current_traceparent()
    if traceparent:  # the drain links its spans to this request's (see apex_platform.tracing)
        headers = {**headers, tracing.TRACEPARENT_HEADER: traceparent}
    try:
        # values the connector says must never be kept (Plaid's public_token) are redacted
        # before the body is stored: the inbox, the drain and every store only see the copy
        stored = redact_json_keys(body, edge_source(runtime, connector).redacted, what=f"{source} body")
    except PayloadError as exc:
        metrics.WEBHOOKS.labels(source, "malformed").inc()
        return problem(400, str(exc), source=source)
    delivery = Delivery(
        source=source,
        event_id=event.event_id,
        received_at=event.received_at or datetime.now(UTC),
        headers=headers,
        body=stored,
    )
    try:
        outcome = await runtime.inbox.put(delivery)
    except (InboxUnavailable, SettingsError) as exc:
        log.warning("inbox unavailable, asking %s to retry %s: %s", source, event.event_id, exc)
        metrics.WEBHOOKS.labels(source, "unavailable").inc()
        return problem(
            503,
            "the inbox is unavailable; nothing was accepted, retry later",
            source=source,
            event_id=event.event_id,
            retry_after=RETRY_AFTER_SECONDS,
        )
    log.debug("delivery committed to the inbox: %s", outcome)
    doc = {"status": "accepted", "workflow_id": wf_id, "event_id": event.event_id}
    if outcome == "duplicate":
        metrics.WEBHOOKS.labels(source, "duplicate").inc()
        return Response({**doc, "status": "duplicate"}, status_code=200)
    # "pending": known but not landed yet; it will land, so it is accepted, not a duplicate
    metrics.WEBHOOKS.labels(source, "accepted" if outcome == "accepted" else "pending").inc()
    if outcome == "pending":
        doc["inbox"] = "pending"
    return Response(doc, status_code=202)


async def trigger_poll(runtime: Runtime, connector: SourceConnector, trigger: PollTrigger) -> Response[dict[str, Any]]:
    """A webhook that says "new data": wake (or start) the account's poller."""
    from apex_platform.pollers import start_poller

    source = connector.name
    try:
        client: Client = await asyncio.wait_for(runtime.connect(lazy=True), timeout=10)
        handle = await start_poller(client, connector, trigger.account, runtime.temporal, sync_now=True)
    except RPCError as exc:
        if exc.status not in TRANSIENT_STATUSES:
            raise
        return _unavailable(source, f"poll:{trigger.account}", exc)
    except (RuntimeError, OSError, TimeoutError) as exc:
        return _unavailable(source, f"poll:{trigger.account}", exc)
    metrics.WEBHOOKS.labels(source, "sync_requested").inc()
    return Response({"status": "sync requested", "workflow_id": handle.id, "account": trigger.account}, status_code=202)


def _unavailable(source: str, wf_id: str, exc: BaseException) -> Response[dict[str, Any]]:
    log.warning("Temporal unavailable, asking %s to retry %s: %s", source, wf_id, exc)
    metrics.WEBHOOKS.labels(source, "unavailable").inc()
    return problem(
        503,
        "the workflow service is unavailable; nothing was accepted, retry later",
        workflow_id=wf_id,
        retry_after=RETRY_AFTER_SECONDS,
    )
