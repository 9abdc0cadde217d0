"""A record with characters a store cannot hold as they are must not block anything: the
issue's scenario over real processes and the four real stores (PostgreSQL, Redis,
FalkorDB, Qdrant local mode).

- A NUL in a name a driver typed is stored, exactly, in every store (each sink's
  documented encoding: PostgreSQL's json+base64 envelope, JSON escapes elsewhere).
- A NUL in what names a record or an entity (a driver id) is refused by PostgreSQL and
  the graph (a replacement character would change its identity): those records are
  quarantined in the dead-letter queue with the reasons, and are in no store.
- 300 ordinary deliveries sent after them, and another source's, land within a minute.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.cluster import Cluster, front_deliveries, samsara_deliveries
from support.senders import Delivery, samsara_delivery, samsara_headers, samsara_record_id, send_all

from apex_connector_samsara.envelope import read_delivery
from apex_connector_samsara.records import build_records
from apex_platform.contracts import Sink
from apex_platform.models import Record
from apex_platform.testing.inbox import wait_delivered
from apex_sink_graph import GraphSink, GraphSinkSettings
from apex_sink_postgres import PostgresSink, PostgresSinkSettings
from apex_sink_qdrant import QdrantSink, QdrantSinkSettings
from apex_sink_redis import RedisSink, RedisSinkSettings

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def falkordb_uri(redis_url: str) -> str:
    return "falkordb://" + redis_url.removeprefix("redis://").split("/", 1)[0]


class Stores:
    """Where the cluster's four sinks write, and how this test opens them to read."""

    def __init__(self, base: Path, redis_url: str) -> None:
        self.tag = f"p{uuid.uuid4().hex[:10]}"
        self.redis_url = redis_url
        self.qdrant_path = base / "qdrant"
        self.env = {
            "APEX_PLUGINS": "frontapp,samsara,llm,postgres,redis,graph,qdrant",
            "APEX_REDIS_URL": redis_url,
            "APEX_REDIS_PREFIX": self.tag,
            "APEX_GRAPH_URI": falkordb_uri(redis_url),
            "APEX_GRAPH_NAME": self.tag,
            "APEX_QDRANT_PATH": str(self.qdrant_path),
            "APEX_QDRANT_COLLECTION": self.tag,
        }

    def sinks(self, cluster: Cluster) -> dict[str, Sink]:
        """The four sinks (Qdrant local mode: open only once the worker has stopped)."""
        return {
            "postgres": PostgresSink(PostgresSinkSettings(dsn=cluster.dsn, schema=cluster.sink_schema)),
            "redis": RedisSink(RedisSinkSettings(url=self.redis_url, prefix=self.tag)),
            "graph": GraphSink(GraphSinkSettings(uri=falkordb_uri(self.redis_url), name=self.tag)),
            "qdrant": QdrantSink(QdrantSinkSettings(path=self.qdrant_path, collection=self.tag)),
        }


@pytest.fixture
def stores(tmp_path: Path, apex_redis_server: Any) -> Stores:
    return Stores(tmp_path, apex_redis_server.url)


@pytest.fixture
def cluster(tmp_path: Path, apex_temporal_server: Any, apex_postgres_server: Any, stores: Stores) -> Iterator[Cluster]:
    c = Cluster(tmp_path, apex_temporal_server.address, apex_postgres_server.dsn, **stores.env)
    yield c
    c.stop()


def samsara_with(route: dict[str, str], driver: dict[str, str] | None = None) -> tuple[Delivery, list[Record]]:
    """Samsara's documented RouteStopArrival with fields of the route (and driver)
    replaced, and the records the connector makes of it."""
    event_id, body = samsara_delivery()
    doc = json.loads(body)
    doc["data"]["route"].update(route)
    doc["data"]["driver"].update(driver or {})
    raw = json.dumps(doc).encode()
    assert b"\\u0000" in raw  # valid JSON, with a NUL escape
    return Delivery(event_id, "/webhooks/samsara", raw, samsara_headers), build_records(read_delivery(json.loads(raw)))


def holds_nul_identity(record: Record) -> bool:
    """A NUL where it names something (record id, entity key, relation end): refused."""
    return (
        "\x00" in record.id
        or any("\x00" in e.key for e in record.entities)
        or any("\x00" in x.src or "\x00" in x.dst for x in record.relations)
    )


async def test_nul_deliveries_are_stored_or_quarantined_and_the_300_after_them_land_within_a_minute(
    cluster: Cluster, stores: Stores
) -> None:
    url = cluster.start_api()
    cluster.start_worker()
    # A driver typed a NUL into the route's name (a route of its own: the 300 below share 342341).
    typed, typed_records = samsara_with({"name": "Route 66\u0000 (night)", "id": "night-66"})
    # A NUL in the driver's id: an entity key of the event and a relation end of the route.
    broken, broken_records = samsara_with({"id": "night-67"}, {"id": "45646\u0000"})
    # A NUL in the route's id: a record id (the inbox's lineage keeps it with U+FFFD).
    renamed, renamed_records = samsara_with({"id": "night-68\u0000", "name": "Route 68"})
    assert any("\x00" in r.id for r in renamed_records)
    refused = [r for r in broken_records + renamed_records if holds_nul_identity(r)]
    assert {r.key for r in broken_records} <= {r.key for r in refused}
    assert {r.id for r in typed_records} == {samsara_record_id(typed.key, "night-66"), "route:night-66"}
    assert all("\x00" in r.title for r in typed_records)
    assert {r.id for r in broken_records} == {samsara_record_id(broken.key, "night-67"), "route:night-67"}
    assert all(any("\x00" in x.src for x in r.relations) for r in broken_records)
    first = await send_all([url], [typed, broken, renamed], within=60)
    assert first.acknowledged == {typed.key, broken.key, renamed.key}
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
        [samsara_record_id(d.key) for d in ordinary],
    )
    assert rows[0]["n"] == 300
    # both poisoned deliveries are delivered: stored, or quarantined — never retried forever
    await wait_delivered(
        cluster.dsn, "samsara", [typed.key, broken.key, renamed.key], within=60, schema=cluster.inbox_schema
    )

    cluster.stop()  # Qdrant local mode: one process per folder, the worker's until now
    letters = cluster.cli("dlq", "list", "--json")
    quarantined = [d for d in letters if d["batch_id"].endswith(":quarantine")]
    keys = {k for d in quarantined for k in d["keys"]}
    assert keys == {str(r.key) for r in refused}, letters
    assert all(d["failed"] == ["graph", "postgres"] for d in quarantined), quarantined
    error = " ".join(d["error"] for d in quarantined)
    assert "postgres: " in error
    assert "graph: " in error
    assert "holds a NUL character" in error  # PostgreSQL names the field: entities[1].key, relations[0].src
    assert "identity" in error

    wanted = [r.key for r in typed_records + broken_records + renamed_records]
    stored_ok = [r for r in renamed_records if not holds_nul_identity(r)]
    for name, sink in stores.sinks(cluster).items():
        await sink.open()
        try:
            found = await sink.read(wanted)
            if isinstance(sink, PostgresSink):  # the dead letters keep the refused records exactly
                kept = [
                    r for d in await sink.list_dead_letters() if d.batch_id.endswith(":quarantine") for r in d.records
                ]
                assert sorted(kept, key=lambda r: r.key) == sorted(refused, key=lambda r: r.key)
        finally:
            await sink.close()
        # the typed NUL is stored, exactly; the quarantined records are in no store
        assert found == {r.key: r for r in typed_records + stored_ok}, name
        assert all("\x00" in r.title for r in found.values() if r in typed_records), name
    # PostgreSQL: the record column holds the envelope, the title a sanitised copy
    [row] = await cluster.fetch(
        f"SELECT title, record->>'encoding' AS encoding FROM {cluster.sink_schema}.records WHERE id = $1",
        "route:night-66",
    )
    assert (row["title"], row["encoding"]) == ("Route 66\ufffd (night)", "json+base64")
