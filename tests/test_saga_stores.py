"""The saga across the four real stores: FalkorDB (graph), PostgreSQL+pgvector, Qdrant
(local mode) and Redis. Faults are injected with `FaultySink` around the real sinks."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apex_platform import operations
from apex_platform.contracts import Sink
from apex_platform.models import Entity, Record, RecordKey, Relation
from apex_platform.saga import Saga, SagaSettings, SagaWriteError
from apex_platform.testing.sinks import Faults, FaultySink
from apex_sink_graph import GraphSink, GraphSinkSettings
from apex_sink_postgres import PostgresSink, PostgresSinkSettings
from apex_sink_qdrant import QdrantSink, QdrantSinkSettings
from apex_sink_redis import RedisSink, RedisSinkSettings

pytestmark = [pytest.mark.timeout(180)]
T0 = datetime(2026, 3, 1, tzinfo=UTC)
DIM = 384
FAST = SagaSettings(retry_attempts=3, retry_initial_seconds=0.01, retry_max_seconds=0.05, breaker_failures=50)


def rec(id: str, version: int = 1, text: str = "", deleted: bool = False, embed: bool = True) -> Record:
    vec = tuple(((hash((id, version, i)) % 1000) / 1000.0) - 0.5 for i in range(DIM)) if embed and not deleted else None
    return Record(
        source="trk",
        kind="trk.shipment",
        id=id,
        version=version,
        occurred_at=T0,
        title=f"Shipment {id}",
        text=text or f"PRO {id} v{version}",
        entities=() if deleted else (Entity(type="Shipment", key=id), Entity(type="Carrier", key="ACME")),
        relations=() if deleted else (Relation(src=f"Shipment:{id}", type="CARRIED_BY", dst="Carrier:ACME"),),
        deleted=deleted,
        embedding=vec,
    )


def falkordb_uri(redis_url: str) -> str:
    """falkordb://host:port (a path would name the graph: the Redis db number is not one)."""
    return "falkordb://" + redis_url.removeprefix("redis://").split("/", 1)[0]


class Stores:
    def __init__(self, sinks: dict[str, Sink]) -> None:
        self.real = sinks
        self.faulty = {n: FaultySink(s) for n, s in sinks.items()}

    def saga(self, **kw: Any) -> Saga:
        redis = self.real["redis"]
        pg = self.real["postgres"]
        return Saga(self.faulty, kw.pop("settings", FAST), coordinator=redis, dead_letters=pg, **kw)  # type: ignore[arg-type]

    async def state(self, ids: list[str]) -> dict[str, dict[RecordKey, Record]]:
        keys = [RecordKey("trk", i) for i in ids]
        return {n: await s.read(keys) for n, s in self.real.items()}


@pytest.fixture
async def stores(apex_postgres_server: Any, apex_redis_server: Any, tmp_path: Path) -> AsyncIterator[Stores]:
    tag = f"t{uuid.uuid4().hex[:10]}"
    sinks: dict[str, Sink] = {
        "graph": GraphSink(GraphSinkSettings(uri=falkordb_uri(apex_redis_server.url), name=tag)),
        "postgres": PostgresSink(PostgresSinkSettings(dsn=apex_postgres_server.dsn, schema=tag, embedding_dim=DIM)),
        "qdrant": QdrantSink(QdrantSinkSettings(path=tmp_path / "qdrant", collection=tag, embedding_dim=DIM)),
        "redis": RedisSink(RedisSinkSettings(url=apex_redis_server.url, prefix=tag)),
    }
    for sink in sinks.values():
        await sink.open()
    yield Stores(sinks)
    for sink in sinks.values():
        await sink.close()


def same_everywhere(state: dict[str, dict[RecordKey, Record]]) -> dict[RecordKey, tuple[int, bool]]:
    views = {n: {k: (r.version, r.deleted) for k, r in rows.items()} for n, rows in state.items()}
    first = next(iter(views.values()))
    for name, view in views.items():
        assert view == first, f"{name} differs: {view} vs {first}"
    return first


async def test_all_four_stores_hold_the_record(stores: Stores) -> None:
    await stores.saga().write([rec("a"), rec("b")])
    state = await stores.state(["a", "b"])
    assert same_everywhere(state) == {RecordKey("trk", "a"): (1, False), RecordKey("trk", "b"): (1, False)}
    assert all(rows[RecordKey("trk", "a")] == rec("a") for rows in state.values())


async def test_one_store_failing_permanently_leaves_the_others_as_they_were(stores: Stores) -> None:
    saga = stores.saga()
    await saga.write([rec("a", 1, "before")])
    before = await stores.state(["a", "b"])
    stores.faulty["qdrant"].faults = Faults(fail_writes_forever=True)
    with pytest.raises(SagaWriteError, match="qdrant"):
        await saga.write([rec("a", 2, "after"), rec("b", 1)])
    after = await stores.state(["a", "b"])
    assert after == before  # the update restored to version 1, the new key removed everywhere


async def test_a_store_failing_twice_then_recovering_is_written_once(stores: Stores) -> None:
    stores.faulty["graph"].faults = Faults(fail_writes=2)
    result = await stores.saga().write([rec("a")])
    assert result.written == 1
    assert stores.faulty["graph"].faults.calls.count("write") == 3
    assert same_everywhere(await stores.state(["a"])) == {RecordKey("trk", "a"): (1, False)}


async def test_circuit_opens_and_closes(stores: Stores) -> None:
    saga = stores.saga(
        settings=SagaSettings(
            retry_attempts=1, retry_initial_seconds=0.01, breaker_failures=2, breaker_reset_seconds=0.5
        )
    )
    stores.faulty["redis"].faults = Faults(fail_writes_forever=True)
    for _ in range(2):
        with pytest.raises(SagaWriteError):
            await saga.write([rec("a")])
    assert saga.breaker("redis", "write").state == "open"
    calls = stores.faulty["redis"].faults.calls.count("write")
    with pytest.raises(SagaWriteError, match="open"):
        await saga.write([rec("a")])
    assert stores.faulty["redis"].faults.calls.count("write") == calls  # not even tried
    stores.faulty["redis"].faults = Faults()
    await asyncio.sleep(0.6)
    assert saga.breaker("redis", "write").state == "half_open"
    await saga.write([rec("a")])
    assert saga.breaker("redis", "write").state == "closed"
    assert same_everywhere(await stores.state(["a"])) == {RecordKey("trk", "a"): (1, False)}


async def test_failed_compensation_is_one_dead_letter_and_replay_completes_it(stores: Stores) -> None:
    from apex_platform.plugins import Registry
    from apex_platform.runtime import Runtime

    saga = stores.saga()
    stores.faulty["qdrant"].faults = Faults(fail_writes_forever=True)
    stores.faulty["postgres"].faults = Faults(fail_restores_forever=True)
    with pytest.raises(SagaWriteError) as info:
        await saga.write([rec("a", 1)], batch_id="batch-7")
    letter_id = info.value.dead_letter_id
    assert letter_id is not None
    pg = stores.real["postgres"]
    letters = await pg.list_dead_letters(status="open")  # type: ignore[attr-defined]
    assert [d.id for d in letters] == [letter_id]
    assert letters[0].failed == ["qdrant"]
    assert "postgres" in letters[0].succeeded
    # postgres kept the write it could not undo: the stores disagree until the replay
    stores.faulty["qdrant"].faults = Faults()
    stores.faulty["postgres"].faults = Faults()
    runtime = Runtime(registry=Registry(sinks=dict(stores.faulty)), core=None, temporal=None, saga=saga, codec=None)  # type: ignore[arg-type]
    done = await operations.dlq_replay(runtime, letter_id)
    assert done["status"] == "replayed"
    assert same_everywhere(await stores.state(["a"])) == {RecordKey("trk", "a"): (1, False)}
    assert (await pg.get_dead_letter(letter_id)).status == "replayed"  # type: ignore[attr-defined]
    with pytest.raises(Exception, match="not open"):
        await operations.dlq_replay(runtime, letter_id)


async def test_the_same_batch_twice_changes_nothing(stores: Stores) -> None:
    saga = stores.saga()
    await saga.write([rec("a"), rec("b")])
    before = await stores.state(["a", "b"])
    writes = {n: s.faults.calls.count("write") for n, s in stores.faulty.items()}
    again = await saga.write([rec("a"), rec("b")])
    assert (again.written, again.skipped) == (0, 2)
    assert {n: s.faults.calls.count("write") for n, s in stores.faulty.items()} == writes
    assert await stores.state(["a", "b"]) == before


async def test_an_older_version_after_a_newer_one_keeps_the_newer_everywhere(stores: Stores) -> None:
    saga = stores.saga()
    await saga.write([rec("a", 5, "new")])
    await saga.write([rec("a", 3, "old")])
    state = await stores.state(["a"])
    assert same_everywhere(state) == {RecordKey("trk", "a"): (5, False)}
    assert all(rows[RecordKey("trk", "a")].text == "new" for rows in state.values())


async def test_a_tombstone_removes_the_record_from_every_store(stores: Stores) -> None:
    saga = stores.saga()
    await saga.write([rec("a", 1)])
    await saga.write([rec("a", 2, deleted=True)])
    await saga.write([rec("a", 1)])  # a late, older delivery must not resurrect it
    state = await stores.state(["a"])
    assert same_everywhere(state) == {RecordKey("trk", "a"): (2, True)}
    hits = await stores.real["qdrant"].search(list(rec("a", 1).embedding or ()), limit=5)  # type: ignore[attr-defined]
    assert all(h.record.id != "a" for h in hits)


async def test_two_workers_writing_the_same_record_end_consistent(stores: Stores) -> None:
    """Two sagas (as two workers would) race on one key with different versions."""
    w1, w2 = stores.saga(), stores.saga()

    async def worker(saga: Saga, versions: list[int]) -> None:
        for v in versions:
            await saga.write([rec("hot", v, f"v{v}")])

    await asyncio.gather(worker(w1, [1, 3, 5, 7, 9]), worker(w2, [2, 4, 6, 8, 10]))
    state = await stores.state(["hot"])
    assert same_everywhere(state) == {RecordKey("trk", "hot"): (10, False)}


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(["graph", "postgres", "qdrant", "redis", None]), st.integers(1, 4), st.booleans()),
        min_size=1,
        max_size=5,
    )
)
async def test_any_interleaving_of_failures_leaves_the_stores_consistent(
    stores: Stores, steps: list[tuple[str | None, int, bool]]
) -> None:
    key_id = f"p{uuid.uuid4().hex[:8]}"
    saga = stores.saga()
    committed: list[tuple[int, bool]] = []
    for victim, version, deleted in steps:
        for name, sink in stores.faulty.items():
            sink.faults = Faults(fail_writes_forever=name == victim)
        try:
            await saga.write([rec(key_id, version, deleted=deleted)])
            committed.append((version, deleted))
        except SagaWriteError:
            pass
        view = same_everywhere(await stores.state([key_id]))
        if committed:
            top = max(v for v, _ in committed)
            assert view[RecordKey("trk", key_id)][0] == top
        else:
            assert view == {}
    for sink in stores.faulty.values():
        sink.faults = Faults()
