"""What the edge answers and what it commits, pinned on every connector's signed sample
traffic before the intake path's CPU was cut (issue 15): for each delivery the HTTP
answer byte for byte (status, content type, JSON body), and the inbox row (event id,
headers kept, body byte for byte, size); again while the row is pending (202, "pending"),
and once it is delivered (200 "duplicate"), with nothing doubled; and a burst of
concurrent deliveries sharing group commits. The expectations come from the connectors
themselves (`receive`), the request as sent and the stored-header rule, not from the code
under test.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import msgspec
import pytest

from apex_platform.capabilities import DemoEnvironmentSource, FakeVendorSource, redacted_keys
from apex_platform.contracts import DemoSource, PollTrigger, SampleDelivery, WebhookReply
from apex_platform.inbox import DROPPED_HEADERS
from apex_platform.models import InboundEvent
from apex_platform.payloads import decode_json, redact_json_keys
from apex_platform.plugins import build_registry
from apex_platform.testing.stack import serving_app
from apex_platform.testing.worker import build_runtime

pytestmark = pytest.mark.timeout(300)

#: every first-party source with sample traffic (webhooks, and the LLM push API)
SOURCES = ("frontapp", "turvo", "samsara", "sonar", "plaid", "llm")
PREFIX = f"golden{uuid.uuid4().hex[:8]}"  # task queues, drain ids and the inbox schema of this module's own


@pytest.fixture
def samples(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, list[SampleDelivery]]]:
    """Each source's demo deliveries, signed, with its demo settings in the environment
    (and its fake vendor running where verification fetches keys, as Plaid's does)."""
    registry = build_registry(",".join(SOURCES))
    out: dict[str, list[SampleDelivery]] = {}
    with contextlib.ExitStack() as stack:
        for name in SOURCES:
            connector = registry.sources[name]
            if isinstance(connector, FakeVendorSource):
                vendor = connector.start_fake_vendor()
                stack.callback(vendor.stop)
                for key, value in vendor.environment.items():
                    monkeypatch.setenv(key, value)
            if isinstance(connector, DemoEnvironmentSource):
                for key, value in connector.demo_environment().items():
                    monkeypatch.setenv(key, value)
            assert isinstance(connector, DemoSource)
            out[name] = connector.demo_deliveries()
        from apex_platform.api import push

        push._key_scopes.cache_clear()  # the push keys of this environment
        yield out
        push._key_scopes.cache_clear()


def expected_answer(doc: dict[str, Any]) -> bytes:
    return msgspec.json.encode(doc)


def kept_headers(request: Any) -> dict[str, str]:
    """The stored-header rule: every header as sent (the test client's transport adds
    `host`), names lower-cased, but credentials and hop-by-hop ones."""
    sent = {"host": request.url.host, **{k.lower(): v for k, v in request.headers.items()}}
    return {k: v for k, v in sent.items() if k not in DROPPED_HEADERS}


async def inbox_rows(pool: asyncpg.Pool, prefix: str = PREFIX) -> list[asyncpg.Record]:
    return await pool.fetch(
        f"SELECT source, event_id, headers, body, size, status FROM inbox_{prefix}.deliveries ORDER BY seq"
    )


async def test_every_sample_delivery_is_answered_and_committed_as_before(
    samples: dict[str, list[SampleDelivery]], apex_app_client: Any, apex_postgres_server: Any
) -> None:
    client = apex_app_client(*SOURCES, prefix=PREFIX)
    registry = build_registry(",".join(SOURCES))
    pool = await asyncpg.create_pool(apex_postgres_server.dsn, min_size=1, max_size=2)
    try:
        async with client:
            expected_rows: dict[tuple[str, str], tuple[dict[str, str], bytes]] = {}
            accepted: list[tuple[str, SampleDelivery, bytes]] = []
            for source, deliveries in samples.items():
                connector: Any = registry.sources[source]  # a webhook or push source: it has receive
                for d in deliveries:
                    # the connector's own verdict, before the API sees it
                    received = connector.receive({k.lower(): v for k, v in d.headers.items()}, d.body)
                    response = await client.post(d.path, content=d.body, headers=d.headers)
                    if isinstance(received, PollTrigger):
                        # a sync trigger wakes a poller through Temporal, which is not here
                        assert response.status_code == 503, response.text
                        continue
                    if isinstance(received, WebhookReply):
                        assert response.status_code == received.status_code
                        continue
                    assert isinstance(received, InboundEvent)
                    key = (source, received.event_id)
                    doc: dict[str, Any] = {
                        "status": "accepted",
                        "workflow_id": f"{PREFIX}:drain:{source}",
                        "event_id": received.event_id,
                    }
                    if key in expected_rows:  # a sample sent twice: known, not yet delivered
                        doc["inbox"] = "pending"
                    assert response.status_code == 202, response.text
                    assert response.headers["content-type"] == "application/json"
                    assert response.content == expected_answer(doc)
                    body = redact_json_keys(d.body, redacted_keys(connector), what="sample")
                    expected_rows.setdefault(key, (kept_headers(response.request), body))
                    accepted.append((source, d, expected_answer({**doc, "inbox": "pending"})))
            assert {s for s, _ in expected_rows} >= {"frontapp", "turvo", "samsara", "sonar", "llm"}

            def check(rows: list[asyncpg.Record], status: str) -> None:
                assert len(rows) == len(expected_rows)  # nothing lost, nothing doubled
                for row in rows:
                    headers, body = expected_rows[(row["source"], row["event_id"])]
                    assert json.loads(row["headers"]) == headers
                    assert bytes(row["body"]) == body
                    assert row["size"] == len(body)
                    assert row["status"] == status

            check(await inbox_rows(pool), "pending")

            # the same traffic again, all at once: each is known and pending (202 again)
            answers = await asyncio.gather(
                *(client.post(d.path, content=d.body, headers=d.headers) for _, d, _ in accepted)
            )
            for (_, _, pending), response in zip(accepted, answers, strict=True):
                assert response.status_code == 202
                assert response.content == pending
            check(await inbox_rows(pool), "pending")

            # once delivered: 200 duplicate, and still one row each
            await pool.execute(
                f"UPDATE inbox_{PREFIX}.deliveries SET status = 'delivered', delivered_at = now(), records = 1"
            )
            for source, d, _ in accepted:
                response = await client.post(d.path, content=d.body, headers=d.headers)
                again: Any = registry.sources[source]
                received = again.receive({k.lower(): v for k, v in d.headers.items()}, d.body)
                assert isinstance(received, InboundEvent)
                assert response.status_code == 200
                assert response.content == expected_answer(
                    {"status": "duplicate", "workflow_id": f"{PREFIX}:drain:{source}", "event_id": received.event_id}
                )
            check(await inbox_rows(pool), "delivered")
    finally:
        await pool.close()


async def test_a_burst_of_concurrent_deliveries_is_each_committed_once(
    samples: dict[str, list[SampleDelivery]], apex_postgres_server: Any, tmp_path: Path
) -> None:
    """60 Samsara deliveries (its published RouteStopArrival, a fresh eventId each) and 10
    repeats sent at once over HTTP: they share group commits; every one is answered, each
    row is committed once, byte for byte."""
    from apex_connector_samsara import samples as samsara_samples
    from apex_connector_samsara import signatures

    prefix = PREFIX + "b"
    runtime = build_runtime("127.0.0.1:1", tmp_path, ["samsara"], prefix=prefix, inbox_dsn=apex_postgres_server.dsn)
    template = samsara_samples.route_stop_arrival()
    bodies = []
    for _ in range(60):
        template["eventId"] = str(uuid.uuid4())
        bodies.append(json.dumps(template, separators=(",", ":")).encode())
    now = int(time.time())
    secret = os.environ["APEX_SAMSARA_WEBHOOK_SECRET"]
    sends = [(b, {**signatures.sign(b, secret, now), "Content-Type": "application/json"}) for b in bodies]
    sends += sends[:10]  # ten of them twice in the same burst
    pool = await asyncpg.create_pool(apex_postgres_server.dsn, min_size=1, max_size=2)
    try:
        async with serving_app(runtime) as url, httpx.AsyncClient(base_url=url, timeout=60) as http:
            answers = await asyncio.gather(*(http.post("/webhooks/samsara", content=b, headers=h) for b, h in sends))
        ids = [json.loads(b)["eventId"] for b, _ in sends]
        for event_id, response in zip(ids, answers, strict=True):
            assert response.status_code == 202, response.text
            assert json.loads(response.content)["event_id"] == event_id
        pending = sum(json.loads(r.content).get("inbox") == "pending" for r in answers)
        assert pending == 10  # the repeats: known, not accepted twice
        rows = await inbox_rows(pool, prefix)
        assert sorted(r["event_id"] for r in rows) == sorted(set(ids))
        by_id = {json.loads(b)["eventId"]: b for b, _ in sends}
        for row in rows:
            assert bytes(row["body"]) == by_id[row["event_id"]]
        groups = await pool.fetchval(f"SELECT count(DISTINCT xmin::text) FROM inbox_{prefix}.deliveries")
        assert groups < 60  # group commit: several deliveries per transaction
    finally:
        await pool.close()


@pytest.mark.parametrize("source", SOURCES)
def test_the_sample_bodies_decode_to_what_json_decodes(source: str, samples: dict[str, list[SampleDelivery]]) -> None:
    """The strict decoder's value for a valid body is the standard library's, exactly."""
    for d in samples[source]:
        assert repr(decode_json(d.body, what="sample")) == repr(json.loads(d.body))
