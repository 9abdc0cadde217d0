"""Turvo entities to Apex records: a pure function of the fetched payload.

The payload `fetch` produces is ``{"entity_type", "entity_id", "event_id", "event_time_us",
"webhook": <the delivery as received>, "entity": <the object from the API>}`` (or
``"not_found": true`` and ``"deleted_by"`` instead of ``entity`` when the API answered 404
and something says the entity was deleted; ``"deleted_by"`` beside ``entity`` when the
entity itself says it; ``"unresolved": <what was tried>`` for a 404 nothing explains).

Versions: the entity's own last-update time (µs) when it has one, else the webhook's event
time, else the time the delivery was received. The fetched object is the entity *now*,
not as it was at the event, so its update time is the honest version of that content: two
webhooks that fetch the same state produce the same version and an identical record.

The webhook's event time is the sender's word, not Turvo's data: one later than the
receipt by more than `max_skew_us` (APEX_TURVO_EVENT_TIME_MAX_SKEW_SECONDS, 5 minutes) is
ignored (kept as `event_time_ignored` in the webhook summary), or a year-9999 time would
outrank every real update forever. A 404 tombstone has no version from Turvo at all: it is
the (bounded) event time, and never earlier than the receipt (the 404 was seen after it).

Turvo shapes vary by tenant and API version: every field is optional and a field of the
wrong type is ignored, never an error.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from apex_connector_turvo.times import from_us, iso, to_us
from apex_platform.models import Entity, Record, Relation

SOURCE = "turvo"
KIND_SHIPMENT = "turvo.shipment"
KIND_STOP = "turvo.stop"
KIND_STATUS = "turvo.status_change"
KIND_ORDER = "turvo.order"
KIND_CARRIER = "turvo.carrier"
KIND_CUSTOMER = "turvo.customer"
KIND_LOCATION = "turvo.location"
KIND_WEBHOOK = "turvo.webhook"
KIND_UNRESOLVED = "turvo.unresolved"

_MAX_ITEMS = 200
#: how far after its receipt a webhook's event time may be (APEX_TURVO_EVENT_TIME_MAX_SKEW_SECONDS)
DEFAULT_SKEW_US = 300 * 1_000_000
_MAX_STATUS_HISTORY = 100
_MAX_KEY = 512


def _s(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
    return None


def _d(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _l(value: Any) -> list[Any]:
    return value[:_MAX_ITEMS] if isinstance(value, list) else []


def _kv(value: Any) -> dict[str, str | None] | None:
    """Turvo's enums: ``{"key": "2105", "value": "En route"}`` (or a bare string)."""
    if isinstance(value, dict):
        key, val = _s(value.get("key")), _s(value.get("value"))
        return {"key": key, "value": val} if key or val else None
    text = _s(value)
    return {"key": None, "value": text} if text else None


def _label(value: Any) -> str | None:
    kv = _kv(value)
    return (kv["value"] or kv["key"]) if kv else None


def _live(items: Iterable[Any]) -> list[dict[str, Any]]:
    """Objects of a list that Turvo has not soft-deleted."""
    return [i for i in items if isinstance(i, dict) and i.get("deleted") is not True]


def _key(*parts: str) -> str:
    return ":".join(parts)[:_MAX_KEY]


def updated_us(entity: dict[str, Any], paths: list[str]) -> int | None:
    for path in paths:
        value: Any = entity
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        us = to_us(value)
        if us is not None:
            return us
    return None


class Context:
    """The parts of the payload every record of one event shares."""

    def __init__(
        self, payload: dict[str, Any], received_us: int, updated_paths: list[str], max_skew_us: int = DEFAULT_SKEW_US
    ) -> None:
        self.payload = payload
        self.entity_type = str(payload.get("entity_type") or "unknown")
        self.entity_id = str(payload.get("entity_id") or "")
        self.event_id = str(payload.get("event_id") or "")
        self.webhook = _d(payload.get("webhook"))
        event_us = payload.get("event_time_us")
        claimed = event_us if isinstance(event_us, int) and not isinstance(event_us, bool) and event_us >= 0 else None
        # later than the receipt by more than the skew: the sender's clock or a forgery, never a version
        plausible = claimed is not None and claimed <= received_us + max_skew_us
        self.event_us: int | None = claimed if plausible else None
        self.ignored_event_us: int | None = None if plausible else claimed
        self.received_us = received_us
        self.entity = _d(payload.get("entity"))
        self.entity_updated_us = updated_us(self.entity, updated_paths) if self.entity else None

    @property
    def version(self) -> int:
        for candidate in (self.entity_updated_us, self.event_us, self.received_us):
            if candidate is not None:
                return candidate
        return self.received_us

    @property
    def version_source(self) -> str:
        if self.entity_updated_us is not None:
            return "entity.updated"
        return "webhook.event_time" if self.event_us is not None else "received_at"

    @property
    def occurred_at(self) -> datetime:
        return from_us(self.version)

    def webhook_summary(self) -> dict[str, Any]:
        """Which delivery and time the version came from. When it is the entity's own
        update time, nothing of the delivery is kept (the lineage names it): every delivery
        that fetches the same state (a webhook, its retry, a reconciled twin) then gives
        identical records, which the saga writes once."""
        if self.entity_updated_us is not None:
            return {"version_source": self.version_source}
        summary = {
            "event_id": self.event_id,
            "event_name": _s(self.webhook.get("eventName")),
            "event_time": iso(self.event_us),
            "version_source": self.version_source,
        }
        if self.ignored_event_us is not None:
            summary["event_time_ignored"] = iso(self.ignored_event_us)
        return summary


# -- places -----------------------------------------------------------------------------


def _address(value: Any) -> dict[str, str]:
    a = _d(value)
    out = {
        k: v
        for k, v in (
            ("line1", _s(a.get("line1"))),
            ("city", _s(a.get("city"))),
            ("state", _s(_label(a.get("state")) if isinstance(a.get("state"), dict) else a.get("state"))),
            ("zip", _s(a.get("zip") or a.get("postalCode"))),
            ("country", _s(a.get("countryCode") or a.get("country"))),
        )
        if v
    }
    for coord in ("lat", "lon", "lng"):
        if isinstance(a.get(coord), int | float) and not isinstance(a.get(coord), bool):
            out[coord] = a[coord]
    return out


def place_entity(location: Any, address: Any, name: Any = None) -> Entity | None:
    """A Place keyed by the Turvo location id, else by its address, else by its name."""
    loc = _d(location)
    addr = _address(address or loc.get("address"))
    label = _s(loc.get("name")) or _s(name)
    loc_id = _s(loc.get("id"))
    if loc_id:
        key = loc_id
    elif addr.get("city"):
        key = "|".join(str(addr.get(k, "")).lower() for k in ("line1", "city", "state", "zip", "country"))
    elif label:
        key = label.lower()
    else:
        return None
    props: dict[str, Any] = {"name": label} if label else {}
    props.update(addr)
    return Entity(type="Place", key=key[:_MAX_KEY], properties=props)


# -- shipments --------------------------------------------------------------------------


def _parties(orders: Any, role: str) -> list[dict[str, str | None]]:
    out: dict[str, dict[str, str | None]] = {}
    for order in _live(_l(orders)):
        party = _d(order.get(role))
        pid = _s(party.get("id"))
        if pid and pid not in out:
            out[pid] = {"id": pid, "name": _s(party.get("name")), "order_id": _s(order.get("id"))}
    return list(out.values())


def _weight(shipment: dict[str, Any]) -> dict[str, Any] | None:
    total = 0.0
    unit: str | None = None
    found = False
    for order in _live(_l(shipment.get("customerOrder"))):
        for item in _live(_l(order.get("items"))):
            w = (
                item.get("weight")
                if not isinstance(item.get("grossWeight"), dict)
                else item["grossWeight"].get("weight")
            )
            if isinstance(w, int | float) and not isinstance(w, bool):
                total += float(w)
                found = True
                unit = unit or _label(item.get("weightUnits") or _d(item.get("grossWeight")).get("weightUnit"))
    if not found:
        for eq in _live(_l(shipment.get("equipment"))):
            w = eq.get("weight")
            if isinstance(w, int | float) and not isinstance(w, bool):
                total += float(w)
                found = True
                unit = unit or _label(eq.get("weightUnits"))
    return {"value": total, "unit": unit or "lb"} if found else None


def _stop(shipment_id: str, raw: dict[str, Any], index: int) -> dict[str, Any]:
    seq = raw.get("sequence") if isinstance(raw.get("sequence"), int) else index
    stop_id = _s(raw.get("id"))
    attrs = _d(raw.get("attributes"))
    appointment = _d(raw.get("appointment"))
    location = _d(raw.get("location"))
    return {
        "key": _key(shipment_id, stop_id or f"seq{seq}"),
        "id": stop_id,
        "sequence": seq,
        "type": _label(raw.get("stopType")),
        "name": _s(raw.get("name")) or _s(location.get("name")),
        "location_id": _s(location.get("id")),
        "address": _address(raw.get("address") or location.get("address")),
        "appointment": iso(to_us(appointment.get("date") or appointment.get("start"))),
        "appointment_timezone": _s(appointment.get("timeZone") or appointment.get("timezone")),
        "arrived": iso(to_us(_d(attrs.get("arrival")).get("date") or raw.get("arrival"))),
        "departed": iso(to_us(_d(attrs.get("departed")).get("date") or raw.get("departed"))),
        "po_numbers": [p for p in (_s(x) for x in _l(raw.get("poNumbers"))) if p],
        "_place": place_entity(location, raw.get("address") or location.get("address"), raw.get("name")),
    }


def shipment_records(ctx: Context) -> list[Record]:
    s = ctx.entity
    sid = _s(s.get("id")) or ctx.entity_id
    custom_id = _s(s.get("customId"))
    status = _d(s.get("status"))
    code = _kv(status.get("code")) if status else _kv(s.get("status"))
    status_us = to_us(status.get("lastUpdatedOn") or status.get("timestamp") or status.get("date"))
    lane = _d(s.get("lane"))
    origin, destination = _s(lane.get("start")), _s(lane.get("end"))
    stops = [_stop(sid, raw, i) for i, raw in enumerate(_live(_l(s.get("globalRoute") or s.get("route"))))]
    stops.sort(key=lambda st: st["sequence"])
    carriers = _parties(s.get("carrierOrder"), "carrier")
    customers = _parties(s.get("customerOrder"), "customer")
    equipment = [
        {"type": _label(e.get("type")), "size": _label(e.get("size")), "weight": e.get("weight")}
        for e in _live(_l(s.get("equipment")))
    ]
    mode = _label(_d(s.get("transportation")).get("mode"))
    weight = _weight(s)
    start_us, end_us = to_us(s.get("startDate")), to_us(s.get("endDate"))

    shipment = Entity(
        type="Shipment",
        key=sid,
        properties={k: v for k, v in (("custom_id", custom_id), ("status", code and code["value"])) if v},
    )
    entities: list[Entity] = [shipment]
    relations: list[Relation] = []
    for st in stops:
        stop_entity = Entity(
            type="Stop", key=st["key"], properties={k: st[k] for k in ("type", "name", "sequence") if st[k] is not None}
        )
        entities.append(stop_entity)
        relations.append(
            Relation(src=shipment.ref, type="HAS_STOP", dst=stop_entity.ref, properties={"sequence": st["sequence"]})
        )
        if st["_place"] is not None:
            entities.append(st["_place"])
            relations.append(Relation(src=stop_entity.ref, type="AT", dst=st["_place"].ref))
    for c in carriers:
        ent = Entity(type="Carrier", key=str(c["id"]), properties={"name": c["name"]} if c["name"] else {})
        entities.append(ent)
        relations.append(Relation(src=shipment.ref, type="CARRIED_BY", dst=ent.ref))
    for c in customers:
        ent = Entity(type="Customer", key=str(c["id"]), properties={"name": c["name"]} if c["name"] else {})
        entities.append(ent)
        relations.append(Relation(src=shipment.ref, type="FOR_CUSTOMER", dst=ent.ref))

    name = custom_id or sid
    status_text = code and (code["value"] or code["key"])
    lane_text = f"{origin or '?'} → {destination or '?'}" if origin or destination else ""
    title = " ".join(p for p in (f"Shipment {name}", lane_text, f"({status_text})" if status_text else "") if p)
    lines = [title]
    if status.get("description") or status.get("notes"):
        lines.append(f"Status: {_s(status.get('description')) or _s(status.get('notes'))}")
    for st in stops:
        where = st["name"] or ", ".join(str(v) for k, v in st["address"].items() if k in ("city", "state"))
        appt = f" appointment {st['appointment']}" if st["appointment"] else ""
        lines.append(f"Stop {st['sequence']}: {st['type'] or 'stop'} at {where}{appt}")
    if carriers:
        lines.append("Carrier: " + ", ".join(str(c["name"] or c["id"]) for c in carriers))
    if customers:
        lines.append("Customer: " + ", ".join(str(c["name"] or c["id"]) for c in customers))

    public_stops = [{k: v for k, v in st.items() if k != "_place"} for st in stops]
    records = [
        Record(
            source=SOURCE,
            kind=KIND_SHIPMENT,
            id=_key("shipment", sid),
            version=ctx.version,
            occurred_at=ctx.occurred_at,
            title=title[:500],
            text="\n".join(lines),
            attributes={
                "shipment_id": sid,
                "custom_id": custom_id,
                "status": {
                    "code": code and code["key"],
                    "description": code and code["value"],
                    "notes": _s(status.get("notes")) or _s(status.get("description")),
                    "at": iso(status_us),
                },
                "lane": {"origin": origin, "destination": destination},
                "mode": mode,
                "equipment": equipment,
                "weight": weight,
                "start_date": iso(start_us),
                "end_date": iso(end_us),
                "created": iso(to_us(s.get("created") or s.get("createdDate"))),
                "updated": iso(ctx.entity_updated_us),
                "stops": public_stops,
                "carriers": carriers,
                "customers": customers,
                "webhook": ctx.webhook_summary(),
            },
            entities=tuple(_unique(entities)),
            relations=tuple(relations),
        )
    ]
    records += _stop_records(ctx, shipment, public_stops, stops)
    records += _status_records(ctx, shipment, s, code, status_us)
    return records


def _stop_records(
    ctx: Context, shipment: Entity, public: list[dict[str, Any]], stops: list[dict[str, Any]]
) -> list[Record]:
    out = []
    for pub, st in zip(public, stops, strict=True):
        stop_entity = Entity(type="Stop", key=st["key"], properties={"type": st["type"]} if st["type"] else {})
        entities = [stop_entity, shipment]
        relations = [Relation(src=shipment.ref, type="HAS_STOP", dst=stop_entity.ref)]
        if st["_place"] is not None:
            entities.append(st["_place"])
            relations.append(Relation(src=stop_entity.ref, type="AT", dst=st["_place"].ref))
        where = st["name"] or st["address"].get("city") or "unknown place"
        title = f"{st['type'] or 'Stop'} at {where} for shipment {shipment.properties.get('custom_id', shipment.key)}"
        text_parts = [title]
        for label, field in (("appointment", "appointment"), ("arrived", "arrived"), ("departed", "departed")):
            if st[field]:
                text_parts.append(f"{label}: {st[field]}")
        out.append(
            Record(
                source=SOURCE,
                kind=KIND_STOP,
                id=_key("shipment", shipment.key, "stop", st["id"] or f"seq{st['sequence']}"),
                version=ctx.version,
                occurred_at=ctx.occurred_at,
                title=title[:500],
                text="\n".join(text_parts),
                attributes={**pub, "shipment_id": shipment.key},
                entities=tuple(entities),
                relations=tuple(relations),
            )
        )
    return out


def _status_records(
    ctx: Context, shipment: Entity, s: dict[str, Any], code: dict[str, str | None] | None, status_us: int | None
) -> list[Record]:
    """One record per status the shipment went through (history and current): a stable id
    per (status, time), so redeliveries and re-fetches write nothing new."""
    seen: dict[tuple[str, int], dict[str, Any]] = {}
    history = [h for h in _l(s.get("statusHistory")) if isinstance(h, dict)][-_MAX_STATUS_HISTORY:]
    entries = [
        (_kv(h.get("code")), to_us(h.get("lastUpdatedOn") or h.get("timestamp") or h.get("date")), h) for h in history
    ]
    if code is not None:
        entries.append((code, status_us, _d(s.get("status"))))
    for kv, at_us, raw in entries:
        if kv is None:
            continue
        status_key = kv["key"] or (kv["value"] or "unknown").lower().replace(" ", "_")
        when = at_us if at_us is not None else ctx.version
        seen[(status_key, when)] = {"kv": kv, "at": when, "notes": _s(raw.get("notes")) or _s(raw.get("description"))}
    out = []
    for (status_key, when), info in sorted(seen.items(), key=lambda item: item[0][1]):
        status = Entity(type="ShipmentStatus", key=status_key, properties={"value": info["kv"]["value"]})
        label = info["kv"]["value"] or status_key
        out.append(
            Record(
                source=SOURCE,
                kind=KIND_STATUS,
                id=_key("shipment", shipment.key, "status", status_key, str(when)),
                version=when,
                occurred_at=from_us(when),
                title=f"Shipment {shipment.properties.get('custom_id', shipment.key)} status: {label}"[:500],
                text=info["notes"] or "",
                attributes={
                    "shipment_id": shipment.key,
                    "code": info["kv"]["key"],
                    "description": info["kv"]["value"],
                    "at": iso(when),
                    "notes": info["notes"],
                },
                entities=(shipment, status),
                relations=(
                    Relation(src=shipment.ref, type="STATUS_CHANGED", dst=status.ref, properties={"at": iso(when)}),
                ),
            )
        )
    return out


# -- orders, carriers, customers, locations -----------------------------------------------


def order_records(ctx: Context) -> list[Record]:
    o = ctx.entity
    oid = _s(o.get("id")) or ctx.entity_id
    number = _s(o.get("customId")) or _s(o.get("orderNumber")) or _s(o.get("number"))
    status = _label(_d(o.get("status")).get("code") or o.get("status"))
    order = Entity(type="Order", key=oid, properties={k: v for k, v in (("number", number), ("status", status)) if v})
    entities: list[Entity] = [order]
    relations: list[Relation] = []
    customer = _d(o.get("customer"))
    if _s(customer.get("id")):
        ent = Entity(type="Customer", key=str(_s(customer.get("id"))), properties=_named(customer))
        entities.append(ent)
        relations.append(Relation(src=order.ref, type="FOR_CUSTOMER", dst=ent.ref))
    shipment_ids = [_s(x.get("id")) if isinstance(x, dict) else _s(x) for x in _l(o.get("shipments"))]
    shipment_ids += [_s(x) for x in _l(o.get("shipmentIds"))]
    if isinstance(o.get("shipment"), dict):
        shipment_ids.append(_s(o["shipment"].get("id")))
    for ship_id in dict.fromkeys(i for i in shipment_ids if i):
        ent = Entity(type="Shipment", key=ship_id)
        entities.append(ent)
        relations.append(Relation(src=order.ref, type="FULFILLED_BY", dst=ent.ref))
    for role in ("pickupLocation", "deliveryLocation"):
        place = place_entity(o.get(role), None)
        if place is not None:
            entities.append(place)
            relations.append(
                Relation(src=order.ref, type="PICKUP_AT" if role == "pickupLocation" else "DELIVER_TO", dst=place.ref)
            )
    title = f"Order {number or oid}" + (f" ({status})" if status else "")
    return [
        Record(
            source=SOURCE,
            kind=KIND_ORDER,
            id=_key("order", oid),
            version=ctx.version,
            occurred_at=ctx.occurred_at,
            title=title,
            text=title,
            attributes={
                "order_id": oid,
                "number": number,
                "status": status,
                "customer": _named(customer) | ({"id": _s(customer.get("id"))} if _s(customer.get("id")) else {}),
                "shipment_ids": [e.key for e in entities if e.type == "Shipment"],
                "items": _json_safe(_l(o.get("items"))),
                "updated": iso(ctx.entity_updated_us),
                "webhook": ctx.webhook_summary(),
            },
            entities=tuple(_unique(entities)),
            relations=tuple(relations),
        )
    ]


def carrier_records(ctx: Context) -> list[Record]:
    c = ctx.entity
    cid = _s(c.get("id")) or ctx.entity_id
    name = _s(c.get("name"))
    mc = _s(c.get("mcNumber") or c.get("mc"))
    dot = _s(c.get("dotNumber") or c.get("dot"))
    scac = _s(c.get("scac"))
    status = _label(_d(c.get("status")).get("code") or c.get("status"))
    props = {
        k: v
        for k, v in (("name", name), ("mc_number", mc), ("dot_number", dot), ("scac", scac), ("status", status))
        if v
    }
    carrier = Entity(type="Carrier", key=cid, properties=props)
    title = f"Carrier {name or cid}" + "".join(f" {label} {v}" for label, v in (("MC", mc), ("DOT", dot)) if v)
    return [
        Record(
            source=SOURCE,
            kind=KIND_CARRIER,
            id=_key("carrier", cid),
            version=ctx.version,
            occurred_at=ctx.occurred_at,
            title=title,
            text=title,
            attributes={
                "carrier_id": cid,
                **props,
                "address": _address(c.get("address")),
                "phone": _s(c.get("phone")),
                "email": _s(c.get("email")),
                "updated": iso(ctx.entity_updated_us),
                "webhook": ctx.webhook_summary(),
            },
            entities=(carrier,),
        )
    ]


def customer_records(ctx: Context) -> list[Record]:
    c = ctx.entity
    cid = _s(c.get("id")) or ctx.entity_id
    name = _s(c.get("name"))
    status = _label(_d(c.get("status")).get("code") or c.get("status"))
    customer = Entity(type="Customer", key=cid, properties={k: v for k, v in (("name", name), ("status", status)) if v})
    entities = [customer]
    relations = []
    parent = _d(c.get("parentAccount"))
    if _s(parent.get("id")):
        ent = Entity(type="Customer", key=str(_s(parent.get("id"))), properties=_named(parent))
        entities.append(ent)
        relations.append(Relation(src=customer.ref, type="CHILD_OF", dst=ent.ref))
    title = f"Customer {name or cid}" + (f" ({status})" if status else "")
    return [
        Record(
            source=SOURCE,
            kind=KIND_CUSTOMER,
            id=_key("customer", cid),
            version=ctx.version,
            occurred_at=ctx.occurred_at,
            title=title,
            text=title,
            attributes={
                "customer_id": cid,
                "name": name,
                "status": status,
                "address": _address(c.get("address")),
                "owner": _json_safe(c.get("owner")),
                "updated": iso(ctx.entity_updated_us),
                "webhook": ctx.webhook_summary(),
            },
            entities=tuple(entities),
            relations=tuple(relations),
        )
    ]


def location_records(ctx: Context) -> list[Record]:
    loc = ctx.entity
    lid = _s(loc.get("id")) or ctx.entity_id
    place = place_entity({**loc, "id": lid}, loc.get("address"))
    assert place is not None  # it has an id
    title = f"Location {place.properties.get('name', lid)}"
    return [
        Record(
            source=SOURCE,
            kind=KIND_LOCATION,
            id=_key("location", lid),
            version=ctx.version,
            occurred_at=ctx.occurred_at,
            title=title,
            text=title,
            attributes={"location_id": lid, **place.properties, "webhook": ctx.webhook_summary()},
            entities=(place,),
        )
    ]


def webhook_record(ctx: Context, reason: str) -> Record:
    """An event whose entity cannot be fetched or has no parser: kept as received, never dropped."""
    return Record(
        source=SOURCE,
        kind=KIND_WEBHOOK,
        id=_key("webhook", ctx.event_id or f"{ctx.entity_type}-{ctx.entity_id}"),
        version=ctx.event_us if ctx.event_us is not None else ctx.received_us,
        occurred_at=from_us(ctx.event_us if ctx.event_us is not None else ctx.received_us),
        title=f"Turvo {ctx.entity_type} {ctx.entity_id} webhook",
        text=reason,
        attributes={
            "entity_type": ctx.entity_type,
            "entity_id": ctx.entity_id,
            "reason": reason,
            "webhook": _json_safe(ctx.webhook),
            "entity": _json_safe(ctx.entity) if ctx.entity else None,
        },
        entities=_generic_entity(ctx),
    )


def tombstone(ctx: Context, evidence: str) -> Record:
    """The entity was deleted, as `evidence` says (the webhook announced it, or the fetched
    entity is soft-deleted; see `deletion`).

    A 404 carries no version of Turvo's, so that tombstone's is the webhook's event time —
    bounded to the receipt plus the allowed skew (see `Context`) — and never earlier than
    the receipt: later than any update the live record carried, and never so far ahead
    that a real update could not follow it. A soft-deleted entity has its own update time.
    """
    if ctx.entity_updated_us is not None:
        version = ctx.entity_updated_us
    else:
        version = max(ctx.received_us, ctx.event_us if ctx.event_us is not None else 0)
    attributes: dict[str, Any] = {"reason": f"deleted: {evidence}", "webhook": _json_safe(ctx.webhook)}
    if ctx.ignored_event_us is not None:
        attributes["event_time_ignored"] = iso(ctx.ignored_event_us)
    return Record(
        source=SOURCE,
        kind=f"turvo.{ctx.entity_type}",
        id=_key(ctx.entity_type, ctx.entity_id),
        version=version,
        occurred_at=from_us(version),
        title=f"Turvo {ctx.entity_type} {ctx.entity_id} deleted",
        attributes=attributes,
        deleted=True,
    )


def unresolved_record(ctx: Context, reason: str) -> Record:
    """A 404 nothing explains: the delivery, kept with what was tried. Its own id (the
    entity's record is not touched in any store), the receipt as version."""
    return Record(
        source=SOURCE,
        kind=KIND_UNRESOLVED,
        id=_key("unresolved", ctx.event_id or f"{ctx.entity_type}-{ctx.entity_id}"),
        version=ctx.received_us,
        occurred_at=from_us(ctx.received_us),
        title=f"Turvo {ctx.entity_type} {ctx.entity_id} not found, not deleted",
        text=reason,
        attributes={
            "entity_type": ctx.entity_type,
            "entity_id": ctx.entity_id,
            "entity_record_id": _key(ctx.entity_type, ctx.entity_id),
            "reason": reason,
            "webhook": _json_safe(ctx.webhook),
        },
    )


def _generic_entity(ctx: Context) -> tuple[Entity, ...]:
    name = "".join(part.capitalize() for part in ctx.entity_type.split("_"))
    if not ctx.entity_id or not name or not name[0].isalpha() or not name.isalnum():
        return ()
    return (Entity(type=name[:64], key=ctx.entity_id),)


def _named(obj: dict[str, Any]) -> dict[str, Any]:
    name = _s(obj.get("name"))
    return {"name": name} if name else {}


def _json_safe(value: Any) -> Any:
    """Values as JSON would keep them (drops nothing but non-JSON types)."""
    return json.loads(json.dumps(value, default=str))


def _unique(entities: Iterable[Entity]) -> list[Entity]:
    seen: dict[str, Entity] = {}
    for e in entities:
        if e.ref not in seen or (not seen[e.ref].properties and e.properties):
            seen[e.ref] = e
    return list(seen.values())


PARSERS = {
    "shipment": shipment_records,
    "order": order_records,
    "carrier": carrier_records,
    "customer": customer_records,
    "location": location_records,
}


def build_records(
    payload: dict[str, Any], received_us: int, updated_paths: list[str], max_skew_us: int = DEFAULT_SKEW_US
) -> list[Record]:
    ctx = Context(payload, received_us, updated_paths, max_skew_us)
    deleted_by = payload.get("deleted_by")
    if payload.get("not_found") is True or (deleted_by and ctx.entity):
        return [tombstone(ctx, str(deleted_by or "the Turvo API answered 404"))]
    if isinstance(payload.get("unresolved"), str):
        return [unresolved_record(ctx, payload["unresolved"])]
    if not ctx.entity:
        reason = str(payload.get("reason") or "the entity was not fetched")
        return [webhook_record(ctx, reason)]
    parser = PARSERS.get(ctx.entity_type)
    if parser is None:
        return [webhook_record(ctx, f"no parser for Turvo entity type {ctx.entity_type!r}")]
    return parser(ctx)
