"""The durable-path rollout switch of the push API (`APEX_DURABLE_ROLLOUT`, 0 to 100).

Every push delivery takes the durable path by default (100): inbox → drain workflow →
saga. For a latency-critical push source an operator may send a share of deliveries
straight through the saga in the API process instead: with `APEX_DURABLE_ROLLOUT=N`, a
delivery whose record id hashes (SHA-256 of source and id, modulo 100) below N is
committed to the inbox as always, the others are parsed, enriched and written by the
saga before the answer. The hash is deterministic: a record always takes the same path
at a given N, so raising N from 0 to 10, 50, 100 moves a fixed, growing set of records.

The direct path does what the drain does, in the same order — the body kept is the
redacted one and it is decoded again from the headers the inbox keeps, the event's
arrival time is the edge's, the same enrichers run, the same saga writes — so both paths
leave the same rows in every store (tests/test_rollout.py). It never answers 2xx before
the data is durable: 202 `written` comes after the saga has committed every store. If
the saga fails (a store down), a sink is not open in this process, the body does not
parse, or the source fetches from its vendor, the delivery falls back to the inbox (and
its answer is the inbox's: 202, 200 duplicate or 503). What the direct path leaves out:
the inbox row (no dedupe horizon: a repeated delivery is written again, harmlessly, by
the stores' version rule) and the delivery lineage `apex-platform trace` shows.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from litestar import Response
from pydantic import Field
from pydantic_settings import BaseSettings

from apex_platform import metrics, tracing
from apex_platform.api.ingest import accept
from apex_platform.capabilities import redacted_keys
from apex_platform.contracts import FetchingSource, SourceConnector
from apex_platform.inbox import keep_headers, pg_text
from apex_platform.logs import log_context
from apex_platform.models import InboundEvent, Record
from apex_platform.payloads import redact_json_keys
from apex_platform.runtime import Runtime
from apex_platform.settings import apex_config, load

log = logging.getLogger(__name__)

#: records enriched at a time before yielding (as the drain does)
ENRICH_SLICE = 200


class RolloutSettings(BaseSettings):
    model_config = apex_config("APEX_")

    durable_rollout: int = Field(
        default=100, ge=0, le=100, description="Percent of push deliveries (by record id) through inbox and workflow"
    )


@lru_cache(maxsize=1)
def settings() -> RolloutSettings:
    return load(RolloutSettings)


def bucket(source: str, record_id: str) -> int:
    """0 to 99, the same for a record wherever and whenever it is computed."""
    digest = hashlib.sha256(f"{source}\x00{record_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100


def durable(source: str, record_id: str, percent: int) -> bool:
    return bucket(source, record_id) < percent


async def push(
    runtime: Runtime, connector: SourceConnector, event: InboundEvent, headers: Mapping[str, str], body: bytes
) -> Response[dict[str, Any]]:
    """Commit a decoded push delivery to the inbox, or write it directly (see above)."""
    percent = settings().durable_rollout
    if percent >= 100 or isinstance(connector, FetchingSource):
        return await accept(runtime, connector, event, headers, body)
    closed = [name for name in runtime.registry.sinks if name not in runtime.opened]
    records = _parse(connector, event, headers, body) if not closed else None
    if not records or durable(connector.name, min(r.id for r in records), percent):
        return await accept(runtime, connector, event, headers, body)
    source = connector.name
    with (
        log_context(source=source, event_id=event.event_id),
        tracing.span("apex.push.direct", {"apex.source": source, "apex.records": len(records)}),
    ):
        try:
            written = await runtime.saga.write(
                await _enrich(runtime, records), batch_id=f"direct:{source}:{event.event_id}"
            )
        except Exception as exc:  # noqa: BLE001 - nothing is lost: the inbox takes it
            log.warning("direct write of %s failed, committing it to the inbox instead: %s", event.event_id, exc)
            return await accept(runtime, connector, event, headers, body)
    metrics.WEBHOOKS.labels(source, "direct").inc()
    doc = {
        "status": "written",
        "path": "direct",
        "event_id": event.event_id,
        "records": len(records),
        "written": written.written,
        "quarantined": written.quarantined,
    }
    return Response(doc, status_code=202)


def _parse(
    connector: SourceConnector, event: InboundEvent, headers: Mapping[str, str], body: bytes
) -> list[Record] | None:
    """The records the drain would make of this delivery, or None (then the inbox takes
    it: a body that does not parse becomes an `apex.unparsed` record there)."""
    try:
        stored = redact_json_keys(body, redacted_keys(connector), what=f"{connector.name} body")
        again = connector.receive(keep_headers(headers), stored)  # type: ignore[attr-defined]
        if not isinstance(again, InboundEvent):
            return None
        received = event.received_at or datetime.now(UTC)
        records = list(
            connector.parse(again.model_copy(update={"received_at": received, "event_id": pg_text(event.event_id)}))
        )
    except Exception as exc:  # noqa: BLE001 - the durable path handles every failure
        log.info("push delivery %s of %s left to the inbox: %s", event.event_id, connector.name, exc)
        return None
    metrics.record_quality(records)
    return records


async def _enrich(runtime: Runtime, records: list[Record]) -> list[Record]:
    out: list[Record] = []
    for start in range(0, len(records), ENRICH_SLICE):
        part = records[start : start + ENRICH_SLICE]
        for enricher in runtime.registry.enrichers.values():
            part = await enricher.enrich(part)
        out.extend(part)
        await asyncio.sleep(0)
    return out
