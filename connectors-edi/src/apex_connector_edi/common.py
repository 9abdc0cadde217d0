"""What the 214 and 210 records share: the source name, references, envelope attributes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from apex_connector_edi import dates
from apex_connector_edi.codes import FROM_ROLES, REFERENCE_QUALIFIERS, TO_ROLES
from apex_connector_edi.payload import SetPayload
from apex_connector_edi.releases import Release
from apex_platform.errors import PayloadError

SOURCE = "edi"

_PARTY_RELATIONS = {**dict.fromkeys(FROM_ROLES, "SHIPPED_FROM"), **dict.fromkeys(TO_ROLES, "SHIPPED_TO")}


def relation_for(role: str) -> str:
    """Shipment → party relation: SHIPPED_FROM (SF, SH), SHIPPED_TO (ST, CN), BILL_TO (BT),
    HAS_PARTY for every other role (the role is a property of the relation)."""
    return _PARTY_RELATIONS.get(role, "BILL_TO" if role == "BT" else "HAS_PARTY")


def reference(qualifier: str, value: str) -> dict[str, str] | None:
    value = " ".join(value.split())
    if not value:
        return None
    ref = {"qualifier": qualifier, "value": value}
    if qualifier in REFERENCE_QUALIFIERS:
        ref["name"] = REFERENCE_QUALIFIERS[qualifier]
    return ref


def envelope_attributes(unit: SetPayload) -> dict[str, Any]:
    isa, gs = unit.interchange, unit.group
    out = {
        "set_control_number": unit.control_number,
        "interchange_control_number": isa.get("control_number", ""),
        "group_control_number": gs.get("control_number", ""),
        "sender": isa.get("sender", ""),
        "sender_qualifier": isa.get("sender_qualifier", ""),
        "receiver": isa.get("receiver", ""),
        "receiver_qualifier": isa.get("receiver_qualifier", ""),
        "interchange_date": isa.get("date", ""),
        "interchange_time": isa.get("time", ""),
        "usage": isa.get("usage", ""),
        "functional_id": gs.get("functional_id", ""),
        "application_sender": gs.get("sender", ""),
        "application_receiver": gs.get("receiver", ""),
        "version": gs.get("version", ""),
        # what the layouts were chosen by, and why not, when GS08 is no release they know
        "release_note": Release.of(gs.get("version", "")).note() or "",
    }
    return {k: v for k, v in out.items() if v}


def fallback_moment(unit: SetPayload) -> datetime:
    """When a set names no usable date of its own: the group's (GS04/GS05), else the
    interchange's (ISA09/ISA10), read as UTC."""
    for day_text, time_text in (
        (unit.group.get("date", ""), unit.group.get("time", "")),
        (unit.interchange.get("date", ""), unit.interchange.get("time", "")),
    ):
        day = dates.parse_date(day_text)
        if day is not None:
            return dates.to_utc(day, dates.parse_time(time_text), "UT")[0]
    raise PayloadError(f"set {unit.control_number}: no usable date in the set, the GS or the ISA")
