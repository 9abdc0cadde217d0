"""The chaos run's `flaky` sink (tests/chaos/flaky_plugin.py) keeps a bounded number of
records: unbounded, it held every record a worker wrote (about 17 KB each with a
384-dimension embedding) and was the workers' memory growth of the soak (seed 4004:
151 → 2,288 MB in 15 minutes). A key it forgot is read-repaired by the saga, like a store
that lost its data, and never changes what the other stores hold. No server, no timing:
retained bytes are measured with tracemalloc."""

from __future__ import annotations

import gc
import tracemalloc

from apex_platform.models import Record, RecordKey
from apex_platform.saga import Saga, SagaSettings
from apex_platform.testing.records import make_record
from apex_platform.testing.sinks import MemorySink
from tests.chaos.flaky_plugin import MAX_ROWS, FlakySink

BATCH = 1000
DIM = 384


def _batch(start: int) -> list[Record]:
    """A saga call's worth of distinct records, each with its own embedding (as the soak's)."""
    return [
        make_record(
            f"rec-{start + i}",
            source="samsara",
            kind="samsara.vehicle_location",
            embedding=tuple(((start + i + d) % 97) / 97.0 for d in range(DIM)),
        )
        for i in range(BATCH)
    ]


async def test_the_flaky_sink_keeps_a_bounded_number_of_records() -> None:
    sink = FlakySink()

    async def write(batches: range) -> None:
        for b in batches:
            await sink.write(_batch(b * BATCH), writer=f"w{b}")

    tracemalloc.start()
    try:
        warm = MAX_ROWS // BATCH + 2
        await write(range(warm))  # full: from here on every key written forgets one
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        more = 5
        await write(range(warm, warm + more))
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    per_record = (after - before) / (more * BATCH)
    assert len(sink.rows) == MAX_ROWS
    assert set(sink.tokens) <= set(sink.rows)
    # unbounded it retained ~14 KB per record written (the record, its 384 floats, its key);
    # bounded, what is left is noise (the dict's own table), ~100-200 bytes
    assert per_record < 1000, f"{per_record:.0f} bytes retained per record written"
    # the newest are kept
    assert RecordKey("samsara", f"rec-{(warm + more) * BATCH - 1}") in sink.rows


async def test_a_key_written_again_is_kept_over_older_ones() -> None:
    sink = FlakySink(max_rows=3)
    for i in range(3):
        await sink.write([make_record(f"k{i}")], writer="a")
    await sink.write([make_record("k0", version=2)], writer="b")  # k0 is now the newest
    await sink.write([make_record("k3")], writer="c")
    assert sorted(k.id for k in sink.rows) == ["k0", "k2", "k3"]


async def test_a_forgotten_key_is_read_repaired_and_the_other_stores_keep_the_newest() -> None:
    real = MemorySink("real")
    flaky = FlakySink(max_rows=5)
    saga = Saga.from_sinks({"real": real, "flaky": flaky}, SagaSettings(retry_attempts=1))
    await saga.write([make_record(f"r{i}", version=2) for i in range(20)], batch_id="b1")
    assert RecordKey("turvo", "r0") not in flaky.rows  # forgotten
    # a late older version of a forgotten key: only the flaky sink takes it, the saga reads
    # every store and puts the newest back
    await saga.write([make_record("r0", version=1)], batch_id="b2")
    # the same version again (a redelivery): the flaky sink takes it again, nothing else changes
    await saga.write([make_record("r1", version=2)], batch_id="b3")
    assert len(real.rows) == 20
    assert all(r.version == 2 for r in real.rows.values())
    assert flaky.rows[RecordKey("turvo", "r0")] == make_record("r0", version=2)
    assert flaky.rows[RecordKey("turvo", "r1")] == make_record("r1", version=2)
    assert len(flaky.rows) <= 5
