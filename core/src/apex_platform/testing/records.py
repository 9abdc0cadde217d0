"""Record factories for sink and connector tests (a third party's sink tests can use them too)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from apex_platform.models import Record

EPOCH = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def make_record(
    id: str | None = None,
    version: int = 1,
    *,
    source: str = "turvo",
    kind: str = "turvo.shipment",
    text: str | None = None,
    deleted: bool = False,
    embedding: tuple[float, ...] | None = None,
    attributes: dict[str, Any] | None = None,
    occurred_at: datetime | None = None,
    **fields: Any,
) -> Record:
    """A small record; unset fields follow from `version` so different versions differ in content."""
    return Record(
        source=source,
        kind=kind,
        id=id or uuid.uuid4().hex,
        version=version,
        occurred_at=occurred_at or EPOCH + timedelta(seconds=version % 10**8),
        title=fields.pop("title", f"shipment v{version}"),
        text=f"status at version {version}" if text is None else text,
        attributes={"version": version} if attributes is None else attributes,
        deleted=deleted,
        embedding=embedding,
        **fields,
    )
