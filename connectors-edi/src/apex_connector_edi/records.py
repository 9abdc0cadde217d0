"""Records of one transaction set: 214 → shipment statuses, 210 → a freight invoice,
anything else (or a set that yields nothing) → one generic `edi.transaction_set`."""

from __future__ import annotations

from typing import Any

from apex_connector_edi import dates, invoice, status
from apex_connector_edi.common import SOURCE, envelope_attributes, fallback_moment
from apex_connector_edi.payload import SetPayload, read_payload
from apex_platform.errors import PayloadError
from apex_platform.models import Record

KIND_SET = "edi.transaction_set"
KIND_STATUS = status.KIND
KIND_INVOICE = invoice.KIND

_BUILDERS = {"214": status.build, "210": invoice.build}
#: the generic record's text shows at most this many segments
_TEXT_SEGMENTS = 200


def build_records(payload: Any) -> list[Record]:
    unit = read_payload(payload)
    builder = _BUILDERS.get(unit.type)
    records = builder(unit) if builder is not None else []
    return records or [generic(unit)]


def _render(values: list[Any]) -> str:
    return "*".join(">".join(v) if isinstance(v, list) else v for v in values)


def generic(unit: SetPayload) -> Record:
    """A set this connector has no model for (or one with no status to report): kept
    whole, never dropped."""
    isa, gs = unit.interchange, unit.group
    sender = isa.get("sender") or "UNKNOWN"
    moment = fallback_moment(unit)
    rows = [seg.values for seg in unit.segments]
    text = "\n".join(_render(v) for v in rows[:_TEXT_SEGMENTS])
    return Record(
        source=SOURCE,
        kind=KIND_SET,
        id=f"{sender}:{isa.get('control_number', '')}:{gs.get('control_number', '')}:{unit.control_number}"[:512],
        version=dates.micros(moment),
        occurred_at=moment,
        title=f"X12 {unit.type or '?'} set {unit.control_number} from {sender}"[:500],
        text=text,
        attributes={"set_type": unit.type, "envelope": envelope_attributes(unit), "segments": rows},
    )


__all__ = ["KIND_INVOICE", "KIND_SET", "KIND_STATUS", "PayloadError", "build_records"]
