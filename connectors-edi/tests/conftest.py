"""Fixtures of the EDI connector tests: the third-party samples, variants of them, and helpers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from apex_connector_edi import EdiConnector, EdiSettings
from apex_platform.contracts import BatchUnit, BatchWarning
from apex_platform.models import InboundEvent, Record

#: EdiFabric's published samples, kept byte for byte (see the README beside them)
SAMPLES = Path(__file__).resolve().parent / "data" / "third_party"
STATUS_214 = SAMPLES / "edifabric_214_shipment_status.x12"
INVOICE_210 = SAMPLES / "edifabric_210_freight_invoice.x12"


@dataclass
class Split:
    units: list[BatchUnit]
    warnings: list[str]


@pytest.fixture
def connector() -> EdiConnector:
    return EdiConnector(EdiSettings())


@pytest.fixture
def split(connector: EdiConnector) -> Callable[[Path], Split]:
    def _split(path: Path) -> Split:
        items = list(connector.split(path))
        return Split(
            units=[i for i in items if isinstance(i, BatchUnit)],
            warnings=[i.message for i in items if isinstance(i, BatchWarning)],
        )

    return _split


@pytest.fixture
def records(connector: EdiConnector, split: Callable[[Path], Split]) -> Callable[[Path], list[Record]]:
    """Split a file, then parse each unit as the ingest activity does (event per unit)."""

    def _records(path: Path) -> list[Record]:
        out: list[Record] = []
        for unit in split(path).units:
            event = InboundEvent(
                source="edi",
                event_id=f"{path.name}:{unit.id}",
                received_at="2026-01-01T00:00:00Z",
                payload=unit.payload,
            )
            out += connector.parse(event)
        return out

    return _records


@pytest.fixture
def variant(tmp_path: Path) -> Callable[[Path, Callable[[str], str]], Path]:
    made = iter(range(1, 1000))

    def _variant(sample: Path, change: Callable[[str], str]) -> Path:
        path = tmp_path / f"v{next(made)}" / sample.name  # same name: records must not depend on it anyway
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(change(sample.read_text()).encode())
        return path

    return _variant


@pytest.fixture
def sample_214() -> Path:
    return STATUS_214


@pytest.fixture
def sample_210() -> Path:
    return INVOICE_210


@pytest.fixture
def x12_file(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write X12 text to a file named `name`."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_bytes(text.encode())
        return path

    return _write
