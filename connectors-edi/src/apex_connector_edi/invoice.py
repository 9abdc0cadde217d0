"""210 Motor Carrier Freight Details and Invoice → one `edi.freight_invoice` record.

Layout (004010): ST, B3, C3, N9*, G62*, R3*, loop N1 (N2, N3, N4, N9), N7*, loops LX
(L5 description, L0 quantities, L1 charges, L4/L7), L3 totals, SE. Money elements of
type N2 (B3-07, L1-04, L3-05) carry two implied decimals: "5165" is 51.65. The element
positions read here are the same in every release from 003040; before 004010 the B3
dates are YYMMDD and G62-02 is YYMMDD with its century in G62-06 (`releases.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from apex_connector_edi import dates
from apex_connector_edi.codes import (
    CHARGE_CODES,
    DATE_QUALIFIERS,
    PAYMENT_METHODS,
    RATE_QUALIFIERS,
    WEIGHT_UNITS,
)
from apex_connector_edi.common import SOURCE, envelope_attributes, fallback_moment, reference, relation_for
from apex_connector_edi.parties import Graph, Party, read_party
from apex_connector_edi.payload import Seg, SetPayload
from apex_connector_edi.releases import Release
from apex_platform.errors import PayloadError
from apex_platform.models import Record

KIND = "edi.freight_invoice"
#: the set control number breaks ties between invoices of one date; it stays inside the day
_DAY_MICROS = 86_400_000_000


def implied_cents(value: str) -> int | None:
    """An N2 amount in cents: "5165" → 5165; "-150" → -150. A value with an explicit
    decimal point (non-conforming, but sent) is read as written: "51.65" → 5165."""
    value = value.strip()
    if not value:
        return None
    try:
        if "." in value:
            return int((Decimal(value) * 100).to_integral_value())
        return int(Decimal(value))
    except (InvalidOperation, ValueError):
        return None


def money(cents: int) -> str:
    return str(Decimal(cents).scaleb(-2))


def _amount(prefix: str, raw: str) -> dict[str, Any]:
    cents = implied_cents(raw)
    if cents is None:
        return {f"{prefix}_raw": raw} if raw else {}
    return {prefix: money(cents), f"{prefix}_cents": cents}


def _compact(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if v not in ("", None, [], {})}


@dataclass
class _Line:
    number: str = ""
    lading: list[dict[str, Any]] = field(default_factory=list)
    quantities: list[dict[str, Any]] = field(default_factory=list)
    charges: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return _compact(
            {"number": self.number, "lading": self.lading, "quantities": self.quantities, "charges": self.charges}
        )


@dataclass
class _Invoice:
    b3: Seg | None = None
    currency: str = ""
    references: list[dict[str, str]] = field(default_factory=list)
    dates: list[dict[str, str]] = field(default_factory=list)
    route: list[dict[str, str]] = field(default_factory=list)
    parties: list[Party] = field(default_factory=list)
    equipment: list[dict[str, str]] = field(default_factory=list)
    lines: list[_Line] = field(default_factory=list)
    totals: dict[str, Any] = field(default_factory=dict)


def _charge(seg: Seg) -> dict[str, Any]:
    code = seg.el(8)
    return _compact(
        {
            "line": seg.el(1),
            "rate": seg.el(2),  # R: explicit decimal point
            "rate_qualifier": seg.el(3),
            "rate_qualifier_name": RATE_QUALIFIERS.get(seg.el(3), ""),
            **_amount("amount", seg.el(4)),
            **_amount("advances", seg.el(5)),
            **_amount("prepaid", seg.el(6)),
            "code": code,
            "code_name": CHARGE_CODES.get(code, ""),
            "description": seg.el(12),
        }
    )


def _iso(value: str, century: str = "") -> str:
    day = dates.parse_date(value, century)
    return day.isoformat() if day is not None else ""


def _date_notes(release: Release, sent: list[tuple[str, str]]) -> list[str]:
    """Dates whose digits are not the ones their release gives them (YYMMDD before
    004010, CCYYMMDD from it): read anyway, and said."""
    digits = release.date_digits
    if digits is None:
        return []
    return [
        f"{name} {value!r} has {len(value)} digits; release {release.gs08} dates have {digits}"
        for name, value in sent
        if value.isdigit() and len(value) != digits
    ]


def _read(segments: list[Seg], release: Release) -> _Invoice:
    inv = _Invoice()
    line: _Line | None = None
    i = 1
    while i < len(segments):
        seg = segments[i]
        sid = seg.id
        if sid == "N1":
            party, i = read_party(segments, i)
            inv.parties.append(party)
            continue
        if sid == "B3" and inv.b3 is None:
            inv.b3 = seg
        elif sid == "C3" and not inv.currency:
            inv.currency = seg.el(1).upper()
        elif sid == "N9":
            ref = reference(seg.el(1), seg.el(2))
            if ref:
                inv.references.append(ref)
        elif sid == "G62":
            # before 004010: G62-02 YYMMDD and G62-06 its century; from 004010: CCYYMMDD
            century = seg.el(6) if release.full_dates is not True else ""
            inv.dates.append(
                _compact(
                    {
                        "qualifier": seg.el(1),
                        "name": DATE_QUALIFIERS.get(seg.el(1), ""),
                        "date": seg.el(2),
                        "century": century,
                        "date_iso": _iso(seg.el(2), century),
                        "time_qualifier": seg.el(3),
                        "time": seg.el(4),
                        "time_code": seg.el(5),
                    }
                )
            )
        elif sid == "R3":
            inv.route.append(
                _compact({"scac": seg.el(1), "routing_sequence": seg.el(2), "city": seg.el(3), "mode": seg.el(4)})
            )
        elif sid == "N7":
            inv.equipment.append(
                _compact(
                    {
                        "initial": seg.el(1),
                        "number": seg.el(2),
                        "weight": seg.el(3),
                        "weight_qualifier": seg.el(4),
                        "description_code": seg.el(11),
                        "length": seg.el(15),
                        "type": seg.el(22),
                    }
                )
            )
        elif sid == "LX":
            line = _Line(number=seg.el(1))
            inv.lines.append(line)
        elif sid in ("L5", "L0", "L1"):
            if line is None:  # detail before any LX: one implicit line
                line = _Line()
                inv.lines.append(line)
            if sid == "L5":
                line.lading.append(
                    _compact(
                        {
                            "line": seg.el(1),
                            "description": seg.el(2),
                            "commodity_code": seg.el(3),
                            "commodity_code_qualifier": seg.el(4),
                        }
                    )
                )
            elif sid == "L0":
                line.quantities.append(
                    _compact(
                        {
                            "line": seg.el(1),
                            "billed_quantity": seg.el(2),
                            "billed_qualifier": seg.el(3),
                            "weight": seg.el(4),
                            "weight_qualifier": seg.el(5),
                            "volume": seg.el(6),
                            "volume_unit": seg.el(7),
                            "lading_quantity": seg.el(8),
                            "packaging": seg.el(9),
                            "weight_unit": seg.el(11),
                        }
                    )
                )
            else:
                line.charges.append(_charge(seg))
        elif sid == "L3":
            inv.totals = _compact(
                {
                    "weight": seg.el(1),
                    "weight_qualifier": seg.el(2),
                    "rate": seg.el(3),
                    "rate_qualifier": seg.el(4),
                    **_amount("charge", seg.el(5)),
                    **_amount("advances", seg.el(6)),
                    **_amount("prepaid", seg.el(7)),
                    "volume": seg.el(9),
                    "volume_unit": seg.el(10),
                    "lading_quantity": seg.el(11),
                    "weight_unit": seg.el(12),
                }
            )
        i += 1
    return inv


def _version(unit: SetPayload, b3: Seg) -> tuple[datetime, int, dict[str, Any]]:
    """Invoice date (B3-06) at 00:00 UTC, in µs, plus the set control number as a
    tie-breaker (kept below one day). Without a usable B3-06: the group's date."""
    day = dates.parse_date(b3.el(6))
    info: dict[str, Any] = {}
    if day is None:
        moment = fallback_moment(unit)
        info["invoice_date_invalid"] = b3.el(6) or "missing"
    else:
        moment = dates.to_utc(day, None, "UT")[0]
    digits = "".join(c for c in unit.control_number if c.isdigit())
    tie = int(digits[-10:]) % _DAY_MICROS if digits else 0
    return moment, dates.micros(moment) + tie, info


def build(unit: SetPayload) -> list[Record]:
    release = Release.of(unit.group.get("version", ""))
    inv = _read(unit.segments, release)
    b3 = inv.b3
    if b3 is None:
        raise PayloadError("the 210 set has no B3 segment (invoice number, amount, SCAC)")
    invoice_number, shipment_id = b3.el(2), b3.el(3)
    if not invoice_number:
        raise PayloadError("the 210 set's B3 has no invoice number (B3-02)")
    carrier_party = next((p for p in inv.parties if p.role == "CA"), None)
    scac = b3.el(11) or next((r["scac"] for r in inv.route if r.get("scac")), "")
    scac_key = scac or unit.interchange.get("sender", "") or "UNKNOWN"
    moment, version, date_info = _version(unit, b3)
    payment = b3.el(4)
    charges_total = sum(c.get("amount_cents", 0) for line in inv.lines for c in line.charges)

    attributes: dict[str, Any] = _compact(
        {
            "set_type": "210",
            "invoice_number": invoice_number,
            "shipment_id": shipment_id,
            "scac": scac,
            "shipment_qualifier": b3.el(1),
            "payment_method": payment,
            "payment_method_name": PAYMENT_METHODS.get(payment, ""),
            "weight_unit": b3.el(5),
            "weight_unit_name": WEIGHT_UNITS.get(b3.el(5), ""),
            "invoice_date": b3.el(6),
            "invoice_date_iso": _iso(b3.el(6)),
            **_amount("amount_due", b3.el(7)),
            "currency": inv.currency,
            "correction_indicator": b3.el(8),
            "delivery_date": b3.el(9),
            "delivery_date_iso": _iso(b3.el(9)),
            "delivery_date_qualifier": b3.el(10),
            "tariff_service_code": b3.el(13),
            "references": inv.references,
            "dates": inv.dates,
            "route": inv.route,
            "parties": [p.as_dict() for p in inv.parties],
            "equipment": inv.equipment,
            "line_items": [line.as_dict() for line in inv.lines],
            "charges_total": money(charges_total) if any(line.charges for line in inv.lines) else "",
            "totals": inv.totals,
            "envelope": envelope_attributes(unit),
            **date_info,
            "date_notes": _date_notes(
                release,
                [("B3-06", b3.el(6)), ("B3-09", b3.el(9)), *(("G62-02", d.get("date", "")) for d in inv.dates)],
            ),
        }
    )

    graph = Graph()
    invoice = graph.add(
        "Invoice",
        invoice_number,
        amount=attributes.get("amount_due"),
        currency=inv.currency,
        date=b3.el(6),
        scac=scac,
    )
    shipment = graph.add("Shipment", shipment_id, shipment_id=shipment_id, scac=scac)
    carrier = graph.add(
        "Carrier", f"SCAC:{scac}" if scac else None, scheme="SCAC", scac=scac, name=carrier_party and carrier_party.name
    )
    graph.relate(invoice, "BILLS", shipment)
    graph.relate(invoice, "ISSUED_BY", carrier)
    graph.relate(shipment, "CARRIED_BY", carrier)
    for party in inv.parties:
        org = graph.party(party)
        if party.role == "BT" or shipment is None:
            graph.relate(invoice, relation_for(party.role), org, role=party.role)
        else:
            graph.relate(shipment, relation_for(party.role), org, role=party.role)
    for equipment in inv.equipment:
        key = f"{equipment.get('initial', '')}{equipment.get('number', '')}"
        graph.relate(shipment or invoice, "USES_EQUIPMENT", graph.add("Equipment", key, **equipment))

    amount = attributes.get("amount_due", "?")
    currency = inv.currency or "(no C3 currency)"
    title = f"{scac_key} freight invoice {invoice_number}: {amount} {currency}"
    if shipment_id:
        title += f" for shipment {shipment_id}"
    lines = [
        f"Freight invoice {invoice_number} from carrier SCAC {scac_key}, dated {b3.el(6) or '-'}: "
        f"amount due {amount} {currency}.",
        f"Shipment id {shipment_id or '-'}; payment method {payment or '-'} {PAYMENT_METHODS.get(payment, '')}".rstrip()
        + ".",
    ]
    lines += [f"{p.role} {p.describe()}" for p in inv.parties]
    for line in inv.lines:
        for charge in line.charges:
            label = charge.get("code_name") or charge.get("code") or "charge"
            lines.append(f"Charge {label}: {charge.get('amount', charge.get('amount_raw', '?'))} {inv.currency}")
    lines += [f"Reference {r['qualifier']} {r['value']}" for r in inv.references]
    return [
        Record(
            source=SOURCE,
            kind=KIND,
            id=f"{scac_key}:{invoice_number}"[:512],
            version=version,
            occurred_at=moment,
            title=title[:500],
            text="\n".join(lines),
            attributes=attributes,
            entities=graph.entities(),
            relations=graph.relations(),
        )
    ]
