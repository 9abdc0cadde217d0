"""One record a store can never hold must not block anything: the issue's scenario over
real processes and a real PostgreSQL (which refuses NUL in text and jsonb)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.cluster import Cluster, front_deliveries, samsara_deliveries
from support.senders import Delivery, samsara_delivery, samsara_headers, send_all

from apex_platform.testing.inbox import wait_delivered

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


@pytest.fixture
def cluster(tmp_path: Path, apex_temporal_server: Any, apex_postgres_server: Any) -> Iterator[Cluster]:
    c = Cluster(tmp_path, apex_temporal_server.address, apex_postgres_server.dsn)
    yield c
    c.stop()


def poisoned_samsara() -> Delivery:
    """Samsara's documented RouteStopArrival with a NUL in a name a driver typed: valid
    JSON, and something PostgreSQL's text and jsonb cannot hold."""
    event_id, body = samsara_delivery()
    doc = json.loads(body)
    doc["data"]["route"]["name"] = "Route 66\u0000 (night)"
    return Delivery(event_id, "/webhooks/samsara", json.dumps(doc).encode(), samsara_headers)


async def test_a_nul_delivery_is_quarantined_and_the_300_after_it_land_within_a_minute(cluster: Cluster) -> None:
    url = cluster.start_api()
    cluster.start_worker()
    poison = poisoned_samsara()
    assert b"\\u0000" in poison.body
    first = await send_all([url], [poison], within=60)
    assert first.acknowledged == {poison.key}
    ordinary = samsara_deliveries(300)
    other = front_deliveries(1)
    started = time.monotonic()
    sent = await send_all([url], ordinary + other, concurrency=16, within=60)
    assert not sent.unacknowledged
    await wait_delivered(cluster.dsn, "samsara", [d.key for d in ordinary], within=60, schema=cluster.inbox_schema)
    await wait_delivered(cluster.dsn, "frontapp", [other[0].key], within=60, schema=cluster.inbox_schema)
    assert time.monotonic() - started < 90
    rows = await cluster.fetch(
        f"SELECT count(*) AS n FROM {cluster.sink_schema}.records WHERE source = 'samsara' AND id = ANY($1::text[])",
        [f"event:{d.key}" for d in ordinary],
    )
    assert rows[0]["n"] == 300
    # the poisoned delivery itself is delivered: its records are quarantined, not retried forever
    await wait_delivered(cluster.dsn, "samsara", [poison.key], within=60, schema=cluster.inbox_schema)
    letters = cluster.cli("dlq", "list", "--json")
    quarantined = [d for d in letters if d["batch_id"].endswith(":quarantine")]
    assert quarantined, letters
    assert any("NUL" in d["error"] for d in quarantined)
    assert all(d["failed"] == ["postgres"] for d in quarantined)
    keys = {k for d in quarantined for k in d["keys"]}
    assert keys & {"samsara:route:342341", f"samsara:event:{poison.key}"}, keys
    stored = await cluster.fetch(f"SELECT id FROM {cluster.sink_schema}.records WHERE id = $1", f"event:{poison.key}")
    assert stored == []  # quarantined records are in no store
