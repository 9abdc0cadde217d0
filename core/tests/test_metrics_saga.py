"""The saga's metrics move when the saga does what they count: a retried transient failure,
a breaker that opens, a compensation, a failed compensation (dead letter), a quarantined
record, records written and skipped. In-memory sinks of the testing kit with injected
faults; every assertion is a delta of the process registry."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime

import pytest
from prometheus_client import REGISTRY

from apex_platform import metrics
from apex_platform.models import Entity, Record, RecordKey
from apex_platform.saga import Saga, SagaSettings, SagaWriteError
from apex_platform.testing.sinks import Faults, FaultySink, MemoryDeadLetters, MemorySink

T0 = datetime(2026, 1, 1, tzinfo=UTC)
FAST = SagaSettings(retry_attempts=3, retry_initial_seconds=0.001, retry_max_seconds=0.002, breaker_failures=100)


def rec(id: str, source: str = "metered", version: int = 1) -> Record:
    return Record(source=source, kind=f"{source}.x", id=id, version=version, occurred_at=T0, text="t")


def sinks(**faults: Faults) -> dict[str, FaultySink]:
    return {n: FaultySink(MemorySink(n), faults.get(n, Faults())) for n in ("postgres", "redis")}


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Delta:
    """Samples read before and after a block."""

    def __init__(self, *keys: tuple[str, dict[str, str]]) -> None:
        self.keys = keys
        self.before = [sample(n, **lab) for n, lab in keys]

    def __call__(self) -> list[float]:
        return [sample(n, **lab) - b for (n, lab), b in zip(self.keys, self.before, strict=True)]


async def test_a_retried_transient_failure_counts_one_retry_and_the_written_records() -> None:
    source = "metered_retry"
    d = Delta(
        ("apex_sink_retries_total", {"sink": "postgres", "op": "write"}),
        ("apex_sink_calls_total", {"sink": "postgres", "op": "write", "outcome": "ok"}),
        ("apex_records_written_total", {"source": source}),
        ("apex_records_skipped_total", {"source": source}),
    )
    started = time.time()
    saga = Saga(sinks(postgres=Faults(fail_writes=1)), FAST)
    await saga.write([rec("a", source), rec("b", source)])
    assert d() == [1, 1, 2, 0]
    assert sample("apex_source_last_write_timestamp_seconds", source=source) >= started


async def test_a_sink_down_opens_its_breaker_and_the_others_are_compensated() -> None:
    source = "metered_breaker"
    d = Delta(
        ("apex_sink_calls_total", {"sink": "postgres", "op": "write", "outcome": "error"}),
        ("apex_saga_compensations_total", {"sink": "redis", "outcome": "ok"}),
        ("apex_records_written_total", {"source": source}),
    )
    saga = Saga(
        sinks(postgres=Faults(fail_writes_forever=True)),
        SagaSettings(retry_attempts=1, retry_initial_seconds=0.001, breaker_failures=2),
    )
    for i in range(2):
        with pytest.raises(SagaWriteError):
            await saga.write([rec(f"r{i}", source)])
    assert sample("apex_saga_breaker_state", sink="postgres", op="write") == 2  # open
    assert sample("apex_saga_breaker_state", sink="redis", op="write") == 0
    assert d() == [2, 2, 0]


async def test_a_failed_compensation_is_a_dead_letter() -> None:
    d = Delta(
        ("apex_dead_letters_total", {}),
        ("apex_saga_compensations_total", {"sink": "redis", "outcome": "error"}),
    )
    saga = Saga(
        sinks(postgres=Faults(fail_writes_forever=True), redis=Faults(fail_restores_forever=True)),
        SagaSettings(retry_attempts=1, retry_initial_seconds=0.001, breaker_failures=100),
        dead_letters=MemoryDeadLetters(),
    )
    with pytest.raises(SagaWriteError):
        await saga.write([rec("dl", "metered_dl")], batch_id="b-dl")
    assert d() == [1, 1]


async def test_a_refused_record_is_counted_quarantined_by_source_and_sinks() -> None:
    source = "metered_poison"
    d = Delta(
        ("apex_records_quarantined_total", {"source": source, "sinks": "postgres"}),
        ("apex_records_written_total", {"source": source}),
        ("apex_sink_retries_total", {"sink": "postgres", "op": "write"}),
    )
    saga = Saga(sinks(postgres=Faults(refuse_ids={"poison"})), FAST, dead_letters=MemoryDeadLetters())
    await saga.write([rec("ok", source), rec("poison", source)], batch_id="b-q")
    assert d() == [1, 1, 0]  # never retried


class Coordinator:
    """The commit ledger in memory (locks are no-ops): what lets the saga skip a batch."""

    def __init__(self) -> None:
        self.done: set[str] = set()

    @contextlib.asynccontextmanager
    async def lock(self, keys: Sequence[RecordKey], *, ttl_seconds: float) -> AsyncIterator[None]:
        yield

    async def committed(self, keys: Sequence[str]) -> set[str]:
        return self.done & set(keys)

    async def mark_committed(self, keys: Sequence[str]) -> None:
        self.done |= set(keys)


async def test_the_same_batch_again_counts_skipped_not_written() -> None:
    source = "metered_skip"
    saga = Saga(sinks(), FAST, coordinator=Coordinator())
    batch = [rec("a", source), rec("b", source)]
    await saga.write(batch)
    d = Delta(("apex_records_written_total", {"source": source}), ("apex_records_skipped_total", {"source": source}))
    await saga.write(batch)
    assert d() == [0, 2]


def test_records_without_entities_or_text_and_unparsed_deliveries_are_counted() -> None:
    source = "metered_quality"
    d = Delta(
        ("apex_records_parsed_total", {"source": source, "kind": "q.x"}),
        ("apex_records_without_entities_total", {"source": source}),
        ("apex_records_without_text_total", {"source": source}),
        ("apex_unparsed_deliveries_total", {"source": source}),
        ("apex_records_parsed_total", {"source": source, "kind": "apex.unparsed"}),
    )
    bare = Record(source=source, kind="q.x", id="1", version=1, occurred_at=T0)
    rich = Record(
        source=source, kind="q.x", id="2", version=1, occurred_at=T0, title="PRO 4417",
        entities=[Entity(type="pro", key="4417")],
    )  # fmt: skip
    metrics.record_quality([bare, rich])
    metrics.record_unparsed(source)
    assert d() == [2, 1, 1, 1, 1]


def test_poll_success_sets_the_last_success_and_the_cursor_lag() -> None:
    source = "metered_poll"
    before = time.time()
    old = Record(source=source, kind="p.x", id="1", version=1, occurred_at=datetime.fromtimestamp(before - 600, UTC))
    metrics.record_poll_success(source, [old])
    assert sample("apex_poller_last_success_timestamp_seconds", source=source) >= before
    assert 600 <= sample("apex_poller_cursor_lag_seconds", source=source) < 600 + 60
    metrics.record_poll_success(source, [])  # an empty page: alive, the lag stays what it was
    assert 600 <= sample("apex_poller_cursor_lag_seconds", source=source) < 600 + 60


def test_labels_fed_from_outside_are_capped() -> None:
    values = {metrics.bounded(f"s{i}", label="capped_test") for i in range(metrics.MAX_LABEL_VALUES + 50)}
    assert len(values) == metrics.MAX_LABEL_VALUES + 1
    assert "other" in values
    assert metrics.bounded("s0", label="capped_test") == "s0"  # one seen before keeps its name


def test_expected_intervals_are_parsed_per_source_with_a_default() -> None:
    settings = metrics.MetricsSettings(expected_intervals="frontapp=1h, turvo=30m", default_expected_interval="2h")
    assert settings.expected_interval("frontapp") == 3600
    assert settings.expected_interval("turvo") == 1800
    assert settings.expected_interval("plaid") == 7200
    with pytest.raises(ValueError, match="source=duration"):
        metrics.MetricsSettings(expected_intervals="frontapp").expected_interval("x")
