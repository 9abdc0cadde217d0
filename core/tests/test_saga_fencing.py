"""Compensation never destroys another writer's data (fenced writes, conditional restore),
and dead letters are one per batch. In-memory sinks that keep the contract (the same
checks run against each real store in its package, apex_platform.testing.sink_contract)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apex_platform.contracts import Previous, Sink
from apex_platform.errors import SinkError
from apex_platform.models import Record, RecordKey
from apex_platform.saga import Saga, SagaSettings, SagaWriteError
from apex_platform.testing.sinks import Faults, FaultySink, MemoryDeadLetters, MemorySink

FAST = SagaSettings(retry_attempts=2, retry_initial_seconds=0.001, retry_max_seconds=0.002, breaker_failures=10_000)
T0 = datetime(2026, 1, 1, tzinfo=UTC)
NAMES = ("graph", "postgres", "qdrant", "redis")


def rec(id: str = "a", version: int = 1, text: str = "") -> Record:
    return Record(source="demo", kind="demo.x", id=id, version=version, occurred_at=T0, text=text or f"v{version}")


K = RecordKey("demo", "a")


class Gate:
    """Wraps a sink: a write waits at `before` (if set) and signals `entered`; it fails
    with `fail` set (after writing, when `partial`)."""

    def __init__(self, inner: Sink) -> None:
        self.inner = inner
        self.name = inner.name
        self.before: asyncio.Event | None = None
        self.entered = asyncio.Event()
        self.fail = False
        self.partial = False

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def health(self) -> None: ...

    async def read(self, keys: Sequence[RecordKey]) -> dict[RecordKey, Record]:
        return await self.inner.read(keys)

    async def write(self, records: Sequence[Record], *, writer: str | None = None) -> Previous:
        self.entered.set()
        if self.before is not None:
            await self.before.wait()
        if self.fail:
            if self.partial:
                await self.inner.write(records, writer=writer)
            raise SinkError(f"injected failure in {self.name}")
        return await self.inner.write(records, writer=writer)

    async def restore(self, previous: Mapping[RecordKey, Record | None], *, writer: str | None = None) -> None:
        await self.inner.restore(previous, writer=writer)


def gates() -> dict[str, Gate]:
    return {n: Gate(MemorySink(n)) for n in NAMES}


def versions(sinks: Mapping[str, Gate | FaultySink]) -> dict[str, int | None]:
    found: dict[str, int | None] = {}
    for name, sink in sinks.items():
        row = sink.inner.rows.get(K)  # type: ignore[attr-defined]
        found[name] = None if row is None else row.version
    return found


async def test_an_older_batch_failing_late_never_deletes_the_newer_committed_version() -> None:
    """The issue's case: v1 is written to one store first, v2 then commits everywhere, and
    v1's batch fails in another store: its undo must leave v2 everywhere."""
    sinks = gates()
    release = asyncio.Event()
    for name in ("postgres", "qdrant", "redis"):
        sinks[name].before = release  # v1 writes graph at once and waits in the others
    sinks["redis"].fail = True
    older = asyncio.create_task(Saga(dict(sinks), FAST).write([rec("a", 1)]))
    await sinks["graph"].entered.wait()
    await asyncio.sleep(0.01)
    for name in ("postgres", "qdrant", "redis"):
        sinks[name].before = None
    sinks["redis"].fail = False
    # (a second saga on the same stores: another worker; there is no coordinator, no lock)
    await Saga(dict(sinks), FAST).write([rec("a", 2)])
    assert set(versions(sinks).values()) == {2}
    sinks["redis"].fail = True
    release.set()
    with pytest.raises(SagaWriteError):
        await older
    assert versions(sinks) == dict.fromkeys(NAMES, 2)


async def test_an_identical_write_committed_by_another_writer_survives_the_first_ones_undo() -> None:
    """A writes v1 to graph, B writes the identical v1 everywhere and commits, A fails:
    A's undo must not remove what B committed."""
    sinks = gates()
    release = asyncio.Event()
    for name in ("postgres", "qdrant", "redis"):
        sinks[name].before = release
    first = asyncio.create_task(Saga(dict(sinks), FAST).write([rec("a", 1)]))
    await sinks["graph"].entered.wait()
    await asyncio.sleep(0.01)
    for name in ("postgres", "qdrant", "redis"):
        sinks[name].before = None
    await Saga(dict(sinks), FAST).write([rec("a", 1)])
    sinks["qdrant"].fail = True
    release.set()
    with pytest.raises(SagaWriteError):
        await first
    assert versions(sinks) == dict.fromkeys(NAMES, 1)


async def test_a_retried_call_does_not_reclaim_a_key_another_writer_committed_since() -> None:
    """A's call to graph applies v1 then fails; B commits the identical v1; A's retry of
    the call finds it identical (a new token): when A then fails elsewhere, nothing of
    B's is undone."""
    sinks = gates()
    sinks["graph"].fail = sinks["graph"].partial = True
    sinks["qdrant"].fail = True
    saga_a = Saga(dict(sinks), SagaSettings(retry_attempts=1, breaker_failures=10_000))
    with pytest.raises(SagaWriteError):
        await saga_a.write([rec("a", 1)])
    assert versions(sinks) == {"graph": 1, "postgres": None, "qdrant": None, "redis": None}
    sinks["graph"].fail = sinks["qdrant"].fail = False
    await Saga(dict(sinks), FAST).write([rec("a", 1)])
    sinks["qdrant"].fail = True
    with pytest.raises(SagaWriteError):
        await saga_a.write([rec("a", 1)])
    assert versions(sinks) == dict.fromkeys(NAMES, 1)


async def test_a_compensation_that_fails_leaves_one_letter_per_batch_resolved_by_a_later_success() -> None:
    sinks = {n: FaultySink(MemorySink(n)) for n in NAMES}
    sinks["qdrant"].faults.fail_writes_forever = True
    sinks["postgres"].faults.fail_restores_forever = True
    dlq = MemoryDeadLetters()
    saga = Saga(dict(sinks), FAST, dead_letters=dlq)
    with pytest.raises(SagaWriteError) as info:
        await saga.write([rec("a", 1)], batch_id="drain@7")
    assert info.value.dead_letter_id == 1
    # postgres kept the record it could not undo; the next attempts find it identical there,
    # so they have nothing of their own to undo: still the one letter for the batch
    for _ in range(2):
        with pytest.raises(SagaWriteError):
            await saga.write([rec("a", 1)], batch_id="drain@7")
    sinks["postgres"].faults.fail_restores_forever = False
    sinks["redis"].faults.fail_restores = 1_000
    with pytest.raises(SagaWriteError) as info:
        await saga.write([rec("a", 2)], batch_id="drain@7")  # the batch, grown: fails again
    assert info.value.dead_letter_id == 1
    (letter,) = dlq.letters
    assert (letter.batch_id, letter.status, letter.attempts) == ("drain@7", "open", 1)
    assert letter.records == [rec("a", 2)]
    assert set(letter.previous) == {"redis"}
    sinks["redis"].faults.fail_restores = 0
    # what a rollback needs: the state before, in the sink whose undo failed, and its token
    assert letter.previous == {"redis": {K: None}}  # the earlier attempts undid redis
    assert sinks["redis"].inner.tokens[K] == (letter.writers["redis"],) * 2  # type: ignore[attr-defined]
    sinks["qdrant"].faults.fail_writes_forever = False
    await saga.write([rec("a", 1)], batch_id="drain@7")
    assert [d.status for d in dlq.letters] == ["resolved"]


async def test_a_rollback_with_the_letters_token_spares_a_newer_version() -> None:
    sinks = {n: FaultySink(MemorySink(n)) for n in NAMES}
    sinks["qdrant"].faults.fail_writes_forever = True
    sinks["postgres"].faults.fail_restores_forever = True
    dlq = MemoryDeadLetters()
    saga = Saga(dict(sinks), FAST, dead_letters=dlq)
    with pytest.raises(SagaWriteError):
        await saga.write([rec("b", 1), rec("a", 1)], batch_id="x")
    (letter,) = dlq.letters
    sinks["postgres"].faults.fail_restores_forever = False
    sinks["qdrant"].faults.fail_writes_forever = False
    await Saga(dict(sinks), FAST).write([rec("a", 2)])  # a newer version of one key, since
    postgres = sinks["postgres"]
    await postgres.restore(letter.previous["postgres"], writer=letter.writers["postgres"])
    assert postgres.inner.rows == {K: rec("a", 2)}  # type: ignore[attr-defined]


async def test_a_dead_letter_queue_that_cannot_be_written_fails_the_batch_loudly() -> None:
    sinks = {n: FaultySink(MemorySink(n)) for n in NAMES}
    sinks["qdrant"].faults.fail_writes_forever = True
    sinks["postgres"].faults.fail_restores_forever = True
    dlq = MemoryDeadLetters()
    dlq.fail = True
    with pytest.raises(SagaWriteError, match="dead-letter queue could not keep"):
        await Saga(dict(sinks), FAST, dead_letters=dlq).write([rec("a", 1)], batch_id="y")


async def test_quarantine_with_a_broken_dead_letter_queue_is_not_silent() -> None:
    sinks = {n: FaultySink(MemorySink(n)) for n in NAMES}
    sinks["postgres"].faults.refuse_ids = {"poison"}
    dlq = MemoryDeadLetters()
    dlq.fail = True
    with pytest.raises(SagaWriteError, match="dead-letter queue could not keep"):
        await Saga(dict(sinks), FAST, dead_letters=dlq).write([rec("poison", 1), rec("a", 1)], batch_id="z")


# --- Hypothesis: concurrent writers of the same keys, faults at random points -------------

KEYS = ("k1", "k2")
Op = tuple[int, str, int, str | None, bool, bool]  # writer, key, version, failing sink, partial, restore fails

ops_strategy = st.lists(
    st.tuples(
        st.integers(0, 2),
        st.sampled_from(KEYS),
        st.integers(1, 6),
        st.one_of(st.none(), st.sampled_from(NAMES)),
        st.booleans(),
        st.booleans(),
    ),
    min_size=1,
    max_size=12,
)


class Monitor:
    """A sink wrapper that checks, after every call on the store, that no key is below the
    newest version committed so far (`committed`), and yields to let writers interleave."""

    def __init__(
        self, inner: FaultySink, committed: dict[str, int], violations: list[str], pauses: random.Random
    ) -> None:
        self.pauses = pauses
        self.inner = inner
        self.name = inner.name
        self.committed = committed
        self.violations = violations

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def health(self) -> None: ...

    def check(self, when: str) -> None:
        rows = self.inner.inner.rows  # type: ignore[attr-defined]
        for key, version in self.committed.items():
            row = rows.get(RecordKey("demo", key))
            if row is None or row.version < version:
                held = None if row is None else row.version
                self.violations.append(f"{self.name} after {when}: {key} holds {held}, v{version} was committed")

    async def read(self, keys: Sequence[RecordKey]) -> dict[RecordKey, Record]:
        return await self.inner.read(keys)

    async def pause(self) -> None:
        await asyncio.sleep(self.pauses.choice((0, 0, 0.0005, 0.002, 0.004)))

    async def write(self, records: Sequence[Record], *, writer: str | None = None) -> Previous:
        await self.pause()
        try:
            return await self.inner.write(records, writer=writer)
        finally:
            self.check("write")
            await self.pause()

    async def restore(self, previous: Mapping[RecordKey, Record | None], *, writer: str | None = None) -> None:
        await self.pause()
        try:
            await self.inner.restore(previous, writer=writer)
        finally:
            self.check("restore")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=ops_strategy, pauses=st.randoms(use_true_random=False))
async def test_concurrent_writers_with_random_faults_never_roll_back_a_committed_version(
    ops: list[Op], pauses: random.Random
) -> None:
    committed: dict[str, int] = {}
    violations: list[str] = []
    stores = {n: FaultySink(MemorySink(n)) for n in NAMES}
    sinks = {n: Monitor(s, committed, violations, pauses) for n, s in stores.items()}
    sagas = [Saga(dict(sinks), FAST, dead_letters=MemoryDeadLetters()) for _ in range(3)]  # three workers
    highest: dict[str, int] = {}

    async def one(op: Op) -> None:
        writer, key, version, failing, partial, restore_fails = op
        highest[key] = max(highest.get(key, 0), version)
        if failing is not None:
            faults = stores[failing].faults
            faults.fail_writes = FAST.retry_attempts
            faults.write_after_failure = partial
            for name in NAMES:
                stores[name].faults.fail_restores = FAST.retry_attempts if restore_fails and name != failing else 0
        record = rec(key, version)
        try:
            await sagas[writer].write([record], batch_id=f"{writer}:{key}:{version}")
        except SagaWriteError:
            return
        committed[key] = max(committed.get(key, 0), version)

    # the operations run in waves of three concurrent writers
    for start in range(0, len(ops), 3):
        await asyncio.gather(*(one(op) for op in ops[start : start + 3]))
    assert violations == []
    # faults heal; every batch is retried (as Temporal retries activities) until it commits
    for store in stores.values():
        store.faults = Faults()
    for key, version in highest.items():
        for v in range(1, version + 1):
            await sagas[0].write([rec(key, v)])
    for name, store in stores.items():
        for key, version in highest.items():
            assert store.inner.rows[RecordKey("demo", key)].version == version, name  # type: ignore[attr-defined]
    assert violations == []


async def test_a_store_that_lost_its_data_is_repaired_to_the_newest_version_the_others_hold() -> None:
    """Redis restarted empty; a late older event arrives: every store but Redis keeps the
    newer version and reports no change, Redis takes the old one. The saga sees the
    disagreement and writes the newest to the store behind (read-repair)."""
    sinks = {n: FaultySink(MemorySink(n)) for n in NAMES}
    saga = Saga(dict(sinks), FAST)
    await saga.write([rec("a", 2)])
    sinks["redis"].inner.rows.clear()  # type: ignore[attr-defined]  # its data lost
    await saga.write([rec("a", 1)])  # late and older
    assert {n: s.inner.rows[K].version for n, s in sinks.items()} == dict.fromkeys(NAMES, 2)  # type: ignore[attr-defined]
    # a store that only lost it (nothing newer anywhere) just takes the record again
    sinks["graph"].inner.rows.clear()  # type: ignore[attr-defined]
    await saga.write([rec("a", 2)])
    assert {n: s.inner.rows[K].version for n, s in sinks.items()} == dict.fromkeys(NAMES, 2)  # type: ignore[attr-defined]


async def test_a_quarantined_record_an_earlier_cut_off_attempt_wrote_is_taken_out_too() -> None:
    """The soak's case: attempt 1 of a batch wrote poison records to Redis, then was cut
    off (heartbeat timeout); attempt 2 writes them again (identical: Redis reports no
    change of its own), the graph refuses them for good, and they are quarantined. Redis
    must not keep a quarantined version: it gets back the version the refusing store
    still holds, or loses the key where no store holds another; the rest commits."""
    sinks = {n: FaultySink(MemorySink(n)) for n in NAMES}
    dlq = MemoryDeadLetters()
    saga = Saga(dict(sinks), FAST, dead_letters=dlq)
    await saga.write([rec("poison", 1)])  # version 1 everywhere
    sinks["graph"].faults.refuse_ids = {"poison", "fresh"}
    batch = [rec("poison", 2, "v2\x00"), rec("fresh", 5), rec("ok", 1)]
    await sinks["redis"].inner.write(batch[:2], writer="attempt-1")  # the cut-off attempt
    await saga.write(batch, batch_id="b@1")
    rows = {n: s.inner.rows for n, s in sinks.items()}  # type: ignore[attr-defined]
    for name in NAMES:
        assert rows[name][RecordKey("demo", "poison")].version == 1, name  # what the graph still holds
        assert RecordKey("demo", "fresh") not in rows[name], name  # no store held another version
        assert rows[name][RecordKey("demo", "ok")].version == 1, name
    assert [sorted(r.id for r in letter.records) for letter in dlq.letters] == [["fresh", "poison"]]
