"""Plaid's Link webhooks carry `public_token`s (and link tokens): `/item/public_token/exchange`
turns a public token into an access token, so none may be kept. Over real processes (the
API and a worker of `apex-platform`), the fake Plaid signing the webhooks, and the four
real stores: the inbox row, PostgreSQL, Redis, the graph and Qdrant hold the webhook
(as a `plaid.webhook` record) and none of the tokens.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from support.cluster import Cluster

from apex_connector_plaid.fake_vendor import FakePlaid, FakeVendorServer
from apex_connector_plaid.webhooks import record_id_of
from apex_platform.models import RecordKey
from apex_platform.payloads import REDACTED
from apex_platform.testing.inbox import wait_delivered
from apex_sink_graph import GraphSink, GraphSinkSettings
from apex_sink_postgres import PostgresSink, PostgresSinkSettings
from apex_sink_qdrant import QdrantSink, QdrantSinkSettings
from apex_sink_redis import RedisSink, RedisSinkSettings

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

CLIENT_ID = "pt-client"
SECRET = "pt-secret-0123456789abcdef"
MARK = f"mark{uuid.uuid4().hex[:16]}"
PUBLIC_TOKENS = [f"public-sandbox-{MARK}-{i}" for i in range(3)]
LINK_TOKEN = f"link-sandbox-{MARK}-link"


def falkordb_uri(redis_url: str) -> str:
    return "falkordb://" + redis_url.removeprefix("redis://").split("/", 1)[0]


@pytest.fixture
def fake() -> Iterator[tuple[FakePlaid, str]]:
    plaid = FakePlaid(CLIENT_ID, SECRET)
    server = FakeVendorServer(plaid)
    url = server.start()
    try:
        yield plaid, url
    finally:
        server.stop()


def link_webhooks() -> list[bytes]:
    """SESSION_FINISHED and ITEM_ADD_RESULT as Plaid documents them (pretty-printed)."""
    session = {
        "webhook_type": "LINK",
        "webhook_code": "SESSION_FINISHED",
        "status": "SUCCESS",
        "link_session_id": f"356dbb28-{MARK}",
        "link_token": LINK_TOKEN,
        "public_token": PUBLIC_TOKENS[0],
        "public_tokens": [PUBLIC_TOKENS[0], PUBLIC_TOKENS[1]],
        "environment": "sandbox",
    }
    added = {
        "webhook_type": "LINK",
        "webhook_code": "ITEM_ADD_RESULT",
        "link_session_id": f"356dbb28-{MARK}",
        "link_token": LINK_TOKEN,
        "public_token": PUBLIC_TOKENS[2],
        "environment": "sandbox",
    }
    return [json.dumps(doc, indent=2).encode() for doc in (session, added)]


async def test_no_public_token_reaches_the_inbox_or_any_store(
    tmp_path: Path, apex_temporal_server: Any, apex_postgres_server: Any, apex_redis_server: Any, fake: Any
) -> None:
    plaid, plaid_url = fake
    tag = f"pt{uuid.uuid4().hex[:8]}"
    redis_url = apex_redis_server.url
    cluster = Cluster(
        tmp_path,
        apex_temporal_server.address,
        apex_postgres_server.dsn,
        APEX_PLUGINS="plaid,postgres,redis,graph,qdrant",
        APEX_PLAID_BASE_URL=plaid_url,
        APEX_PLAID_CLIENT_ID=CLIENT_ID,
        APEX_PLAID_SECRET=SECRET,
        APEX_REDIS_URL=redis_url,
        APEX_REDIS_PREFIX=tag,
        APEX_GRAPH_URI=falkordb_uri(redis_url),
        APEX_GRAPH_NAME=tag,
        APEX_QDRANT_PATH=str(tmp_path / "qdrant"),
        APEX_QDRANT_COLLECTION=tag,
    )
    try:
        url = cluster.start_api()
        cluster.start_worker()
        event_ids = []
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            for body in link_webhooks():
                resp = await http.post("/webhooks/plaid", content=body, headers=plaid.sign(body))
                assert resp.status_code == 202, resp.text
                event_ids.append(resp.json()["event_id"])
        await wait_delivered(cluster.dsn, "plaid", event_ids, within=90, schema=cluster.inbox_schema)
    finally:
        cluster.stop()  # Qdrant local mode: one process per folder, the worker's until now

    # the inbox row: the webhook as stored, tokens redacted, everything else kept
    rows = await cluster.fetch(
        f"SELECT event_id, body FROM {cluster.inbox_schema}.deliveries WHERE source = 'plaid' ORDER BY seq"
    )
    assert [r["event_id"] for r in rows] == event_ids
    stored = [json.loads(bytes(r["body"])) for r in rows]
    assert stored[0]["public_token"] == stored[0]["link_token"] == REDACTED
    assert stored[0]["public_tokens"] == [REDACTED, REDACTED]
    assert stored[0]["link_session_id"] == f"356dbb28-{MARK}"
    assert stored[1]["webhook_code"] == "ITEM_ADD_RESULT"
    # nothing anywhere in either schema holds a token (every row of every table, as text)
    for schema in (cluster.inbox_schema, cluster.sink_schema):
        tables = await cluster.fetch("SELECT table_name FROM information_schema.tables WHERE table_schema = $1", schema)
        assert tables
        for table in tables:
            hits = await cluster.fetch(
                f'SELECT count(*) AS n FROM {schema}."{table["table_name"]}" AS t WHERE t::text LIKE $1',
                f"%{MARK}-%",
            )
            assert hits[0]["n"] == 0, (schema, table["table_name"])
    # (a bytea column reads as hex in a row's text: the bodies are searched as bytes)
    hits = await cluster.fetch(
        f"SELECT count(*) AS n FROM {cluster.inbox_schema}.deliveries WHERE position($1::bytea in body) > 0",
        MARK.encode() + b"-",
    )
    assert hits[0]["n"] == 0

    # every store holds the webhook records, with the tokens redacted
    keys = [RecordKey("plaid", record_id_of(event_id)) for event_id in event_ids]  # event id = record id + window
    sinks = {
        "postgres": PostgresSink(PostgresSinkSettings(dsn=cluster.dsn, schema=cluster.sink_schema)),
        "redis": RedisSink(RedisSinkSettings(url=redis_url, prefix=tag)),
        "graph": GraphSink(GraphSinkSettings(uri=falkordb_uri(redis_url), name=tag)),
        "qdrant": QdrantSink(QdrantSinkSettings(path=tmp_path / "qdrant", collection=tag)),
    }
    for name, sink in sinks.items():
        await sink.open()
        try:
            found = await sink.read(keys)
        finally:
            await sink.close()
        assert set(found) == set(keys), name
        for record in found.values():
            assert record.kind == "plaid.webhook"
            assert MARK + "-" not in record.model_dump_json(), name
            assert record.attributes["payload"]["public_token"] == REDACTED, name

    # and raw: no Redis value (cache, graph) and no Qdrant file holds one
    client = aioredis.from_url(redis_url)
    try:
        async for key in client.scan_iter(count=1000):
            kind = (await client.type(key)).decode()
            if kind == "string":
                assert MARK.encode() + b"-" not in (await client.get(key) or b""), key
            elif kind == "hash":
                assert all(MARK.encode() + b"-" not in v for v in (await client.hgetall(key)).values()), key
        graph_dump = await client.execute_command("GRAPH.QUERY", tag, "MATCH (n) RETURN properties(n)")
        assert MARK + "-" not in repr(graph_dump)
    finally:
        await client.aclose()
    for path in (tmp_path / "qdrant").rglob("*"):
        if path.is_file():
            assert MARK.encode() + b"-" not in path.read_bytes(), path
