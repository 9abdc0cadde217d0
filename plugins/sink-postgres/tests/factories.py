"""Records for tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from apex_platform.models import Entity, Record, Relation

EPOCH = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def record(
    id: str | None = None,
    version: int = 1,
    *,
    source: str = "turvo",
    kind: str = "turvo.shipment",
    text: str = "",
    deleted: bool = False,
    embedding: tuple[float, ...] | None = None,
    attributes: dict[str, Any] | None = None,
    **fields: Any,
) -> Record:
    return Record(
        source=source,
        kind=kind,
        id=id or uuid.uuid4().hex,
        version=version,
        occurred_at=EPOCH + timedelta(seconds=version % 10**8),
        title=fields.pop("title", f"shipment v{version}"),
        text=text or f"status at version {version}",
        attributes=attributes if attributes is not None else {"version": version},
        deleted=deleted,
        embedding=embedding,
        **fields,
    )


def rich_record(id: str | None = None, version: int = 7, dim: int = 4) -> Record:
    """A record using every field, with unicode, nested JSON and awkward floats."""
    return Record(
        source="frontapp",
        kind="frontapp.message",
        id=id or f"msg_{uuid.uuid4().hex}",
        version=version,
        occurred_at=datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC),
        title="Livraison retardée — 配達遅延 🚚",
        text='Bonjour,\nle camion n°42 est bloqué à Montréal.\t«guillemets» "quotes" \\ backslash',
        attributes={
            "nested": {"list": [1, 2.5, None, True, "x", {"deep": [[], {}]}], "empty": {}},
            "big_float": 1e300,
            "exp_float": 1e16,
            "tiny": 5e-324,
            "small": 1.5e-05,
            "neg": -0.25,
            "huge_int": 2**80,
            "unicode": "Zürich → Köln",
        },
        entities=(
            Entity(type="Shipment", key="SH-1", properties={"weight_kg": 1200.5}),
            Entity(type="Truck", key="42"),
        ),
        relations=(Relation(src="Shipment:SH-1", type="CARRIED_BY", dst="Truck:42", properties={"leg": 1}),),
        embedding=tuple(float(v) for v in [0.1, -0.2, 1e-7, 3.0][:dim]) + (0.5,) * max(0, dim - 4),
    )
