"""A batch file's metrics: its warnings (`apex_parse_warnings_total`), a unit its
connector cannot read (`apex_unparsed_deliveries_total`), its records, and its
BatchFileWorkflow run, through a real in-process worker and the session's Temporal."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import pytest
from prometheus_client import REGISTRY
from temporalio.client import Client

from apex_platform.batches import ingest_file
from apex_platform.contracts import BatchUnit, BatchWarning
from apex_platform.errors import PayloadError
from apex_platform.models import InboundEvent, Record
from apex_platform.runtime import Runtime
from apex_platform.testing.sinks import CountingSink
from apex_platform.testing.worker import running_worker

pytestmark = pytest.mark.timeout(180)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


class LinesSource:
    """JSON lines, a unit per line; `#` lines are warnings; a line that is not an object
    with an id cannot be parsed (the others go on)."""

    name = "meteredlines"
    mode = "batch"
    priority = "P2"
    settings_model: ClassVar[Any] = None

    def split(self, path: Path) -> Iterator[BatchUnit | BatchWarning]:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if line.startswith("#"):
                yield BatchWarning(f"{path.name} line {n}: {line[1:].strip()}")
            elif line.strip():
                yield BatchUnit(id=f"L{n}", payload=line)

    def parse(self, event: InboundEvent) -> list[Record]:
        data = json.loads(event.payload)
        if not isinstance(data, dict):
            raise PayloadError("line is not an object with an id")
        return [Record(source=self.name, kind="lines.row", id=str(data["id"]), version=1, occurred_at=T0)]

    def read(self, path: Path) -> Iterable[Record]:
        return []


def write_lines(path: Path, n: int, bad: set[int]) -> Path:
    rows = ["# GE01 says 2 sets, the group holds 1"]
    rows += ["[not an object]" if i in bad else json.dumps({"id": f"r{i}"}) for i in range(n)]
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture
async def env(
    apex_temporal_server: Any, apex_postgres_server: Any, tmp_path: Path
) -> AsyncIterator[tuple[Runtime, Client]]:
    async with running_worker(
        apex_temporal_server.address,
        tmp_path / "home",
        sources=[LinesSource()],
        sinks=[CountingSink()],
        priorities=["P2"],
        inbox_dsn=apex_postgres_server.dsn,
    ) as harness:
        yield harness.runtime, harness.client


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_file_counts_its_warnings_its_unreadable_unit_its_records_and_its_run(
    env: tuple[Runtime, Client], tmp_path: Path
) -> None:
    runtime, client = env
    keys = {
        "warnings": ("apex_parse_warnings_total", {"source": "meteredlines"}),
        "unparsed": ("apex_unparsed_deliveries_total", {"source": "meteredlines"}),
        "parsed": ("apex_records_parsed_total", {"source": "meteredlines", "kind": "lines.row"}),
        "written": ("apex_records_written_total", {"source": "meteredlines"}),
        "started": ("apex_workflows_started_total", {"workflow": "BatchFileWorkflow", "source": "meteredlines"}),
        "completed": (
            "apex_workflows_finished_total",
            {"workflow": "BatchFileWorkflow", "source": "meteredlines", "outcome": "completed"},
        ),
    }
    before = {k: sample(n, **lab) for k, (n, lab) in keys.items()}
    path = write_lines(tmp_path / "metered.jsonl", 12, bad={3})
    result = await ingest_file(runtime, client, runtime.registry.source("meteredlines"), path, chunk_size=5)  # type: ignore[arg-type]
    assert result.record_count == 11
    delta = {k: sample(n, **lab) - before[k] for k, (n, lab) in keys.items()}
    assert delta == {"warnings": 1, "unparsed": 1, "parsed": 11, "written": 11, "started": 1, "completed": 1}
