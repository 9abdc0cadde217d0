"""214 Transportation Carrier Shipment Status → one `edi.shipment_status` record per status.

Layout (004010): ST, B10, L11*, loop N1 (N2, N3, N4, G61), MS3; then loops LX, each with
AT7 (+ MS1 location, MS2 equipment) statuses, L11 references, AT8 weights, N1 parties.
Before 003070 the same places hold N9 references, R3 interline carriers and Q5 statuses
(date, time, time code, city, state, equipment in one segment); 003070's AT7 has a
century element before its time. Each set is read with its group's release (GS08, see
`releases.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time
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
from apex_connector_edi.releases import AT7_003070, AT7_004010, At7Layout, Release
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
    #: the century element of a YYMMDD date (AT7-06 in 003070), as sent
    century: str = ""
    #: which segment and layout it was read with: "AT7 003070", "AT7 004010", "Q5"
    layout: str = "AT7 004010"
    #: why the layout is not the release's own (the data did not fit it)
    layout_note: str = ""
    location: dict[str, Any] = field(default_factory=dict)
    location_source: str = "MS1"
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


def _location(ms1: Seg, release: Release) -> dict[str, Any]:
    """MS1: city, state, country; longitude/latitude (MS1-04/05) signed by MS1-06 (E/W)
    and MS1-07 (N/S). Without those (003070 has no such elements; later releases make
    them optional) the hemisphere is not known: the codes are kept as sent, unsigned,
    and no coordinates are made up."""
    out: dict[str, Any] = {}
    for name, index in (("city", 1), ("state", 2), ("country", 3), ("postal_code", 8)):
        if ms1.el(index):
            out[name] = " ".join(ms1.el(index).split())
    lon_code, lat_code = ms1.el(4), ms1.el(5)
    east_west, north_south = ms1.el(6).upper(), ms1.el(7).upper()
    if not (lon_code or lat_code):
        return out
    longitude = _coordinate(lon_code, east_west, negative="W")
    latitude = _coordinate(lat_code, north_south, negative="S")
    readable = longitude is not None and latitude is not None and abs(longitude) <= 180 and abs(latitude) <= 90
    if readable and east_west in ("E", "W") and north_south in ("N", "S"):
        out["longitude"], out["latitude"] = longitude, latitude
        return out
    out["longitude_code"], out["latitude_code"] = lon_code, lat_code
    if not readable:
        out["coordinates_note"] = "MS1-04/05 are not [D]DDMMSS longitude/latitude codes"
    elif release.ms1_directions is False:
        out["coordinates_note"] = (
            f"release {release.gs08} has no MS1-06/07 (E/W, N/S): the hemisphere is not known, no coordinates"
        )
    else:
        out["coordinates_note"] = "MS1-06/07 (E/W, N/S) not sent: the hemisphere is not known, no coordinates"
    return out


def _at7_fits(seg: Seg, layout: At7Layout) -> bool:
    """Whether an AT7's date (and century, time) elements have the shapes `layout` gives them."""
    day = seg.el(layout.date)
    if not (day.isdigit() and len(day) == layout.date_digits):
        return False
    if layout.century is not None:
        century = seg.el(layout.century)
        if century and not (len(century) == 2 and century.isdigit()):
            return False
    at = seg.el(layout.time)
    return not at or dates.is_time(at)


def _read_at7(seg: Seg, release: Release) -> _Status:
    """An AT7 with its release's layout; if its data does not fit that layout but fits
    the other one, with the other one, saying so."""
    expected = release.at7
    layouts = [expected] if expected is not None else []
    layouts += [layout for layout in (AT7_004010, AT7_003070) if layout is not expected]
    chosen = next((layout for layout in layouts if _at7_fits(seg, layout)), None)
    note = ""
    if chosen is None:  # fits none: the release's layout (or the one its length suggests); bad values are flagged
        chosen = expected or (AT7_003070 if len(seg.el(5)) == 6 else AT7_004010)
        note = f"AT7 fits neither the 003070 nor the 004010 layout; read with the {chosen.name} layout"
    elif expected is not None and chosen is not expected:
        note = (
            f"AT7 read with the {chosen.name} layout: its date and time do not fit the {expected.name} "
            f"layout of GS08 {release.gs08}"
        )
    elif expected is None and release.known:
        note = f"release {release.gs08} defines no AT7; read with the {chosen.name} layout its data fits"
    return _Status(
        code=seg.el(1),
        reason=seg.el(2),
        appointment=seg.el(3),
        appointment_reason=seg.el(4),
        date=seg.el(chosen.date),
        century=seg.el(chosen.century) if chosen.century is not None else "",
        time=seg.el(chosen.time),
        zone=seg.el(chosen.zone),
        layout=f"AT7 {chosen.name}",
        layout_note=note,
    )


def _read_q5(seg: Seg, release: Release) -> _Status:
    """Q5 Status Details, the 214's status segment before 003070: 01 status code, 02 date,
    03 time, 04 time code, 05 status reason (table 641, 3 characters), 06-08 city, state,
    country, 09-10 equipment initial and number."""
    day = seg.el(2)
    note = ""
    if release.date_digits is not None and day.isdigit() and len(day) != release.date_digits:
        note = f"Q5-02 has {len(day)} digits; release {release.gs08} dates have {release.date_digits}"
    location = {k: " ".join(seg.el(i).split()) for k, i in (("city", 6), ("state", 7), ("country", 8)) if seg.el(i)}
    equipment = {k: v for k, v in (("initial", seg.el(9)), ("number", seg.el(10))) if v}
    return _Status(
        code=seg.el(1),
        reason=seg.el(5),
        appointment="",
        appointment_reason="",
        date=day,
        time=seg.el(3),
        zone=seg.el(4),
        layout="Q5",
        layout_note=note,
        location=location,
        location_source="Q5",
        equipment=equipment,
    )


def _read(
    segments: list[Seg], release: Release
) -> tuple[Seg, list[dict[str, str]], list[Party], Seg | None, list[_Loop]]:
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
        elif sid in ("L11", "N9"):  # L11: 01 value, 02 qualifier; N9 (before 003070): 01 qualifier, 02 value
            ref = reference(seg.el(2), seg.el(1)) if sid == "L11" else reference(seg.el(1), seg.el(2))
            if ref:
                (current.references if current else references).append(ref)
        elif sid in ("MS3", "R3") and current is None:  # R3 held the interline carrier before 003070
            if ms3 is None or (ms3.id == "R3" and sid == "MS3"):
                ms3 = seg
        elif sid == "LX":
            current = _Loop(number=seg.el(1))
            loops.append(current)
            last = None
        elif sid in ("AT7", "Q5"):
            if current is None:  # a status outside an LX loop: read it as one
                current = _Loop()
                loops.append(current)
            last = _read_at7(seg, release) if sid == "AT7" else _read_q5(seg, release)
            current.statuses.append(last)
        elif sid == "MS1" and last is not None:
            last.location = _location(seg, release)
            last.location_source = "MS1"
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
    """When the status happened, and how it was read. With a known offset: the UTC
    instant. Without one (LT, no time code, an unknown code): the local wall clock, which
    the record says is local (`utc_offset: "unknown"`); the instant returned is that wall
    clock read as UTC, for the version (ordering) only."""
    day = dates.parse_date(status.date, status.century)
    at = dates.parse_time(status.time)
    info: dict[str, Any] = {"date": status.date, "time": status.time, "time_zone": status.zone}
    if status.century:
        info["century"] = status.century
    info["layout"] = status.layout
    if status.layout_note:
        info["layout_note"] = status.layout_note
    if status.time and at is None:
        info["time_invalid"] = True
    if day is None:
        info["date_invalid"] = True
        moment = fallback_moment(unit)
        info["at"] = moment.isoformat()
        return moment, info
    if len(status.date.strip()) == 6 and not status.century:
        info["century_assumed"] = f"{day.year // 100:02d} (YYMMDD: 00-49 is 20xx, 50-99 is 19xx)"
    local = datetime.combine(day, at or time(0, 0))
    moment, unknown = dates.to_utc(day, at, status.zone)
    alias = dates.ALIASES.get(status.zone.strip().upper())
    if alias is not None:
        info["time_zone_note"] = f"{status.zone!r} is not an X12 time code; read as {alias}"
    info["local_time"] = local.isoformat()
    if unknown:
        info["utc_offset"] = "unknown"
        info["at"] = local.isoformat()
    else:
        offset = moment.astimezone(dates.zone(status.zone)).utcoffset()
        info["utc_offset"] = _offset_text(offset.total_seconds() if offset is not None else 0)
        info["at"] = moment.isoformat()
    return moment, info


def _offset_text(seconds: float) -> str:
    sign = "-" if seconds < 0 else "+"
    minutes = int(abs(seconds)) // 60
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def build(unit: SetPayload) -> list[Record]:
    release = Release.of(unit.group.get("version", ""))
    b10, references, parties, ms3, loops = _read(unit.segments, release)
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


def _id_moment(status: _Status) -> str:
    """The status's date (as CCYYMMDD, whatever the release sent) and time as sent: the
    same event has the same id when a carrier moves from 003070 to 004010."""
    day = dates.parse_date(status.date, status.century)
    return f"{day:%Y%m%d}{status.time}" if day is not None else f"{status.date}{status.time}"


def _status_place(status: _Status, parties: list[Party]) -> tuple[str | None, dict[str, Any]]:
    """The place of a status: MS1's city; else, for pick-up and delivery statuses, the
    ship-from / ship-to party's city (marked as inferred)."""
    location = dict(status.location)
    key = place_key(location.get("city", ""), location.get("state", ""), location.get("country", ""))
    if key:
        location["source"] = status.location_source
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
    graph.relate(shipment, "STATUS_AT", status_place, status=code, at=when["at"])
    for party in parties:
        org = graph.party(party)
        graph.relate(shipment, relation_for(party.role), org, role=party.role)
    if status.equipment.get("number"):
        equipment = graph.add("Equipment", status.equipment["number"], **status.equipment)
        graph.relate(shipment, "USES_EQUIPMENT", equipment)

    status_info: dict[str, Any] = {"code": code, **when}
    if code in STATUS_CODES:
        status_info["description"] = STATUS_CODES[code]
    if status.appointment:
        status_info["appointment_status"] = status.appointment
    for name, value in (("reason_code", status.reason), ("appointment_reason_code", status.appointment_reason)):
        if value:
            status_info[name] = value
            # named from table 1651 only where the element is 1651: not Q5-05 (table 641) nor
            # 003070's AT7-04 (table 1653, the appointment reasons)
            table_1651 = status.layout == "AT7 004010" or (status.layout == "AT7 003070" and name == "reason_code")
            if value in REASON_CODES and table_1651:
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
    if when.get("utc_offset") == "unknown":
        at_text = f"{moment:%Y-%m-%d %H:%M} local time (UTC offset not sent)"
    else:
        at_text = f"{moment:%Y-%m-%d %H:%M} UTC"
    sent = " ".join(v for v in (status.date, status.century, status.time, status.zone or "no time code") if v)
    lines = [
        f"Shipment status {code}: {description}, at {at_text} ({status.layout}: {sent}), {where}.",
        f"Carrier SCAC {scac_key}; reference/PRO {pro or '-'}; shipment id {shipment_id or '-'}.",
    ]
    if "reason" in status_info:
        lines.append(f"Reason: {status_info['reason']}.")
    lines += [f"{p.role} {p.describe()}" for p in parties]
    lines += [f"Reference {r['qualifier']} {r['value']}" for r in references + loop.references]
    return Record(
        source=SOURCE,
        kind=KIND,
        id=f"{scac_key}:{shipment_key}:{code or 'NONE'}:{_id_moment(status)}"[:512],
        version=dates.micros(moment),
        occurred_at=moment,
        title=title[:500],
        text="\n".join(lines),
        attributes=attributes,
        entities=graph.entities(),
        relations=graph.relations(),
    )
