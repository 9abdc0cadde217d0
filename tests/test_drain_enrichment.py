"""The drain enriches only what the saga writes (issue 15): each saga chunk keeps the latest
record per key, so a record superseded in its chunk (Samsara's route, repeated in every
RouteStopArrival of a batch) is no longer enriched. What reaches the sinks must be, byte
for byte and batch by batch, what enriching every record gave, and so must the counts.

The old way is kept as the reference: `IngestActivities._enrich` over every record, then
`_write`. Records: Samsara's published RouteStopArrival example as the benchmark's load
sends it (a fresh eventId and stop each, one route), every vendor example of
`connectors-*/tests/data`, and versions of one key out of order, tombstones and
corrections at an equal version, across saga chunk boundaries.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import ActivityEnvironment

sys.path.insert(0, str(Path(__file__).parent))

from support.vendor_records import vendor_records

from apex_connector_samsara import samples
from apex_platform.contracts import Enricher, Previous
from apex_platform.inbox import Delivery, Inbox
from apex_platform.models import InboundEvent, Record, RecordKey, WriteResult
from apex_platform.plugins import Registry, build_registry
from apex_platform.saga import Saga
from apex_platform.temporal import activities
from apex_platform.temporal.activities import IngestActivities
from apex_platform.temporal.inputs import DrainBatchInput

pytestmark = pytest.mark.timeout(120)


class RecordingSink:
    """Keeps every batch the saga hands it, as JSON, in order."""

    name = "recording"

    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def health(self) -> None:
        return None

    async def write(self, records: Sequence[Record], *, writer: str | None = None) -> Previous:
        self.batches.append([r.model_dump_json() for r in records])
        return {}

    async def read(self, keys: Sequence[RecordKey]) -> dict[RecordKey, Record]:
        return {}

    async def restore(self, previous: Mapping[RecordKey, Record | None], *, writer: str | None = None) -> None:
        return None


class Counting:
    """An enricher that counts the records it is given, around a real one."""

    def __init__(self, inner: Enricher) -> None:
        self.inner = inner
        self.name = inner.name
        self.seen = 0

    async def enrich(self, records: Sequence[Record]) -> list[Record]:
        self.seen += len(records)
        return await self.inner.enrich(records)


def route_stop_arrivals(count: int) -> list[Record]:
    """As `benchmarks/loadgen.py` sends them: each its own eventId and stop, one route."""
    connector: Any = build_registry("samsara").source("samsara")
    template = samples.route_stop_arrival()
    out: list[Record] = []
    for i in range(count):
        template["eventId"] = template["data"]["routeStopDetails"]["id"] = f"golden-{i:04d}"
        template["data"]["route"]["stops"][0]["id"] = template["eventId"]
        body = json.dumps(template, separators=(",", ":")).encode()
        event = connector.receive({"Content-Type": "application/json"}, body)
        assert isinstance(event, InboundEvent)
        out.extend(connector.parse(event))
    return out


def shuffled_versions(base: Record) -> list[Record]:
    """One key many times: versions out of order, a correction and a tombstone at an
    equal version, a late older one."""

    def at(version: int, **update: Any) -> Record:
        return base.model_copy(update={"id": "golden-versions", "version": version, **update})

    return [
        at(5),
        at(9, text=base.text + " first"),
        at(7),
        at(9, text=base.text + " corrected"),
        at(12, deleted=True),
        at(12, text="a live record at the tombstone's version"),
        at(3),
    ]


@functools.cache
def vendor() -> tuple[Record, ...]:
    return tuple(r for _, r in vendor_records())


def batch() -> list[Record]:
    records = route_stop_arrivals(100)
    vendor_ = list(vendor())
    records[40:40] = vendor_
    records[100:100] = shuffled_versions(records[0])
    records[130:130] = vendor_  # every vendor record twice, in other chunks
    records.extend(shuffled_versions(vendor_[0]))
    return records


def ingest(*, counting: bool = False) -> tuple[IngestActivities, RecordingSink, list[Counting]]:
    registry = build_registry("samsara,entities,embeddings")
    counters = [Counting(e) for e in registry.enrichers.values()]
    if counting:
        registry = Registry(sources=registry.sources, enrichers={c.name: c for c in counters}, sinks=registry.sinks)
    sink = RecordingSink()
    return IngestActivities(registry, Saga.from_sinks({"recording": sink}), None, None), sink, counters  # type: ignore[arg-type]


async def old_way(records: list[Record], batch_id: str) -> tuple[list[list[str]], WriteResult]:
    acts, sink, _ = ingest()
    result = await acts._write(await acts._enrich(records), batch_id=batch_id)
    return sink.batches, result


@pytest.mark.parametrize("chunk", [1000, 50])
async def test_the_sinks_get_what_enriching_every_record_gave(chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(activities, "SAGA_CHUNK_RECORDS", chunk)
    records = batch()
    expected, expected_result = await old_way(records, "golden")

    acts, sink, counters = ingest(counting=True)
    result = await acts._write(await acts._enrich_written(records), batch_id="golden")

    assert sink.batches == expected
    assert result == expected_result
    assert sum(len(b) for b in sink.batches) < len(records)  # the saga did drop superseded copies
    # only what the saga writes was enriched
    assert all(c.seen == sum(len(b) for b in sink.batches) for c in counters)


async def test_no_duplicates_means_every_record_is_enriched_once() -> None:
    records = list({r.key: r for r in vendor()}.values())
    expected, _ = await old_way(records, "golden")
    acts, sink, counters = ingest(counting=True)
    await acts._write(await acts._enrich_written(records), batch_id="golden")
    assert sink.batches == expected
    assert all(c.seen == len(records) for c in counters)


class Renumbering:
    """An enricher outside its contract: it changes versions."""

    name = "renumbering"

    async def enrich(self, records: Sequence[Record]) -> list[Record]:
        return [r.model_copy(update={"version": r.version + len(r.text) % 3}) for r in records]


async def test_an_enricher_that_changes_versions_gets_every_record_as_before() -> None:
    records = batch()
    registry = build_registry("samsara")
    registry = Registry(sources=registry.sources, enrichers={"renumbering": Renumbering()}, sinks={})
    old_sink, new_sink = RecordingSink(), RecordingSink()
    old = IngestActivities(registry, Saga.from_sinks({"recording": old_sink}), None, None)  # type: ignore[arg-type]
    new = IngestActivities(registry, Saga.from_sinks({"recording": new_sink}), None, None)  # type: ignore[arg-type]
    await old._write(await old._enrich(records), batch_id="golden")
    await new._write(await new._enrich_written(records), batch_id="golden")
    assert new_sink.batches == old_sink.batches


@pytest.fixture
def inbox(apex_inbox: Inbox) -> Inbox:
    return apex_inbox


async def test_a_drained_batch_writes_and_records_what_it_did_before(inbox: Inbox) -> None:
    """The whole activity on a real inbox: Samsara deliveries as the benchmark sends them,
    drained the old way and the new way into two sinks: the same batches, counts and
    lineage (every record, superseded copies included)."""
    template = samples.route_stop_arrival()
    now = datetime.now(UTC)
    for i in range(60):
        template["eventId"] = template["data"]["routeStopDetails"]["id"] = f"golden-drain-{i:04d}"
        template["data"]["route"]["stops"][0]["id"] = template["eventId"]
        body = json.dumps(template, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json"}
        for source in ("old", "new"):
            await inbox.put(
                Delivery(source=source, event_id=template["eventId"], received_at=now, headers=headers, body=body)
            )

    async def drain(source: str) -> tuple[list[list[str]], Any, list[tuple[Any, ...]]]:
        acts, sink, _ = ingest()
        acts.inbox = inbox
        samsara = acts.registry.sources["samsara"]
        acts.registry = Registry(sources={source: samsara}, enrichers=acts.registry.enrichers, sinks={})
        if source == "old":
            acts._enrich_written = acts._enrich  # type: ignore[method-assign]
        result = await ActivityEnvironment().run(
            acts.drain_inbox, DrainBatchInput(source=source, max_count=1000, max_bytes=8 << 20, idle_wait_seconds=0)
        )
        pool = await inbox.pool()
        rows = await pool.fetch(
            f"SELECT record_id, version, origin FROM {inbox.schema}.lineage WHERE source = 'samsara' "
            "AND origin LIKE $1 ORDER BY record_id, version, origin",
            f"delivery:{source}:%",
        )
        lineage = [(r["record_id"], r["version"], r["origin"].split(":", 2)[2]) for r in rows]
        return sink.batches, result, lineage

    old = await drain("old")
    new = await drain("new")
    assert old[1].deliveries == 60
    assert old[1].records == 120
    assert new[0] == old[0]
    assert new[1].model_copy(update={"first_seq": 0, "last_seq": 0}) == old[1].model_copy(
        update={"first_seq": 0, "last_seq": 0}
    )
    assert new[2] == old[2]
    assert len(new[2]) == 61  # 60 stops, and the one route from 60 deliveries
