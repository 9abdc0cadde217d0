"""214 Transportation Carrier Shipment Status → one `edi.shipment_status` record per AT7.

Layout (004010): ST, B10, L11*, loop N1 (N2, N3, N4, G61), MS3; then loops LX, each with
AT7 (+ MS1 location, MS2 equipment) statuses, L11 references, AT8 weights, N1 parties.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from apex_connector_edi import dates
from apex_connector_edi.codes import (
    DELIVERY_STATUSES,
    FROM_ROLES,
    PICKUP_STATUSES,
    REASON_CODES,
    STATUS_CODES,
    TO_ROLES,
    WEIGHT_UNITS,
)
from apex_connector_edi.common import SOURCE, envelope_attributes, fallback_moment, reference, relation_for
from apex_connector_edi.parties import Graph, Party, place_key, read_party
from apex_connector_edi.payload import Seg, SetPayload
from apex_platform.errors import PayloadError
from apex_platform.models import Record

KIND = "edi.shipment_status"


@dataclass
class _Status:
    code: str
    reason: str
    appointment: str
    appointment_reason: str
    date: str
    time: str
    zone: str
    location: dict[str, Any] = field(default_factory=dict)
    equipment: dict[str, str] = field(default_factory=dict)


@dataclass
class _Loop:
    number: str = ""
    statuses: list[_Status] = field(default_factory=list)
    references: list[dict[str, str]] = field(default_factory=list)
    weights: list[dict[str, str]] = field(default_factory=list)
    parties: list[Party] = field(default_factory=list)


def _coordinate(value: str, direction: str, *, negative: str) -> float | None:
    """MS1 longitude/latitude codes: [D]DDMMSS digits, with E/W or N/S."""
    value = value.strip()
    if not value.isdigit() or len(value) < 5:
        return None
    degrees, minutes, seconds = int(value[:-4]), int(value[-4:-2]), int(value[-2:])
    if minutes >= 60 or seconds >= 60:
        return None
    result = round(degrees + minutes / 60 + seconds / 3600, 6)
    return -result if direction.strip().upper() == negative else result


def _location(ms1: Seg) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, index in (("city", 1), ("state", 2), ("country", 3)):
        if ms1.el(index):
            out[name] = " ".join(ms1.el(index).split())
    longitude = _coordinate(ms1.el(4), ms1.el(6), negative="W")
    latitude = _coordinate(ms1.el(5), ms1.el(7), negative="S")
    if longitude is not None and latitude is not None and abs(longitude) <= 180 and abs(latitude) <= 90:
        out["longitude"], out["latitude"] = longitude, latitude
    return out


def _read(segments: list[Seg]) -> tuple[Seg, list[dict[str, str]], list[Party], Seg | None, list[_Loop]]:
    b10: Seg | None = None
    references: list[dict[str, str]] = []
    parties: list[Party] = []
    ms3: Seg | None = None
    loops: list[_Loop] = []
    current: _Loop | None = None
    last: _Status | None = None
    i = 1
    while i < len(segments):
        seg = segments[i]
        sid = seg.id
        if sid == "N1":
            party, i = read_party(segments, i)
            (current.parties if current else parties).append(party)
            continue
        if sid == "B10" and b10 is None:
            b10 = seg
        elif sid == "L11":
            ref = reference(seg.el(2), seg.el(1))
            if ref:
                (current.references if current else references).append(ref)
        elif sid == "MS3" and current is None:
            ms3 = seg
        elif sid == "LX":
            current = _Loop(number=seg.el(1))
            loops.append(current)
            last = None
        elif sid == "AT7":
            if current is None:  # AT7 outside an LX loop: read it as one
                current = _Loop()
                loops.append(current)
            last = _Status(
                code=seg.el(1),
                reason=seg.el(2),
                appointment=seg.el(3),
                appointment_reason=seg.el(4),
                date=seg.el(5),
                time=seg.el(6),
                zone=seg.el(7),
            )
            current.statuses.append(last)
        elif sid == "MS1" and last is not None:
            last.location = _location(seg)
        elif sid == "MS2" and last is not None:
            last.equipment = {k: v for k, v in (("scac", seg.el(1)), ("number", seg.el(2)), ("type", seg.el(3))) if v}
        elif sid == "AT8" and current is not None:
            weight = {
                "qualifier": seg.el(1),
                "unit": seg.el(2),
                "unit_name": WEIGHT_UNITS.get(seg.el(2), ""),
                "weight": seg.el(3),
                "lading_quantity": seg.el(4) or seg.el(5),
                "volume_unit": seg.el(6),
                "volume": seg.el(7),
            }
            current.weights.append({k: v for k, v in weight.items() if v})
        i += 1
    if b10 is None:
        raise PayloadError("the 214 set has no B10 segment (carrier reference, shipment id, SCAC)")
    return b10, references, parties, ms3, loops


def _moment(status: _Status, unit: SetPayload) -> tuple[datetime, dict[str, Any]]:
    """When the status happened (UTC), and how it was read."""
    day = dates.parse_date(status.date)
    at = dates.parse_time(status.time)
    info: dict[str, Any] = {"date": status.date, "time": status.time, "time_zone": status.zone}
    if day is None:
        info["date_invalid"] = True
        return fallback_moment(unit), info
    moment, assumed = dates.to_utc(day, at, status.zone)
    if assumed:
        info["time_zone_assumed"] = "UTC"
    return moment, info


def build(unit: SetPayload) -> list[Record]:
    b10, references, parties, ms3, loops = _read(unit.segments)
    pro, shipment_id, scac = b10.el(1), b10.el(2), b10.el(3)
    if not scac and ms3 is not None:
        scac = ms3.el(1)
    b10_ref = reference(b10.el(5), b10.el(6))
    if b10_ref is not None:
        references.insert(0, b10_ref)
    scac_key = scac or unit.interchange.get("sender", "") or "UNKNOWN"
    shipment_key = shipment_id or pro
    if not shipment_key:
        raise PayloadError("the 214 set's B10 has neither a shipment id (B10-02) nor a reference/PRO (B10-01)")
    records: list[Record] = []
    for loop in loops:
        for status in loop.statuses:
            records.append(
                _record(unit, status, loop, pro, shipment_id, scac, scac_key, shipment_key, references, parties, ms3)
            )
    return records


def _status_place(status: _Status, parties: list[Party]) -> tuple[str | None, dict[str, Any]]:
    """The place of a status: MS1's city; else, for pick-up and delivery statuses, the
    ship-from / ship-to party's city (marked as inferred)."""
    location = dict(status.location)
    key = place_key(location.get("city", ""), location.get("state", ""), location.get("country", ""))
    if key:
        location["source"] = "MS1"
        return key, location
    code = status.code or status.appointment
    roles = FROM_ROLES if code in PICKUP_STATUSES else TO_ROLES if code in DELIVERY_STATUSES else ()
    for role in roles:
        party = next((p for p in parties if p.role == role and p.place_key), None)
        if party is not None:
            location.update({k: v for k, v in (("city", party.city), ("state", party.state)) if v})
            if party.country:
                location.setdefault("country", party.country)
            location["source"] = f"N1*{role} (inferred from the status code)"
            return party.place_key, location
    return None, location


def _record(
    unit: SetPayload,
    status: _Status,
    loop: _Loop,
    pro: str,
    shipment_id: str,
    scac: str,
    scac_key: str,
    shipment_key: str,
    references: list[dict[str, str]],
    header_parties: list[Party],
    ms3: Seg | None,
) -> Record:
    code = status.code or status.appointment
    moment, when = _moment(status, unit)
    parties = header_parties + loop.parties
    place, location = _status_place(status, parties)

    graph = Graph()
    shipment = graph.add("Shipment", shipment_key, pro=pro, shipment_id=shipment_id, scac=scac)
    carrier = graph.add("Carrier", f"SCAC:{scac}" if scac else None, scheme="SCAC", scac=scac)
    graph.relate(shipment, "CARRIED_BY", carrier)
    status_place = graph.add(
        "Place",
        place,
        city=location.get("city"),
        state=location.get("state"),
        country=location.get("country"),
        latitude=location.get("latitude"),
        longitude=location.get("longitude"),
    )
    graph.relate(shipment, "STATUS_AT", status_place, status=code, at=moment.isoformat())
    for party in parties:
        org = graph.party(party)
        graph.relate(shipment, relation_for(party.role), org, role=party.role)
    if status.equipment.get("number"):
        equipment = graph.add("Equipment", status.equipment["number"], **status.equipment)
        graph.relate(shipment, "USES_EQUIPMENT", equipment)

    status_info: dict[str, Any] = {"code": code, **when, "at": moment.isoformat()}
    if code in STATUS_CODES:
        status_info["description"] = STATUS_CODES[code]
    if status.appointment:
        status_info["appointment_status"] = status.appointment
    for name, value in (("reason_code", status.reason), ("appointment_reason_code", status.appointment_reason)):
        if value:
            status_info[name] = value
            if value in REASON_CODES:
                status_info[name.replace("_code", "")] = REASON_CODES[value]
    attributes: dict[str, Any] = {
        "set_type": "214",
        "pro": pro,
        "shipment_id": shipment_id,
        "scac": scac,
        "status": status_info,
        "location": location,
        "references": references + loop.references,
        "parties": [p.as_dict() for p in parties],
        "envelope": envelope_attributes(unit),
    }
    if loop.number:
        attributes["lx"] = loop.number
    if status.equipment:
        attributes["equipment"] = status.equipment
    if loop.weights:
        attributes["weights"] = loop.weights
    if ms3 is not None:
        attributes["interline"] = {
            k: v
            for k, v in (("scac", ms3.el(1)), ("routing_sequence", ms3.el(2)), ("city", ms3.el(3)), ("mode", ms3.el(4)))
            if v
        }
    attributes = {k: v for k, v in attributes.items() if v not in ("", [], {})}

    description = STATUS_CODES.get(code, f"status {code}")
    where = place or (
        f"{location['latitude']}, {location['longitude']}" if "latitude" in location else "unknown location"
    )
    who = f"PRO {pro}" if pro else f"shipment {shipment_id}"
    title = f"{scac_key} {who}: {code} {description} ({where})"
    lines = [
        f"Shipment status {code}: {description}, at {moment:%Y-%m-%d %H:%M} UTC ({status.date} {status.time} "
        f"{status.zone or 'no time zone'}), {where}.",
        f"Carrier SCAC {scac_key}; reference/PRO {pro or '-'}; shipment id {shipment_id or '-'}.",
    ]
    if "reason" in status_info:
        lines.append(f"Reason: {status_info['reason']}.")
    lines += [f"{p.role} {p.describe()}" for p in parties]
    lines += [f"Reference {r['qualifier']} {r['value']}" for r in references + loop.references]
    return Record(
        source=SOURCE,
        kind=KIND,
        id=f"{scac_key}:{shipment_key}:{code or 'NONE'}:{status.date}{status.time}"[:512],
        version=dates.micros(moment),
        occurred_at=moment,
        title=title[:500],
        text="\n".join(lines),
        attributes=attributes,
        entities=graph.entities(),
        relations=graph.relations(),
    )
