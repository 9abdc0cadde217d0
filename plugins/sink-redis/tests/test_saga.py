"""Core's saga with RedisSink as one of the sinks and as the coordinator."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from apex_platform.models import Record
from apex_platform.saga import Saga, SagaSettings, SagaWriteError
from apex_platform.testing.sinks import Faults, FaultySink, MemorySink
from apex_sink_redis import RedisSink

RecordFactory = Callable[..., Record]


def make_saga(sink: RedisSink, faults: Faults) -> tuple[Saga, MemorySink, FaultySink]:
    memory = MemorySink("memory")
    faulty = FaultySink(MemorySink("flaky"), faults)
    settings = SagaSettings(retry_attempts=1, retry_initial_seconds=0.01, lock_ttl_seconds=10)
    saga = Saga.from_sinks({"redis": sink, "memory": memory, "flaky": faulty}, settings)
    assert saga.coordinator is sink
    return saga, memory, faulty


async def test_the_same_batch_twice_is_skipped(sink: RedisSink, record: RecordFactory) -> None:
    saga, memory, faulty = make_saga(sink, Faults())
    batch = [record("a", 1), record("b", 1), record("a", 2)]

    first = await saga.write(batch)
    assert (first.written, first.skipped) == (2, 1)  # a@1 folded into a@2
    assert set(first.sinks) == {"redis", "memory", "flaky"}
    assert await sink.committed([r.idempotency_key for r in batch]) == {
        batch[1].idempotency_key,
        batch[2].idempotency_key,
    }
    assert (await sink.read([batch[2].key]))[batch[2].key] == batch[2]

    writes = (memory.writes, faulty.faults.calls.count("write"))
    second = await saga.write(batch)
    assert (second.written, second.skipped) == (0, 3)
    assert (memory.writes, faulty.faults.calls.count("write")) == writes  # nothing written again

    # A new version of one record is written; the unchanged one is skipped.
    third = await saga.write([record("a", 3), record("b", 1)])
    assert (third.written, third.skipped) == (1, 1)
    assert await sink.get_version("turvo", "a") == (3, False)


async def test_a_failure_commits_nothing_and_restores_redis(sink: RedisSink, record: RecordFactory) -> None:
    saga, memory, faulty = make_saga(sink, Faults(fail_writes_forever=True))
    earlier = record("a", 1)
    await sink.write([earlier])
    batch = [record("a", 2), record("b", 1), record("c", 1, deleted=True)]

    with pytest.raises(SagaWriteError) as caught:
        await saga.write(batch)
    assert caught.value.failed == ["flaky"]
    assert await sink.committed([r.idempotency_key for r in batch]) == set()
    # Compensation: Redis holds what it held before the batch (b and c were absent).
    assert await sink.read([r.key for r in batch]) == {earlier.key: earlier}
    assert memory.rows == {}
    # And its locks were released: a retry can take them at once.
    async with sink.lock([r.key for r in batch], ttl_seconds=5):
        pass

    faulty.faults.fail_writes_forever = False
    retried = await saga.write(batch)
    assert (retried.written, retried.skipped) == (3, 0)
    assert await sink.committed([r.idempotency_key for r in batch]) == {r.idempotency_key for r in batch}
    assert await sink.get_version("turvo", "c") == (1, True)


async def test_a_partial_write_is_undone_where_known_and_completed_by_the_retry(
    sink: RedisSink, record: RecordFactory
) -> None:
    """Redis succeeds, another sink fails after writing: Redis is put back, nothing is
    committed. The failing sink returned nothing (it raised), so what it wrote before
    failing stays until the retry, which writes the same records again and commits."""
    saga, _, faulty = make_saga(sink, Faults(fail_writes=1, write_after_failure=True))
    batch = [record("a", 1)]
    with pytest.raises(SagaWriteError):
        await saga.write(batch)
    assert await sink.read([batch[0].key]) == {}
    assert list(faulty.inner.rows.values()) == batch  # type: ignore[attr-defined]
    assert await sink.committed([batch[0].idempotency_key]) == set()
    assert (await saga.write(batch)).written == 1
    assert await sink.read([batch[0].key]) == {batch[0].key: batch[0]}
    assert await sink.committed([batch[0].idempotency_key]) == {batch[0].idempotency_key}
