"""Saga logic against contract-keeping in-memory sinks with injected faults.
The same properties are checked against the real stores in tests/ (cross-package)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from apex_platform.breaker import CircuitBreaker, CircuitOpenError
from apex_platform.models import Record, RecordKey
from apex_platform.saga import Saga, SagaSettings, SagaWriteError, latest_per_key
from apex_platform.testing.sinks import Faults, FaultySink, MemoryDeadLetters, MemorySink

FAST = SagaSettings(retry_attempts=3, retry_initial_seconds=0.001, retry_max_seconds=0.002, breaker_failures=100)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def rec(id: str = "1", version: int = 1, text: str = "", deleted: bool = False) -> Record:
    return Record(source="demo", kind="demo.x", id=id, version=version, occurred_at=T0, text=text, deleted=deleted)


MemoryDLQ = MemoryDeadLetters


class MemoryCoordinator:
    def __init__(self) -> None:
        self.done: set[str] = set()
        self.locked: list[list[RecordKey]] = []

    @contextlib.asynccontextmanager
    async def lock(self, keys: Sequence[RecordKey], *, ttl_seconds: float) -> AsyncIterator[None]:
        self.locked.append(list(keys))
        yield

    async def committed(self, keys: Sequence[str]) -> set[str]:
        return self.done & set(keys)

    async def mark_committed(self, keys: Sequence[str]) -> None:
        self.done |= set(keys)


def four(faults: dict[str, Faults] | None = None) -> dict[str, FaultySink]:
    faults = faults or {}
    return {n: FaultySink(MemorySink(n), faults.get(n, Faults())) for n in ("graph", "postgres", "qdrant", "redis")}


def state(sinks: dict[str, FaultySink]) -> dict[str, dict[RecordKey, Record]]:
    return {n: dict(s.inner.rows) for n, s in sinks.items()}  # type: ignore[attr-defined]


async def test_all_sinks_written() -> None:
    sinks = four()
    result = await Saga(sinks, FAST).write([rec("a"), rec("b")])
    assert result.written == 2
    assert all(set(rows) == {RecordKey("demo", "a"), RecordKey("demo", "b")} for rows in state(sinks).values())


async def test_permanent_failure_restores_the_others_exactly() -> None:
    sinks = four({"qdrant": Faults(fail_writes_forever=True)})
    saga = Saga(sinks, FAST)
    with pytest.raises(SagaWriteError):
        await saga.write([rec("a", 1, "old")])  # fails: nothing anywhere
    assert all(rows == {} for rows in state(sinks).values())
    sinks["qdrant"].faults.fail_writes_forever = False
    await saga.write([rec("a", 1, "old")])
    before = state(sinks)
    sinks["qdrant"].faults.fail_writes_forever = True
    with pytest.raises(SagaWriteError, match="qdrant"):
        await saga.write([rec("a", 2, "new"), rec("b", 1)])
    assert state(sinks) == before  # an update restores the previous version, a new key is removed


async def test_transient_failure_is_retried_and_written_once() -> None:
    sinks = four({"graph": Faults(fail_writes=2)})
    await Saga(sinks, FAST).write([rec("a")])
    assert sinks["graph"].faults.calls.count("write") == 3
    assert all(len(rows) == 1 for rows in state(sinks).values())


async def test_partial_write_in_the_failing_sink_is_completed_by_the_retry() -> None:
    """The sinks that succeeded are undone; the one that raised after writing returned
    nothing to undo, so it keeps the (newer) records until the retry writes them all."""
    sinks = four({"redis": Faults(fail_writes=FAST.retry_attempts, write_after_failure=True)})
    saga = Saga(sinks, FAST)
    with pytest.raises(SagaWriteError):
        await saga.write([rec("a")])
    assert {n: list(rows) for n, rows in state(sinks).items() if rows} == {"redis": [RecordKey("demo", "a")]}
    await saga.write([rec("a")])
    assert all(list(rows.values()) == [rec("a")] for rows in state(sinks).values())


async def test_failed_compensation_goes_to_the_dead_letter_queue() -> None:
    sinks = four({"qdrant": Faults(fail_writes_forever=True), "postgres": Faults(fail_restores_forever=True)})
    dlq = MemoryDLQ()
    saga = Saga(sinks, FAST, dead_letters=dlq)  # type: ignore[arg-type]
    with pytest.raises(SagaWriteError) as info:
        await saga.write([rec("a")], batch_id="b-1")
    assert info.value.dead_letter_id == 1
    (letter,) = dlq.letters
    assert letter.batch_id == "b-1"
    assert letter.failed == ["qdrant"]
    assert "postgres" in letter.succeeded
    assert "postgres" in letter.error
    assert letter.records == [rec("a")]


async def test_circuit_opens_then_half_open_probe_closes_it() -> None:
    now = [0.0]
    breaker = CircuitBreaker("s", failure_threshold=2, reset_timeout=10, clock=lambda: now[0])

    async def boom() -> None:
        raise RuntimeError("down")

    async def ok() -> str:
        return "ok"

    for _ in range(2):
        with pytest.raises(RuntimeError):
            await breaker.call(boom)
    assert breaker.state == "open"
    with pytest.raises(CircuitOpenError):
        await breaker.call(ok)
    now[0] = 11
    assert breaker.state == "half_open"
    with pytest.raises(RuntimeError):
        await breaker.call(boom)  # failed probe: open again
    assert breaker.state == "open"
    now[0] = 22
    assert await breaker.call(ok) == "ok"
    assert breaker.state == "closed"


async def test_open_circuit_fails_fast_without_touching_the_sink() -> None:
    sinks = four({"graph": Faults(fail_writes_forever=True)})
    saga = Saga(sinks, SagaSettings(retry_attempts=1, retry_initial_seconds=0.001, breaker_failures=2))
    for _ in range(2):
        with pytest.raises(SagaWriteError):
            await saga.write([rec("a")])
    calls = len(sinks["graph"].faults.calls)
    with pytest.raises(SagaWriteError, match="open"):
        await saga.write([rec("a")])
    assert "write" not in sinks["graph"].faults.calls[calls:]


async def test_same_batch_twice_is_skipped_by_the_coordinator() -> None:
    sinks = four()
    coord = MemoryCoordinator()
    saga = Saga(sinks, FAST, coordinator=coord)  # type: ignore[arg-type]
    assert (await saga.write([rec("a")])).written == 1
    skipped_before = REGISTRY.get_sample_value("apex_records_skipped_total", {"source": "demo"}) or 0.0
    again = await saga.write([rec("a")])
    assert REGISTRY.get_sample_value("apex_records_skipped_total", {"source": "demo"}) == skipped_before + 1
    assert (again.written, again.skipped) == (0, 1)
    assert all(s.inner.writes == 1 for s in sinks.values())  # type: ignore[attr-defined]
    assert coord.locked == [[RecordKey("demo", "a")]]


async def test_older_version_never_replaces_newer_and_tombstone_removes() -> None:
    sinks = four()
    saga = Saga(sinks, FAST)
    await saga.write([rec("a", 5, "new")])
    await saga.write([rec("a", 3, "old")])
    assert all(rows[RecordKey("demo", "a")].text == "new" for rows in state(sinks).values())
    await saga.write([rec("a", 6, deleted=True)])
    await saga.write([rec("a", 5, "resurrect?")])
    for sink in sinks.values():
        (left,) = (await sink.read([RecordKey("demo", "a")])).values()
        assert (left.deleted, left.version, left.text) == (True, 6, "")


def test_equal_version_tombstone_wins_and_later_correction_wins() -> None:
    from apex_platform.saga import supersedes

    assert supersedes(rec("a", 2, deleted=True), rec("a", 2, "x"))
    assert not supersedes(rec("a", 2, "x"), rec("a", 2, deleted=True))
    assert supersedes(rec("a", 2, "fixed"), rec("a", 2, "typo"))
    assert not supersedes(rec("a", 1, "x"), rec("a", 2))


def test_latest_per_key_keeps_the_highest_version() -> None:
    out = latest_per_key([rec("a", 2), rec("a", 9), rec("b", 1), rec("a", 3)])
    assert {(r.id, r.version) for r in out} == {("a", 9), ("b", 1)}
    tomb = latest_per_key([rec("c", 4, deleted=True), rec("c", 4, "late")])
    assert tomb[0].deleted


@settings(max_examples=60, deadline=None)
@given(
    fail=st.lists(st.sampled_from(["graph", "postgres", "qdrant", "redis", None]), min_size=1, max_size=8),
    versions=st.lists(st.integers(min_value=1, max_value=5), min_size=1, max_size=8),
)
async def test_any_interleaving_of_failures_leaves_stores_consistent(
    fail: list[str | None], versions: list[int]
) -> None:
    """Whatever fails when, all four stores always hold the same thing, and it is the
    highest version of the batches that succeeded."""
    sinks = four()
    saga = Saga(sinks, FAST)
    committed: list[int] = []
    for victim, version in zip(fail, versions, strict=False):
        for name, sink in sinks.items():
            sink.faults.fail_writes_forever = name == victim
        try:
            await saga.write([rec("k", version, f"v{version}")])
            committed.append(version)
        except SagaWriteError:
            pass
        snapshot = state(sinks)
        first = next(iter(snapshot.values()))
        assert all(rows == first for rows in snapshot.values())
        if committed:
            assert first[RecordKey("demo", "k")].version == max(committed)
        else:
            assert first == {}


async def test_a_record_one_sink_refuses_is_quarantined_and_the_rest_of_the_batch_commits() -> None:
    """A permanent, record-level refusal (a NUL PostgreSQL cannot hold) is neither retried
    nor counted: the record is taken back out of the sinks that took it and kept in the
    dead-letter queue with the reason; every other record of the batch lands everywhere."""
    sinks = four({"postgres": Faults(refuse_ids={"poison"})})
    dlq = MemoryDLQ()
    saga = Saga(sinks, FAST, dead_letters=dlq)
    batch = [rec("a"), rec("poison", text="nul"), rec("b")]
    result = await saga.write(batch, batch_id="b1")
    assert (result.written, result.quarantined) == (2, 1)
    for name, rows in state(sinks).items():
        assert set(rows) == {RecordKey("demo", "a"), RecordKey("demo", "b")}, name
    [letter] = dlq.letters
    assert [r.id for r in letter.records] == ["poison"]
    assert letter.failed == ["postgres"]
    assert "injected refusal of poison" in letter.error
    assert sinks["postgres"].faults.calls.count("write") == 1  # not retried


async def test_refusals_never_open_a_breaker() -> None:
    sinks = four({"postgres": Faults(refuse_ids={"poison"})})
    saga = Saga(sinks, SagaSettings(retry_attempts=1, breaker_failures=2), dead_letters=MemoryDLQ())
    for i in range(5):
        await saga.write([rec(f"ok{i}"), rec("poison", version=i + 1)], batch_id=f"b{i}")
    assert saga.breaker("postgres").state == "closed"
    assert len(state(sinks)["postgres"]) == 5


async def test_without_a_dead_letter_queue_a_refusal_fails_loudly() -> None:
    saga = Saga(four({"redis": Faults(refuse_ids={"poison"})}), FAST)
    with pytest.raises(SagaWriteError, match="no dead-letter queue"):
        await saga.write([rec("poison")], batch_id="b")


async def test_cancelling_a_saga_write_cancels_it_instead_of_retrying() -> None:
    """tenacity must not swallow cancellation: a cancelled write raises CancelledError and
    stops writing (it used to return written=1 after retrying)."""
    import asyncio

    sinks = four({"qdrant": Faults(delay=5.0)})
    saga = Saga(sinks, SagaSettings(retry_attempts=5, retry_initial_seconds=0.01), dead_letters=MemoryDLQ())
    task = asyncio.create_task(saga.write([rec("a")], batch_id="b"))
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sinks["qdrant"].faults.calls.count("write") == 1


async def test_an_open_breaker_is_checked_before_anything_is_written() -> None:
    sinks = four({"qdrant": Faults(fail_writes_forever=True)})
    saga = Saga(sinks, SagaSettings(retry_attempts=1, breaker_failures=2, breaker_reset_seconds=60))
    for i in range(2):
        with pytest.raises(SagaWriteError):
            await saga.write([rec(f"x{i}")], batch_id=f"b{i}")
    assert saga.breaker("qdrant").state == "open"
    writes_before = {n: s.faults.calls.count("write") for n, s in sinks.items()}
    with pytest.raises(SagaWriteError, match="circuit open for qdrant: nothing of the batch was written"):
        await saga.write([rec("y")], batch_id="b3")
    assert {n: s.faults.calls.count("write") for n, s in sinks.items()} == writes_before
    assert REGISTRY.get_sample_value("apex_saga_breaker_state", {"sink": "qdrant", "op": "write"}) == 2
