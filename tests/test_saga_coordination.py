"""The saga's writers against the four real stores when coordination fails: the Redis
lock is only an optimisation (see `apex_platform.contracts.Sink` and the saga's module
docstring), so a lock that expires under a stalled writer, a Redis restart that loses
every lock and the commit ledger, no coordinator at all, a cancelled write and a worker
told to stop while a sink hangs may slow writers down, but never roll back a newer
committed version, lose a committed record, or land a batch twice.

Real parts: PostgreSQL+pgvector, FalkorDB and Redis (the session's servers, or a Redis of
a test's own that it kills), Qdrant in local mode, `apex-platform worker` processes. A
second worker is a second saga with connections of its own (in a thread with its own
event loop where the first worker's loop must stop); Qdrant's local mode admits one
client per folder and process, so that one client is shared.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from support.cluster import Cluster, front_deliveries
from support.senders import send_all
from test_saga_stores import DIM, falkordb_uri, rec

from apex_platform.contracts import Previous, Sink
from apex_platform.errors import SinkError
from apex_platform.models import Record, RecordKey, WriteResult
from apex_platform.saga import Saga, SagaSettings, SagaWriteError
from apex_platform.stack.ports import free_port
from apex_platform.stack.redis_server import RedisServer
from apex_platform.testing.inbox import delivery_states, wait_delivered
from apex_sink_graph import GraphSink, GraphSinkSettings
from apex_sink_postgres import PostgresSink, PostgresSinkSettings
from apex_sink_qdrant import QdrantSink, QdrantSinkSettings
from apex_sink_redis import RedisSink, RedisSinkSettings

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(180)]

STORES = ("graph", "postgres", "qdrant", "redis")
FAST = SagaSettings(retry_attempts=3, retry_initial_seconds=0.01, retry_max_seconds=0.05, breaker_failures=1000)
#: a lock TTL far below how long the stalled writer below stops
SHORT_LOCK = FAST.model_copy(update={"lock_ttl_seconds": 0.5})


# --- where the records are, and each worker's connections to it ----------------------------


@dataclass
class Place:
    """The stores of one deployment; every worker connects to the same ones."""

    tag: str
    dsn: str
    graph_uri: str
    redis_url: str
    qdrant: QdrantSink

    def sink(self, name: str) -> Sink:
        """A new connection to one store (the shared Qdrant client for Qdrant)."""
        if name == "graph":
            return GraphSink(GraphSinkSettings(uri=self.graph_uri, name=self.tag))
        if name == "postgres":
            return PostgresSink(PostgresSinkSettings(dsn=self.dsn, schema=self.tag, embedding_dim=DIM))
        if name == "redis":
            return RedisSink(RedisSinkSettings(url=self.redis_url, prefix=self.tag))
        assert name == "qdrant"
        return self.qdrant

    @contextlib.asynccontextmanager
    async def worker(self, names: Sequence[str] = STORES) -> AsyncIterator[dict[str, Sink]]:
        """One worker's own connections to `names`, opened for the block."""
        sinks = {name: self.sink(name) for name in names}
        opened: list[Sink] = []
        try:
            for sink in sinks.values():
                if sink is not self.qdrant:
                    await sink.open()
                    opened.append(sink)
            yield sinks
        finally:
            for sink in opened:
                with contextlib.suppress(Exception):
                    await sink.close()

    async def copies(self, ids: Sequence[str]) -> dict[str, dict[str, int]]:
        """How many rows (PostgreSQL) and record nodes (graph) each id has. Qdrant's point id
        and Redis's key are derived from the record key, so they cannot hold two."""
        conn = await asyncpg.connect(self.dsn)
        try:
            rows = await conn.fetch(
                f"SELECT id, count(*) AS n FROM {self.tag}.records WHERE source = 'trk' AND id = ANY($1) GROUP BY id",
                list(ids),
            )
        finally:
            await conn.close()
        graph = GraphSink(GraphSinkSettings(uri=self.graph_uri, name=self.tag))
        await graph.open()
        try:
            nodes = await graph.backend.read(
                "MATCH (r:Record) WHERE r.source = 'trk' AND r.id IN $ids RETURN r.id AS id, count(r) AS n",
                {"ids": list(ids)},
            )
        finally:
            await graph.close()
        return {
            "postgres": {r["id"]: r["n"] for r in rows},
            "graph": {r["id"]: r["n"] for r in nodes},
        }


@pytest.fixture
async def place(apex_postgres_server: Any, apex_redis_server: Any, tmp_path: Path) -> AsyncIterator[Place]:
    tag = f"c{uuid.uuid4().hex[:10]}"
    qdrant = QdrantSink(QdrantSinkSettings(path=tmp_path / "qdrant", collection=tag, embedding_dim=DIM))
    await qdrant.open()
    yield Place(tag, apex_postgres_server.dsn, falkordb_uri(apex_redis_server.url), apex_redis_server.url, qdrant)
    await qdrant.close()


async def contents(sinks: Mapping[str, Sink], ids: Sequence[str]) -> dict[str, dict[str, Record]]:
    """What every store holds now for `ids` (by id), read from the store itself."""
    keys = [RecordKey("trk", i) for i in ids]
    out: dict[str, dict[str, Record]] = {}
    for name, sink in sinks.items():
        inner = sink.inner if isinstance(sink, Gate) else sink
        out[name] = {k.id: r for k, r in (await inner.read(keys)).items()}
    return out


def show(record: Record | None) -> str:
    if record is None:
        return "nothing"
    return f"v{record.version}{' (tombstone)' if record.deleted else ''} {record.text!r}"


def assert_holds(state: Mapping[str, Mapping[str, Record]], expected: Mapping[str, Record | None]) -> None:
    """Every store holds exactly `expected` (None: nothing) for each id."""
    wrong = [
        f"{name}: {id} holds {show(rows.get(id))}, expected {show(want)}"
        for name, rows in state.items()
        for id, want in expected.items()
        if rows.get(id) != want
    ]
    assert not wrong, "; ".join(wrong)


# --- a worker's view of a store: hold, stall or fail its writes -------------------------------


class Gate:
    """Wraps a real sink for one worker. A write signals `entered`, then awaits `hold` if
    set (the worker's other tasks, its lock renewal among them, go on), then runs `stall`
    if set (a blocking call: the worker's whole event loop stops, as in a long GC pause or
    a CPU-bound step), then fails when `fail` is set (after writing when `partial`).
    `landed` counts the writes that reached the store; `watch` runs after every call."""

    def __init__(self, inner: Sink) -> None:
        self.inner = inner
        self.name = inner.name
        self.hold: Callable[[], Awaitable[object]] | None = None
        self.stall: Callable[[], None] | None = None
        self.fail = False
        self.partial = False
        self.fail_restores = False
        self.entered = asyncio.Event()
        self.wrote = asyncio.Event()
        self.landed = 0
        self.watch: Callable[[str], Awaitable[None]] | None = None

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def health(self) -> None: ...

    async def read(self, keys: Sequence[RecordKey]) -> dict[RecordKey, Record]:
        return await self.inner.read(keys)

    async def write(self, records: Sequence[Record], *, writer: str | None = None) -> Previous:
        self.entered.set()
        if self.hold is not None:
            await self.hold()
        if self.stall is not None:
            stall, self.stall = self.stall, None
            stall()
        try:
            if self.fail and not self.partial:
                raise SinkError(f"injected write failure in {self.name}")
            self.landed += 1
            changed = await self.inner.write(records, writer=writer)
            self.wrote.set()
            if self.fail:
                raise SinkError(f"injected write failure in {self.name} (after writing)")
            return changed
        finally:
            if self.watch is not None:
                await self.watch(f"{self.name} write")

    async def restore(self, previous: Mapping[RecordKey, Record | None], *, writer: str | None = None) -> None:
        try:
            if self.fail_restores:
                raise SinkError(f"injected restore failure in {self.name}")
            await self.inner.restore(previous, writer=writer)
        finally:
            if self.watch is not None:
                await self.watch(f"{self.name} restore")


def gated(sinks: Mapping[str, Sink]) -> dict[str, Gate]:
    return {name: Gate(sink) for name, sink in sinks.items()}


def saga_of(sinks: Mapping[str, Sink], settings: SagaSettings = FAST) -> Saga:
    """The saga a worker builds (coordinator and dead-letter queue among its sinks)."""
    coordinator = sinks.get("redis")
    if isinstance(coordinator, Gate):
        coordinator = coordinator.inner
    dlq = sinks["postgres"]
    return Saga(
        dict(sinks),
        settings,
        coordinator=coordinator,  # type: ignore[arg-type]
        dead_letters=dlq.inner if isinstance(dlq, Gate) else dlq,  # type: ignore[arg-type]
    )


async def all_wrote(gates: Sequence[Gate]) -> None:
    await asyncio.gather(*(g.wrote.wait() for g in gates))


class OtherWorker:
    """A second worker in a thread of its own: its own event loop and connections (it goes
    on while the first worker's loop is stopped). Writes `records` once `go` is set."""

    def __init__(self, place: Place, records: Sequence[Record], go: threading.Event) -> None:
        self.place = place
        self.records = list(records)
        self.go = go
        self.done = threading.Event()
        self.result: WriteResult | None = None
        self.error: BaseException | None = None
        self.opened = threading.Event()
        self._thread = threading.Thread(target=self._run, name="other-worker", daemon=True)

    def start(self) -> OtherWorker:
        self._thread.start()
        assert self.opened.wait(60), "the other worker could not connect"
        return self

    def _run(self) -> None:
        try:
            self.result = asyncio.run(self._main())
        except BaseException as exc:
            self.error = exc
        finally:
            self.opened.set()
            self.done.set()

    async def _main(self) -> WriteResult:
        async with self.place.worker() as sinks:
            self.opened.set()
            if not await asyncio.to_thread(self.go.wait, 60):
                raise TimeoutError("never told to write")
            return await saga_of(sinks).write(self.records)

    def join(self) -> WriteResult:
        self._thread.join(60)
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


# --- 1. a lock that expires under a stalled writer ----------------------------------------


#: (direction, outcome): whether the writer that finishes late (A) has the older or the
#: newer version of the contested key, and how its slow store call ends
LATE = [
    pytest.param("older_late", "fails", id="older-fails"),
    pytest.param("older_late", "fails_after_writing", id="older-fails-after-writing"),
    pytest.param("older_late", "succeeds", id="older-succeeds"),
    pytest.param("newer_late", "succeeds", id="newer-succeeds"),
    # the older version another writer committed meanwhile lost to the in-flight newer one;
    # it still stamped the key, so the newer writer's undo leaves it (found by this test)
    pytest.param("newer_late", "fails", id="newer-fails"),
]


def late_batches(direction: str, hot: str, own: str) -> tuple[list[Record], list[Record]]:
    """(A's batch: `hot` and `own`, B's batch: `hot`); A's `hot` is older or newer than B's."""
    a, b = (1, 2) if direction == "older_late" else (2, 1)
    return (
        [rec(hot, a, f"PRO 4417 status v{a} (worker A)"), rec(own, 1, "PRO 5120 picked up (worker A)")],
        [rec(hot, b, f"PRO 4417 status v{b} (worker B)")],
    )


def after_late_writer(
    state: Mapping[str, Mapping[str, Record]], a: list[Record], b: list[Record], outcome: str
) -> None:
    """What every store must hold once A's attempt is over: A succeeded, `hot` at the higher
    version and `own` A's; A failed, B's committed `hot` (or A's newer one where A wrote it)
    and none of `own` (but in a store whose call wrote and then failed: that call returned
    nothing to undo, the retry confirms it)."""
    hot, own = a[0].id, a[1].id
    if outcome == "succeeds":
        assert_holds(state, {hot: max(a[0], b[0], key=lambda r: r.version), own: a[1]})
        return
    partial = {"qdrant"} if outcome == "fails_after_writing" else set()
    if a[0].version > b[0].version:
        # B's committed older version lost to A's newer one in the stores A had written,
        # and stamped the key there: A's undo leaves A's version (newer than what was
        # committed, never older) until A's retry commits it
        # and B's read-repair brought the store A had not written yet up to A's version
        assert_holds(state, {hot: a[0]})
    else:
        assert_holds(state, {hot: b[0]})
    assert_holds({n: rows for n, rows in state.items() if n not in partial}, {own: None})
    assert_holds({n: rows for n, rows in state.items() if n in partial}, {own: a[1]})


@pytest.mark.parametrize(("direction", "outcome"), LATE)
async def test_a_lock_expired_under_a_stalled_writer_never_rolls_back_what_another_worker_committed_meanwhile(
    place: Place, direction: str, outcome: str
) -> None:
    """Worker A (lock TTL 0.5 s) has written `hot` and `own` to graph, PostgreSQL and Redis
    when its event loop stops inside the Qdrant write (its lock renewal cannot run); its
    locks expire, worker B takes them and commits another version of `hot` in all four
    stores; A goes on and its Qdrant write fails (before or after writing) or succeeds.
    No store loses B's committed version to A's undo, a late success loses to a newer
    version by the version rule, and A's retry ends every store at the newest version."""
    hot, own = f"hot-{direction}-{outcome}", f"own-{direction}-{outcome}"
    batch, other = late_batches(direction, hot, own)
    go = threading.Event()
    b = OtherWorker(place, other, go).start()
    async with place.worker() as sinks:
        gates = gated(sinks)
        qdrant = gates["qdrant"]
        qdrant.hold = lambda: all_wrote([g for n, g in gates.items() if n != "qdrant"])
        stalled_through: list[bool] = []

        def stall() -> None:  # A's loop stops here, its locks held, until B committed
            go.set()
            stalled_through.append(b.done.wait(30))

        qdrant.stall = stall
        qdrant.fail = outcome != "succeeds"
        qdrant.partial = outcome == "fails_after_writing"
        saga_a = saga_of(gates, SHORT_LOCK)
        if outcome == "succeeds":
            # every store holds A's batch, but its locks expired under it: the ledger refuses
            # to mark it (what it wrote may have been overwritten or lost), so it is retried
            with pytest.raises(SagaWriteError, match="could not be marked committed"):
                await saga_a.write(batch)
        else:
            with pytest.raises(SagaWriteError, match="qdrant"):
                await saga_a.write(batch)
        assert stalled_through == [True], "B did not commit while A's lock was expired"
        assert b.join().written == 1
        after_late_writer(await contents(sinks, [hot, own]), batch, other, outcome)
        qdrant.fail = False
        await saga_a.write(batch)  # Temporal's retry of A's batch (skipped when committed)
        newest = max(batch[0], other[0], key=lambda r: r.version)
        assert_holds(await contents(sinks, [hot, own]), {hot: newest, own: batch[1]})
    assert await place.copies([hot, own]) == {"postgres": {hot: 1, own: 1}, "graph": {hot: 1, own: 1}}


# --- 2. Redis restarted mid-batch, its data lost ------------------------------------------


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of this test's own (the session's one holds the graph): it is killed."""
    server = RedisServer(tmp_path / "redis", port=free_port(), load_falkordb=False)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def crash(server: RedisServer) -> None:
    """SIGKILL, and its data gone: a failover to an empty replica (locks, ledger, cache)."""
    assert server.pid is not None
    os.kill(server.pid, signal.SIGKILL)
    server.stop()
    shutil.rmtree(server.storage_dir)


async def until_committed(saga: Saga, records: Sequence[Record], *, within: float = 60, **kw: Any) -> WriteResult:
    """Write as Temporal retries an activity: again after any failure."""
    deadline = time.monotonic() + within
    while True:
        try:
            return await saga.write(records, **kw)
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


@pytest.mark.parametrize(
    ("slow", "reconnected", "slow_fails"),
    [
        pytest.param("redis", False, False, id="redis-slow"),
        pytest.param("redis", True, False, id="redis-slow-reconnected"),
        pytest.param("qdrant", False, False, id="qdrant-slow"),
        pytest.param("qdrant", False, True, id="qdrant-slow-fails"),
        pytest.param("qdrant", True, True, id="qdrant-slow-reconnected-fails"),
        # the batch's Redis write went to the server that was lost; with the connection
        # re-established the ledger refuses (the locks are gone) and the retry writes it again
        pytest.param("qdrant", True, False, id="qdrant-slow-reconnected"),
    ],
)
async def test_redis_restarted_empty_mid_batch_a_retry_completes_it_and_a_newer_write_meanwhile_is_kept(
    place: Place, own_redis: RedisServer, slow: str, reconnected: bool, slow_fails: bool
) -> None:
    """Worker A's batch (three records) is written to every store but one, `slow`, when
    Redis is killed and comes back empty (no locks, no ledger, no cached records); worker B
    writes v2 of one of the keys while Redis is down (its attempts fail until it is back)
    and commits. With `reconnected`, worker A's connection to Redis is new again before its
    slow write goes on (another batch of the same worker went through it, as concurrent
    activities do, or redis-py's health check after 30 s idle). With `slow_fails`, A's slow
    write then fails and A undoes its attempt. Whether A's attempt commits or fails, after
    its retries every store holds B's v2 of that key and v1 of the others, once."""
    place.redis_url = own_redis.url
    ids = [f"r{i}-{slow}-{int(reconnected)}{int(slow_fails)}" for i in range(3)]
    batch = [rec(i, 1, f"PRO {i} picked up (worker A)") for i in ids]
    newer = rec(ids[0], 2, f"PRO {ids[0]} delivered (worker B)")
    release = asyncio.Event()
    async with place.worker() as sinks_a, place.worker() as sinks_b:
        gates = gated(sinks_a)
        gates[slow].hold = release.wait
        saga_a = saga_of(gates)
        first = asyncio.create_task(saga_a.write(batch, batch_id="batch-A"))
        await all_wrote([g for n, g in gates.items() if n != slow])
        await gates[slow].entered.wait()
        await asyncio.to_thread(crash, own_redis)
        writer_b = asyncio.create_task(until_committed(saga_of(sinks_b), [newer]))
        await asyncio.sleep(0.5)
        assert not writer_b.done(), "B committed with Redis down"
        await asyncio.to_thread(own_redis.start)  # empty: the data folder is gone
        assert (await writer_b).written == 1
        assert_holds(await contents(sinks_b, [ids[0]]), {ids[0]: newer})
        if reconnected:  # another batch of worker A, on its connections
            await until_committed(saga_of(sinks_a), [rec(f"other-{slow}", 1)])
        gates[slow].fail = slow_fails
        release.set()
        if slow_fails:
            with pytest.raises(SagaWriteError, match=slow):
                await first
            gates[slow].fail = False
        else:
            with contextlib.suppress(SagaWriteError, SinkError):
                await first  # A's attempt may fail: Temporal retries it
        await until_committed(saga_a, batch, batch_id="batch-A")
        await until_committed(saga_a, batch, batch_id="batch-A")  # and again: changes nothing
        state = await contents(sinks_a, ids)
    assert_holds(state, {ids[0]: newer, ids[1]: batch[1], ids[2]: batch[2]})
    assert await place.copies(ids) == {"postgres": dict.fromkeys(ids, 1), "graph": dict.fromkeys(ids, 1)}


# --- 3. no coordinator: two writers, no lock, no ledger -------------------------------------

NO_REDIS = ("graph", "postgres", "qdrant")


class Watch:
    """After every store call of either writer: no store holds a key below the newest
    version committed (a write that returned) before the check began."""

    def __init__(self, sinks: Mapping[str, Sink], ids: Sequence[str]) -> None:
        self.sinks = sinks
        self.ids = list(ids)
        self.committed: dict[str, int] = {}
        self.violations: list[str] = []

    def commit(self, records: Sequence[Record]) -> None:
        for r in records:
            self.committed[r.id] = max(self.committed.get(r.id, 0), r.version)

    async def __call__(self, when: str) -> None:
        expected = dict(self.committed)
        state = await contents(self.sinks, self.ids)
        for name, rows in state.items():
            for id, version in expected.items():
                held = rows.get(id)
                if held is None or held.version < version:
                    self.violations.append(f"after {when}: {name} holds {show(held)} of {id}, v{version} was committed")


@pytest.mark.parametrize(("direction", "outcome"), LATE)
async def test_without_a_coordinator_a_batch_finishing_late_never_rolls_back_what_the_other_writer_committed(
    place: Place, direction: str, outcome: str
) -> None:
    """No Redis sink: no lock and no ledger. Writer A (`hot` and `own`) has written graph and
    PostgreSQL and waits in Qdrant; writer B commits another version of `hot`; A's Qdrant
    write then fails (before or after writing) or succeeds. No store ever holds less than
    what was committed (checked after every store call of either writer), and A's retry
    ends every store at the newest version."""
    hot, own = f"hot-{direction}-{outcome}", f"own-{direction}-{outcome}"
    batch, other = late_batches(direction, hot, own)
    async with place.worker(NO_REDIS) as sinks_a, place.worker(NO_REDIS) as sinks_b:
        watch = Watch(sinks_a, [hot, own])
        a, b = gated(sinks_a), gated(sinks_b)
        for gate in (*a.values(), *b.values()):
            gate.watch = watch
        release = asyncio.Event()
        a["qdrant"].hold = release.wait
        saga_a, saga_b = saga_of(a), saga_of(b)
        assert saga_a.coordinator is None
        first = asyncio.create_task(saga_a.write(batch))
        await all_wrote([a["graph"], a["postgres"]])
        await b_write(saga_b, other, watch)
        a["qdrant"].fail = outcome != "succeeds"
        a["qdrant"].partial = outcome == "fails_after_writing"
        release.set()
        if outcome == "succeeds":
            await first
            watch.commit(batch)
        else:
            with pytest.raises(SagaWriteError):
                await first
        assert watch.violations == []
        after_late_writer(await contents(sinks_a, [hot, own]), batch, other, outcome)
        a["qdrant"].fail = False
        await saga_a.write(batch)  # Temporal's retry of A's batch
        watch.commit(batch)
        assert watch.violations == []
        newest = max(batch[0], other[0], key=lambda r: r.version)
        assert_holds(await contents(sinks_a, [hot, own]), {hot: newest, own: batch[1]})
    assert await place.copies([hot, own]) == {"postgres": {hot: 1, own: 1}, "graph": {hot: 1, own: 1}}


async def b_write(saga: Saga, records: Sequence[Record], watch: Watch) -> None:
    await saga.write(records)
    watch.commit(records)


@pytest.mark.parametrize("seed", range(3))
async def test_without_a_coordinator_two_concurrent_writers_with_faults_end_at_the_highest_version(
    place: Place, seed: int
) -> None:
    """Two writers of the same two keys, no lock, no ledger, eight rounds: in each the older
    batch (both keys) and the newer one (one key) are written concurrently, with random
    pauses in every store call; the older one fails in a random store (before or after
    writing, its undo sometimes failing too) and is retried until it commits, as Temporal
    does. After every store call no key is below its newest committed version; in the
    end every store holds the highest version of each key, once."""
    rng = random.Random(seed)
    ids = [f"k1-{seed}", f"k2-{seed}"]
    async with place.worker(NO_REDIS) as sinks_a, place.worker(NO_REDIS) as sinks_b:
        watch = Watch(sinks_a, ids)
        writers = [gated(sinks_a), gated(sinks_b)]
        for gate in (g for w in writers for g in w.values()):
            gate.watch = watch
            gate.hold = lambda: asyncio.sleep(rng.choice((0, 0, 0.002, 0.01, 0.03)))
        sagas = [saga_of(w) for w in writers]
        for round_ in range(8):
            old_w = rng.randrange(2)
            older = [rec(i, 2 * round_ + 1, f"round {round_}: older") for i in ids]
            newer = [rec(rng.choice(ids), 2 * round_ + 2, f"round {round_}: newer")]
            victim = rng.choice(NO_REDIS)
            gates = writers[old_w]
            gates[victim].fail = True
            gates[victim].partial = rng.random() < 0.5
            for name, gate in gates.items():
                gate.fail_restores = name != victim and rng.random() < 0.3

            async def write_older(saga: Saga, records: list[Record], gates: dict[str, Gate]) -> None:
                try:
                    await saga.write(records, batch_id=f"older-{seed}-{records[0].version}")
                except SagaWriteError:
                    for gate in gates.values():
                        gate.fail = gate.fail_restores = False
                    await saga.write(records, batch_id=f"older-{seed}-{records[0].version}")
                watch.commit(records)

            await asyncio.gather(write_older(sagas[old_w], older, gates), b_write(sagas[1 - old_w], newer, watch))
            assert watch.violations == [], watch.violations[:5]
        top = 2 * 7 + 2
        state = await contents(sinks_a, ids)
        for name, rows in state.items():
            versions = {i: rows[i].version for i in ids}
            assert max(versions.values()) == top, name
            assert versions == {i: watch.committed[i] for i in ids}, name
        assert_holds(state, {i: state["postgres"][i] for i in ids})  # the same record everywhere
    assert await place.copies(ids) == {"postgres": dict.fromkeys(ids, 1), "graph": dict.fromkeys(ids, 1)}


# --- 4. cancellation mid-write --------------------------------------------------------------


async def waiting_on_lock(dsn: str, schema: str) -> int:
    """How many statements on `schema`'s records wait on a lock in PostgreSQL."""
    conn = await asyncpg.connect(dsn)
    try:
        n: int = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE $1",
            f"%{schema}%records%",
        )
        return n
    finally:
        await conn.close()


@pytest.mark.parametrize("slow", ["qdrant", "postgres"])
async def test_a_cancelled_write_raises_cancelled_lands_nothing_later_and_a_retry_commits_it_once(
    place: Place, slow: str
) -> None:
    """A saga write is cancelled while one store is slow: Qdrant held before the call, or
    PostgreSQL waiting inside the server on a table lock another session holds. It raises
    CancelledError, nothing of it lands afterwards (the held call never reaches the store,
    the waiting statement is cancelled), it marks nothing committed and releases its locks;
    the retry commits the batch in every store, once."""
    ids = [f"x1-{slow}", f"x2-{slow}"]
    batch = [rec(i, 1, f"PRO {i} out for delivery") for i in ids]
    async with place.worker() as sinks:
        gates = gated(sinks)
        release = asyncio.Event()
        blocker: asyncpg.Connection | None = None
        if slow == "qdrant":
            gates["qdrant"].hold = release.wait
        else:
            blocker = await asyncpg.connect(place.dsn)
            await blocker.execute("BEGIN")
            await blocker.execute(f"LOCK TABLE {place.tag}.records IN ACCESS EXCLUSIVE MODE")
        saga = saga_of(gates)
        try:
            task = asyncio.create_task(saga.write(batch, batch_id="batch-X"))
            await all_wrote([g for n, g in gates.items() if n != slow])
            await gates[slow].entered.wait()
            if blocker is not None:
                deadline = time.monotonic() + 10
                while not await waiting_on_lock(place.dsn, place.tag):
                    assert time.monotonic() < deadline, "the PostgreSQL write never waited on the lock"
                    await asyncio.sleep(0.05)
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        finally:
            release.set()
            if blocker is not None:
                await blocker.execute("COMMIT")
                await blocker.close()
        landed = {n: g.landed for n, g in gates.items()}
        await asyncio.sleep(1.0)  # time for anything left of the cancelled write to land
        assert {n: g.landed for n, g in gates.items()} == landed
        assert landed[slow] == (0 if slow == "qdrant" else 1)
        state = await contents(sinks, ids)
        assert_holds({slow: state[slow]}, dict.fromkeys(ids))  # the slow store never got it
        assert_holds({n: state[n] for n in STORES if n != slow}, {r.id: r for r in batch})  # left for the retry
        redis = sinks["redis"]
        assert await redis.committed([r.idempotency_key for r in batch]) == set()  # type: ignore[attr-defined]
        started = time.monotonic()
        result = await saga.write(batch, batch_id="batch-X")  # Temporal's retry
        assert time.monotonic() - started < 5, "the retry waited for the cancelled write's locks"
        assert (result.written, result.skipped) == (2, 0)
        assert {n: g.landed - landed[n] for n, g in gates.items()} == dict.fromkeys(STORES, 1)
        assert_holds(await contents(sinks, ids), {r.id: r for r in batch})
        again = await saga.write(batch, batch_id="batch-X")
        assert (again.written, again.skipped) == (0, 2)
    assert await place.copies(ids) == {"postgres": dict.fromkeys(ids, 1), "graph": dict.fromkeys(ids, 1)}


# --- 5. a worker told to stop while a sink hangs ----------------------------------------------

GRACE_SECONDS = 4.0


async def test_sigterm_with_a_sink_stuck_in_write_exits_within_the_grace_period_and_another_worker_lands_it_once(
    tmp_path: Path, apex_temporal_server: Any, apex_postgres_server: Any
) -> None:
    """A real worker is inside a drain batch's saga write, stuck in a sink that never
    returns (the gate plugin, loaded with APEX_PLUGIN_MODULES), when it gets SIGTERM: it
    waits for the batch at most its graceful shutdown time
    (APEX_TEMPORAL_GRACEFUL_SHUTDOWN_SECONDS), then cancels it and exits 0 instead of
    hanging; the delivery stays pending; another worker lands it: delivered, its message
    record once in PostgreSQL."""
    gate = tmp_path / "gate"
    c = Cluster(
        tmp_path,
        apex_temporal_server.address,
        apex_postgres_server.dsn,
        APEX_PLUGINS="frontapp,postgres",
        APEX_PLUGIN_MODULES="support.gate_plugin",
        APEX_TEST_GATE_DIR=str(gate),
        APEX_TEMPORAL_GRACEFUL_SHUTDOWN_SECONDS=str(GRACE_SECONDS),
        APEX_TEMPORAL_ACTIVITY_HEARTBEAT_SECONDS="2",
        PYTHONPATH=str(Path(__file__).parent),
    )
    try:
        url = c.start_api()
        first = c.start_worker()
        [delivery] = front_deliveries(1)
        assert (await send_all([url], [delivery], within=60)).acknowledged == {delivery.key}
        assert first.proc is not None
        entered = gate / f"entered-{first.proc.pid}"
        deadline = time.monotonic() + 60
        while not entered.exists():
            assert first.running, first.output()[-3000:]
            assert time.monotonic() < deadline, "the worker never reached the sink's write\n" + c.logs()
            await asyncio.sleep(0.1)
        msg_id = json.loads(delivery.body)["payload"]["target"]["data"]["id"]
        signalled = time.monotonic()
        first.proc.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.to_thread(first.proc.wait, GRACE_SECONDS + 20)
        except subprocess.TimeoutExpired:
            first.kill()
            pytest.fail(f"the worker still runs {GRACE_SECONDS + 20:.0f}s after SIGTERM\n{first.output()[-3000:]}")
        took = time.monotonic() - signalled
        assert code == 0, first.output()[-3000:]
        # it waited for the batch (the grace period), then gave up on it and left
        assert GRACE_SECONDS - 0.5 <= took <= GRACE_SECONDS + 6, f"exited {took:.1f}s after SIGTERM"
        states = await delivery_states(c.dsn, "frontapp", [delivery.key], schema=c.inbox_schema)
        assert states == {delivery.key: "pending"}
        (gate / "release").write_text("go")
        c.start_worker()
        await wait_delivered(c.dsn, "frontapp", [delivery.key], within=60, schema=c.inbox_schema)
        rows = await c.fetch(
            f"SELECT version FROM {c.sink_schema}.records WHERE source = 'frontapp' AND id = $1", msg_id
        )
        assert len(rows) == 1, rows
        [row] = await c.fetch(
            f"SELECT status, records FROM {c.inbox_schema}.deliveries WHERE event_id = $1", delivery.key
        )
        assert row["status"] == "delivered"
        assert row["records"] >= 1
    finally:
        c.stop()


async def test_sigterm_with_a_sink_that_ignores_cancellation_still_exits_and_the_batch_lands_elsewhere(
    tmp_path: Path, apex_temporal_server: Any, apex_postgres_server: Any
) -> None:
    """The same, with a sink call that swallows its cancellation: the worker does not hang
    forever; it exits with EXIT_FORCED a bounded time after the grace period, and the
    batch is retried by another worker once the first one's heartbeats stop."""
    from apex_platform.temporal.worker import EXIT_FORCED, SHUTDOWN_MARGIN_SECONDS

    gate = tmp_path / "gate"
    c = Cluster(
        tmp_path,
        apex_temporal_server.address,
        apex_postgres_server.dsn,
        APEX_PLUGINS="frontapp,postgres",
        APEX_PLUGIN_MODULES="support.gate_plugin",
        APEX_TEST_GATE_DIR=str(gate),
        APEX_TEST_GATE_IGNORE_CANCEL="1",
        APEX_TEMPORAL_GRACEFUL_SHUTDOWN_SECONDS=str(GRACE_SECONDS),
        APEX_TEMPORAL_ACTIVITY_HEARTBEAT_SECONDS="2",
        PYTHONPATH=str(Path(__file__).parent),
    )
    try:
        url = c.start_api()
        first = c.start_worker()
        [delivery] = front_deliveries(1)
        assert (await send_all([url], [delivery], within=60)).acknowledged == {delivery.key}
        assert first.proc is not None
        entered = gate / f"entered-{first.proc.pid}"
        deadline = time.monotonic() + 60
        while not entered.exists():
            assert first.running, first.output()[-3000:]
            assert time.monotonic() < deadline, "the worker never reached the sink's write\n" + c.logs()
            await asyncio.sleep(0.1)
        signalled = time.monotonic()
        first.proc.send_signal(signal.SIGTERM)
        limit = GRACE_SECONDS + SHUTDOWN_MARGIN_SECONDS
        try:
            code = await asyncio.to_thread(first.proc.wait, limit + 15)
        except subprocess.TimeoutExpired:
            first.kill()
            pytest.fail(f"the worker still runs {limit + 15:.0f}s after SIGTERM\n{first.output()[-3000:]}")
        took = time.monotonic() - signalled
        assert code == EXIT_FORCED, first.output()[-3000:]
        assert limit - 1 <= took <= limit + 8, f"exited {took:.1f}s after SIGTERM"
        assert "ignores cancellation" in first.output()
        (gate / "release").write_text("go")
        c.start_worker(APEX_TEST_GATE_IGNORE_CANCEL="0")
        await wait_delivered(c.dsn, "frontapp", [delivery.key], within=90, schema=c.inbox_schema)
        msg_id = json.loads(delivery.body)["payload"]["target"]["data"]["id"]
        rows = await c.fetch(
            f"SELECT version FROM {c.sink_schema}.records WHERE source = 'frontapp' AND id = $1", msg_id
        )
        assert len(rows) == 1, rows
    finally:
        c.stop()
