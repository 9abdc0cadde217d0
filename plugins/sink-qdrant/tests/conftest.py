"""Fixtures: Qdrant in local mode, one folder per test (no Qdrant server is installable here)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from apex_platform.models import Entity, Record, Relation
from apex_platform.testing.records import make_record as _record
from apex_sink_qdrant import QdrantSink, QdrantSinkSettings

#: Small vectors keep local-mode collections tiny and fast.
DIM = 4

RecordFactory = Callable[..., Record]
SettingsFactory = Callable[..., QdrantSinkSettings]


@pytest.fixture(autouse=True)
def _no_qdrant_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests say where the store is; a developer's APEX_QDRANT_* must not leak in."""
    import os

    for name in list(os.environ):
        if name.startswith("APEX_QDRANT_"):
            monkeypatch.delenv(name)


@pytest.fixture
def make_settings(tmp_path: Path) -> SettingsFactory:
    """`make_settings(path=None, **fields)`: local-mode settings in this test's folder, DIM-sized vectors."""

    def make(path: Path | None = None, **overrides: Any) -> QdrantSinkSettings:
        fields: dict[str, Any] = {"path": path or tmp_path / "qdrant", "embedding_dim": DIM, **overrides}
        return QdrantSinkSettings(**fields)

    return make


@pytest.fixture
def settings(make_settings: SettingsFactory) -> QdrantSinkSettings:
    return make_settings()


@pytest.fixture
async def sink(settings: QdrantSinkSettings) -> AsyncIterator[QdrantSink]:
    async with QdrantSink(settings) as opened:
        yield opened


# Records for tests. Fixtures rather than an importable module: the workspace runs
# pytest with --import-mode=importlib, where test folders are not on sys.path.


@pytest.fixture
def record() -> RecordFactory:
    """`record(id, version, **fields)`: a small turvo.shipment record."""
    return _record


@pytest.fixture
def rich_record() -> RecordFactory:
    """`rich_record(id, version)`: every field, unicode, nested JSON, awkward floats."""
    return _rich_record


def _rich_record(id: str | None = None, version: int = 7) -> Record:
    return Record(
        source="frontapp",
        kind="frontapp.message",
        id=id or f"msg_{uuid.uuid4().hex}",
        version=version,
        occurred_at=datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC),
        title="Livraison retardée — 配達遅延 🚚",
        text='Bonjour,\nle camion n°42 est bloqué à Montréal.\t«guillemets» "quotes" \\ backslash ' * 20,
        attributes={
            "nested": {"list": [1, 2.5, None, True, "x", {"deep": [[], {}]}], "empty": {}},
            "big_float": 1e300,
            "exp_float": 1e16,
            "tiny": 5e-324,
            "small": 1.5e-05,
            "neg_zero": -0.0,
            "huge_int": 2**80,
            "unicode": "Zürich → Köln",
        },
        entities=(
            Entity(type="Shipment", key="SH-1", properties={"weight_kg": 1200.5}),
            Entity(type="Truck", key="42"),
        ),
        relations=(Relation(src="Shipment:SH-1", type="CARRIED_BY", dst="Truck:42", properties={"leg": 1}),),
        # Not float32-representable: Qdrant's vector would round them, `read` must not.
        embedding=(0.1, -0.2, 1e-7, 3.000000000000001),
    )
