"""Waiting for deliveries to land, from a test: the inbox says when each one was
delivered and the lineage says which records it produced."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable
from typing import Any

import asyncpg

from apex_platform.inbox import InboxSettings


def _schema(schema: str | None) -> str:
    name = schema or InboxSettings.model_fields["schema_name"].default
    return '"' + name.replace('"', '""') + '"'


async def delivery_states(
    dsn: str, source: str, event_ids: Iterable[str], *, schema: str | None = None
) -> dict[str, str]:
    """`event id -> status` ('pending' / 'delivered') of the given deliveries that exist."""
    conn = await asyncpg.connect(dsn)
    try:
        try:
            rows = await conn.fetch(
                f"SELECT event_id, status FROM {_schema(schema)}.deliveries WHERE source = $1 AND event_id = ANY($2)",  # noqa: S608
                source,
                list(event_ids),
            )
        except asyncpg.UndefinedTableError:
            return {}
    finally:
        await conn.close()
    return {r["event_id"]: r["status"] for r in rows}


async def wait_delivered(
    dsn: str, source: str, event_ids: Iterable[str], *, within: float = 120, schema: str | None = None
) -> None:
    """Until every one of `event_ids` is delivered; `TimeoutError` naming how many are not."""
    wanted = list(dict.fromkeys(event_ids))
    deadline = time.monotonic() + within
    states: dict[str, str] = {}
    while time.monotonic() < deadline:
        states = await delivery_states(dsn, source, wanted, schema=schema)
        if sum(1 for e in wanted if states.get(e) == "delivered") == len(wanted):
            return
        await asyncio.sleep(0.2)
    missing = [e for e in wanted if states.get(e) != "delivered"]
    raise TimeoutError(
        f"{len(missing)} of {len(wanted)} {source} deliveries not delivered within {within}s "
        f"(e.g. {missing[:3]}, states {[states.get(e) for e in missing[:3]]})"
    )


async def produced(dsn: str, source: str, event_id: str, *, schema: str | None = None) -> list[dict[str, Any]]:
    """The records (id, version) one delivery produced, from the lineage."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            f"SELECT record_id, version FROM {_schema(schema)}.lineage WHERE origin = $1 ORDER BY record_id",  # noqa: S608
            f"delivery:{source}:{event_id}",
        )
    finally:
        await conn.close()
    return [{"id": r["record_id"], "version": r["version"]} for r in rows]


async def deliveries(
    dsn: str, source: str, event_id: str | None = None, *, schema: str | None = None
) -> list[dict[str, Any]]:
    """The inbox rows of `source` (of one event id when given), oldest first: event_id,
    status, attempts, last_error and the headers kept. None while the inbox has no table."""
    conn = await asyncpg.connect(dsn)
    try:
        try:
            rows = await conn.fetch(
                f"SELECT event_id, status, attempts, last_error, headers::text AS headers "  # noqa: S608
                f"FROM {_schema(schema)}.deliveries WHERE source = $1 AND ($2::text IS NULL OR event_id = $2) "
                "ORDER BY seq",
                source,
                event_id,
            )
        except asyncpg.UndefinedTableError:
            return []
    finally:
        await conn.close()
    return [{**dict(r), "headers": json.loads(r["headers"])} for r in rows]
