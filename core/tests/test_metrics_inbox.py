"""The inbox gauges are read at scrape time, at most once per cache period, and a failed
reading is said (`apex_inbox_up` 0), never a failed scrape."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from apex_platform.metrics import InboxCollector


class FakeInbox:
    def __init__(self) -> None:
        self.calls = 0
        self.fail = False

    async def status(self) -> list[dict[str, Any]]:
        self.calls += 1
        if self.fail:
            raise ConnectionRefusedError("connection refused")
        return [
            {"source": "frontapp", "backlog": 3, "backlog_bytes": 900, "stuck": 1, "oldest_pending_seconds": 42.5,
             "delivered_last_hour": 7},
            {"source": "turvo", "backlog": 0, "backlog_bytes": 0, "stuck": 0, "oldest_pending_seconds": None,
             "delivered_last_hour": 2},
        ]  # fmt: skip


def scrape(collector: InboxCollector) -> dict[tuple[str, str], float]:
    registry = CollectorRegistry()
    registry.register(collector)
    out: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in family.samples:
            out[(s.name, s.labels.get("source", ""))] = s.value
    return out


async def test_nothing_is_exported_before_the_first_reading() -> None:
    assert scrape(InboxCollector()) == {}


async def test_a_reading_gives_every_gauge_per_source_and_is_cached() -> None:
    collector, inbox = InboxCollector(), FakeInbox()
    await collector.refresh(inbox, max_age=60)  # type: ignore[arg-type]
    await collector.refresh(inbox, max_age=60)  # type: ignore[arg-type]
    assert inbox.calls == 1
    got = scrape(collector)
    assert got[("apex_inbox_up", "")] == 1
    assert got[("apex_inbox_backlog", "frontapp")] == 3
    assert got[("apex_inbox_backlog_bytes", "frontapp")] == 900
    assert got[("apex_inbox_stuck", "frontapp")] == 1
    assert got[("apex_inbox_oldest_pending_seconds", "frontapp")] == 42.5
    assert got[("apex_inbox_oldest_pending_seconds", "turvo")] == 0  # nothing pending
    assert got[("apex_inbox_delivered_last_hour", "turvo")] == 2
    await collector.refresh(inbox, max_age=0)  # type: ignore[arg-type]
    assert inbox.calls == 2


async def test_a_failed_reading_says_so_and_keeps_the_last_values() -> None:
    collector, inbox = InboxCollector(), FakeInbox()
    await collector.refresh(inbox, max_age=0)  # type: ignore[arg-type]
    inbox.fail = True
    await collector.refresh(inbox, max_age=0)  # type: ignore[arg-type]
    got = scrape(collector)
    assert got[("apex_inbox_up", "")] == 0
    assert got[("apex_inbox_backlog", "frontapp")] == 3
