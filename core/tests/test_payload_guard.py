"""The payload guard: no payload over APEX_TEMPORAL_MAX_PAYLOAD_BYTES reaches Temporal.
Unit checks of the codec, then one poll page of 100,000 records (~100 MB) ingested
through PollWorkflow on the real Temporal dev server without any payload near the limit."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import pytest
from temporalio.api.common.v1 import Payload

from apex_platform.models import InboundEvent, Page, Record, RecordKey
from apex_platform.pollers import start_poller
from apex_platform.settings import TemporalSettings, load
from apex_platform.temporal.client import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    GUARD_FILE_ENV,
    PayloadGuard,
    PayloadTooLarge,
    data_converter,
    find_codec,
)
from apex_platform.testing.pytest_plugin import guard_violations
from apex_platform.testing.sinks import CountingSink
from apex_platform.testing.worker import WorkerHarness, running_worker

T0 = datetime(2026, 1, 1, tzinfo=UTC)
LIMIT = 131072


def payload(size: int) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=b"x" * size)


# -- the codec ------------------------------------------------------------------------------


async def test_a_payload_over_the_limit_raises_and_is_logged_to_the_guard_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over the limit: `PayloadTooLarge` naming the size and the setting, and one line in
    the guard file (a file of this test's own: the session's would fail the session)."""
    guard_file = tmp_path / "guard.log"
    monkeypatch.setenv(GUARD_FILE_ENV, str(guard_file))
    guard = PayloadGuard(LIMIT)
    with pytest.raises(PayloadTooLarge, match=rf"{LIMIT + 1} bytes exceeds APEX_TEMPORAL_MAX_PAYLOAD_BYTES={LIMIT}"):
        await guard.encode([payload(10), payload(LIMIT + 1)])
    lines = guard_file.read_text().splitlines()
    assert len(lines) == 1
    assert f"{LIMIT + 1} bytes" in lines[0]


async def test_a_payload_at_or_under_the_limit_passes_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At the limit and under it, payloads pass as they are and nothing is logged."""
    guard_file = tmp_path / "guard.log"
    monkeypatch.setenv(GUARD_FILE_ENV, str(guard_file))
    sent = [payload(LIMIT), payload(0), payload(1000)]
    guard = PayloadGuard(LIMIT)
    assert await guard.encode(sent) == sent
    assert await guard.decode(sent) == sent
    assert not guard_file.exists()


async def test_without_a_guard_file_the_guard_still_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside the test suite (no APEX_PAYLOAD_GUARD_FILE) a violation still raises."""
    monkeypatch.delenv(GUARD_FILE_ENV, raising=False)
    with pytest.raises(PayloadTooLarge):
        await PayloadGuard(100).encode([payload(101)])


async def test_the_data_converter_carries_the_guard_unless_it_is_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default converter guards at 128 KiB (APEX_TEMPORAL_MAX_PAYLOAD_BYTES moves it, 0
    turns it off): a large value fails to encode, a small one does not."""
    assert DEFAULT_MAX_PAYLOAD_BYTES == LIMIT
    assert find_codec(data_converter(TemporalSettings(max_payload_bytes=0)), PayloadGuard) is None
    default = find_codec(data_converter(TemporalSettings()), PayloadGuard)
    assert default is not None
    assert default.limit == LIMIT
    monkeypatch.setenv("APEX_TEMPORAL_MAX_PAYLOAD_BYTES", "4096")
    small = data_converter(load(TemporalSettings))
    guard = find_codec(small, PayloadGuard)
    assert guard is not None
    assert guard.limit == 4096

    monkeypatch.setenv(GUARD_FILE_ENV, str(tmp_path / "guard.log"))
    assert len(await small.encode([{"text": "y" * 1000}])) == 1
    with pytest.raises(PayloadTooLarge):
        await small.encode([{"text": "y" * 5000}])
    unguarded = data_converter(TemporalSettings(max_payload_bytes=0))
    assert len((await unguarded.encode([{"text": "y" * 5000}]))[0].data) > 5000


# -- one page of 100,000 records through PollWorkflow ---------------------------------------

RECORDS = 100_000


class BigPageSource:
    """A poll source whose first page holds 100,000 records of ~1 KB each."""

    name = "bigpage"
    mode = "poll"
    priority = "P1"
    settings_model: ClassVar[Any] = None
    poll_interval_seconds = 3600.0

    def __init__(self, page: Page) -> None:
        self.account = f"acct-{uuid.uuid4().hex[:8]}"
        self.page = page
        self.calls: list[str | None] = []

    def accounts(self) -> list[str]:
        return [self.account]

    def parse(self, event: InboundEvent) -> list[Record]:
        return []

    async def poll(self, account: str, cursor: str | None) -> Page:
        self.calls.append(cursor)
        if cursor is None:
            return self.page
        return Page(next_cursor=cursor, has_more=False)


def big_page() -> Page:
    filler = "lorem ipsum dolor sit amet " * 38  # ~1 KB of text per record
    records = tuple(
        Record(
            source="bigpage",
            kind="big.row",
            id=f"r{i:06d}",
            version=1,
            occurred_at=T0,
            text=f"{i:06d} {filler}",
        )
        for i in range(RECORDS)
    )
    return Page(records=records, next_cursor="after-the-big-page", has_more=False)


@pytest.fixture
async def big(
    apex_temporal_server: Any, apex_postgres_server: Any, tmp_path: Path
) -> AsyncIterator[tuple[WorkerHarness, BigPageSource, CountingSink]]:
    source = BigPageSource(big_page())
    sink = CountingSink()
    async with running_worker(
        apex_temporal_server.address,
        tmp_path,
        sources=[source],
        sinks=[sink],
        priorities=["P1"],
        inbox_dsn=apex_postgres_server.dsn,
    ) as harness:
        yield harness, source, sink


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_a_page_of_100k_records_lands_exactly_once_without_a_large_payload(
    big: tuple[WorkerHarness, BigPageSource, CountingSink],
) -> None:
    """~100 MB in one page: every record lands once, the cursor moves past the page, the
    history stays short and no event carries anything near the guard's limit (the page
    itself never entered Temporal)."""
    harness, source, sink = big
    assert sum(len(r.text) for r in source.page.records) > 100_000_000
    before = guard_violations()
    started = time.monotonic()
    handle = await start_poller(harness.client, source, source.account, harness.temporal, once=True)  # type: ignore[arg-type]
    result = asyncio.ensure_future(handle.result())
    while not result.done():  # a refused payload makes the poller wait an hour: fail at once instead
        assert guard_violations() == before, f"payload guard tripped: {guard_violations()[len(before) :][:1]}"
        assert time.monotonic() - started < 300, "the 100k-record page was not ingested within 300 s"
        await asyncio.wait([result], timeout=0.5)
    state = result.result()
    elapsed = time.monotonic() - started

    assert (state.cursor, state.loop_cursor, state.pages, state.records, state.stage) == (
        "after-the-big-page",
        "after-the-big-page",
        1,
        RECORDS,
        "done",
    )
    assert source.calls == [None]
    assert len(sink.rows) == RECORDS
    assert set(sink.received.values()) == {1}  # exactly once: no record written twice
    assert len(sink.received) == RECORDS
    assert sink.writes == RECORDS // 1000  # in saga chunks of 1,000
    assert sink.rows[RecordKey("bigpage", "r099999")].text.startswith("099999 lorem")
    assert state.recent_ids[-1] == "r099999"

    # the worker's client is the one behind the guard
    codec = find_codec(harness.runtime.client.data_converter, PayloadGuard) if harness.runtime.client else None
    assert codec is not None
    assert codec.limit == LIMIT
    assert guard_violations() == before

    history = await handle.fetch_history()
    assert len(history.events) < 10_000
    largest = max(event.ByteSize() for event in history.events)
    assert largest < LIMIT // 4, f"a history event of {largest} bytes: the page travelled through Temporal"
    lineage = await harness.runtime.inbox.records_from(f"page:{source.account}@")
    assert len(lineage) == RECORDS
    print(f"100k-record page ingested in {elapsed:.1f}s, {len(history.events)} history events, largest {largest} B")
