"""Samsara's vehicle stats feed into the four real stores: 10,000 points, each exactly once
in the graph, PostgreSQL, Qdrant and Redis (the connector's own tests count writes in a
memory sink; this one checks the stores)."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from apex_connector_samsara import SamsaraConnector, SamsaraSettings
from apex_connector_samsara.fake_vendor import FakeSamsara, FakeServer
from apex_platform.models import RecordKey
from apex_platform.temporal.client import task_queue
from apex_platform.temporal.inputs import ActivityTimeouts, PollInput, PollState
from apex_platform.temporal.workflows import StreamWorkflow
from apex_platform.testing.worker import running_worker
from apex_sink_graph import GraphSink, GraphSinkSettings
from apex_sink_postgres import PostgresSink, PostgresSinkSettings
from apex_sink_qdrant import QdrantSink, QdrantSinkSettings
from apex_sink_redis import RedisSink, RedisSinkSettings

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(600)]
TOKEN = "samsara-token-for-store-tests"


async def test_ten_thousand_feed_points_land_in_every_store_exactly_once(
    apex_temporal_server: Any, apex_postgres_server: Any, apex_redis_server: Any, tmp_path: Path
) -> None:
    server = FakeServer(FakeSamsara(vehicles=100, points=100, page_size=500, token=TOKEN))
    server.start()
    tag = f"s{uuid.uuid4().hex[:10]}"
    hostport = apex_redis_server.url.removeprefix("redis://").split("/", 1)[0]
    pg = PostgresSink(PostgresSinkSettings(dsn=apex_postgres_server.dsn, schema=tag))  # type: ignore[arg-type]
    sinks = [
        GraphSink(GraphSinkSettings(uri=f"falkordb://{hostport}", name=tag)),  # type: ignore[arg-type]
        pg,
        QdrantSink(QdrantSinkSettings(path=tmp_path / "qdrant", collection=tag)),
        RedisSink(RedisSinkSettings(url=apex_redis_server.url, prefix=tag)),  # type: ignore[arg-type]
    ]
    connector = SamsaraConnector(SamsaraSettings(base_url=server.base_url, api_token=TOKEN))  # type: ignore[arg-type]
    try:
        async with running_worker(
            apex_temporal_server.address, tmp_path / "home", sources=[connector], sinks=sinks, priorities=["P1"],
            inbox_dsn=apex_postgres_server.dsn,
            prefix=tag, saga=None,
        ) as harness:  # fmt: skip
            handle = await harness.client.start_workflow(
                StreamWorkflow.run,
                PollInput(source="samsara", account="default", interval_seconds=5, timeouts=ActivityTimeouts()),
                id=f"{tag}:stream:samsara:default",
                task_queue=task_queue("P1", harness.temporal),
                result_type=PollState,
            )
            try:
                deadline = time.monotonic() + 500
                while (state := await handle.query(StreamWorkflow.state)).records < 10_000:
                    assert time.monotonic() < deadline, f"stream stuck at {state}"
                    await asyncio.sleep(0.5)
                expected = server.fake.expected_ids("gps")
                assert len(expected) == 10_000
                keys = [RecordKey("samsara", i) for i in sorted(expected)]
                for sink in sinks:
                    found: dict[RecordKey, Any] = {}
                    for start in range(0, len(keys), 1000):
                        found.update(await sink.read(keys[start : start + 1000]))
                    assert set(found) == set(keys), f"{sink.name}: {len(found)} of {len(keys)}"
                    assert all(not r.deleted for r in found.values())
                assert await pg.count(source="samsara") == 10_000  # one row per point: nothing twice
                assert state.pages == 20
            finally:
                await handle.signal(StreamWorkflow.stop)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(handle.result(), 60)
    finally:
        server.stop()


async def test_a_plaid_sync_ends_with_the_vendors_final_state_in_every_store(
    apex_temporal_server: Any, apex_postgres_server: Any, apex_redis_server: Any, tmp_path: Path
) -> None:
    """Several pages of added, modified and removed transactions: every store ends with the
    vendor's final state (the modified amount, and the removed one as a tombstone)."""
    from apex_connector_plaid import PlaidConnector, PlaidSettings, samples
    from apex_connector_plaid.fake_vendor import FakeItem, FakePlaid, FakeVendorServer
    from apex_platform.pollers import start_poller

    fake = FakePlaid("cid", "csecret")
    server = FakeVendorServer(fake)
    url = server.start()
    item = f"item-{uuid.uuid4().hex[:8]}"

    def txn(tid: str, amount: float, name: str = "FUEL") -> dict[str, Any]:
        return samples.transaction(tid, samples.FUEL_CARD, amount, "2026-03-02", name, merchant_name="Pilot")

    changes: list[Any] = [("added", txn(f"t{i}", 10.0 + i)) for i in range(7)]
    changes += [
        ("modified", txn("t1", 99.5, "CORRECTED")),
        ("removed", {"transaction_id": "t2", "account_id": samples.FUEL_CARD}),
    ]
    fake.add_item(FakeItem(item, "access-sandbox-x", samples.demo_accounts(), changes))
    connector = PlaidConnector(
        PlaidSettings(base_url=url, client_id="cid", secret="csecret", page_size=2),  # type: ignore[arg-type]
        token_provider=lambda _item: "access-sandbox-x",
    )
    tag = f"p{uuid.uuid4().hex[:10]}"
    hostport = apex_redis_server.url.removeprefix("redis://").split("/", 1)[0]
    sinks = [
        GraphSink(GraphSinkSettings(uri=f"falkordb://{hostport}", name=tag)),  # type: ignore[arg-type]
        PostgresSink(PostgresSinkSettings(dsn=apex_postgres_server.dsn, schema=tag)),  # type: ignore[arg-type]
        QdrantSink(QdrantSinkSettings(path=tmp_path / "qdrant", collection=tag)),
        RedisSink(RedisSinkSettings(url=apex_redis_server.url, prefix=tag)),  # type: ignore[arg-type]
    ]

    try:
        async with running_worker(
            apex_temporal_server.address, tmp_path / "home", sources=[connector], sinks=sinks, priorities=["P1"],
            inbox_dsn=apex_postgres_server.dsn,
            prefix=tag, saga=None,
        ) as harness:  # fmt: skip
            handle = await start_poller(harness.client, connector, item, harness.temporal, once=True)
            state = await asyncio.wait_for(handle.result(), 180)
        assert state.pages >= 4
        truth = fake.final_state(item)
        keys = [RecordKey("plaid", f"t{i}") for i in range(7)]
        for sink in sinks:
            await sink.open()  # the harness closed them when the worker stopped
            found = await sink.read(keys)
            await sink.close()
            live = {k.id for k, r in found.items() if not r.deleted}
            assert live == set(truth) == {f"t{i}" for i in (0, 1, 3, 4, 5, 6)}, sink.name
            assert found[RecordKey("plaid", "t2")].deleted, sink.name
            assert found[RecordKey("plaid", "t1")].attributes["amount"] == 99.5, sink.name
    finally:
        server.stop()
