"""Records of one Samsara webhook delivery (pure functions, no I/O, no clock).

Every delivery gives one event record (`event:<eventId>`); events that carry a whole object
(VehicleUpdated, AddressCreated, DocumentSubmitted, route stop events) also give that
object's latest-state record (`vehicle:<id>`, `address:<id>`, `document:<id>`, `route:<id>`).

A route stop arrival or departure is the exception: its event record is the stop's
(`route-stop:<route>:<stop>:arrived|departed`), versioned by the route update's time, and
nothing of the delivery (eventId, webhookId, orgId) is in its records — the lineage names
the delivery. Its webhook and its twin from the route updates feed (`routes_feed`) are two
inbox deliveries that give identical records, so the saga writes them once; a later
arrival at the same stop is a newer version.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from apex_connector_samsara.envelope import Delivery, route_stop_id
from apex_connector_samsara.graph import Graph, coordinate_oddities, object_id, text_of, walk
from apex_platform.models import Record

SOURCE = "samsara"

KIND_EVENT = "samsara.event"
KIND_ALERT = "samsara.alert"
KIND_VEHICLE = "samsara.vehicle"
KIND_ADDRESS = "samsara.address"
KIND_DOCUMENT = "samsara.document"
KIND_ROUTE = "samsara.route"
KIND_DRIVER = "samsara.driver"

#: Event types with a kind of their own; anything else is a `samsara.event` (never dropped).
EVENT_KINDS = {
    "RouteStopArrival": "samsara.route_stop_arrival",
    "RouteStopDeparture": "samsara.route_stop_departure",
    "GeofenceEntry": "samsara.geofence_entry",
    "GeofenceExit": "samsara.geofence_exit",
    "DocumentSubmitted": "samsara.document_submitted",
    "VehicleCreated": "samsara.vehicle_created",
    "VehicleUpdated": "samsara.vehicle_updated",
    "AddressCreated": "samsara.address_created",
    "AddressUpdated": "samsara.address_updated",
    "AddressDeleted": "samsara.address_deleted",
    "Alert": KIND_ALERT,
    "AlertIncident": KIND_ALERT,
}

_OBJECT_EVENT = re.compile(r"^(Vehicle|Address|Driver|Route)(Created|Updated|Deleted)$")
_OBJECT_KINDS = {"Vehicle": KIND_VEHICLE, "Address": KIND_ADDRESS, "Driver": KIND_DRIVER, "Route": KIND_ROUTE}
_SCAN_TYPES = {"vehicle": "Vehicle", "driver": "Driver", "address": "Address", "route": "Route", "document": "Document"}
_MAX_TEXT = 4000


def _name(obj: object, fallback: str) -> str:
    return text_of(obj, "name") or (f"{fallback} {object_id(obj)}" if object_id(obj) else fallback)


def _obj(container: dict[str, Any], key: str) -> dict[str, Any]:
    value = container.get(key)
    return value if isinstance(value, dict) else {}


def _objects(container: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = container.get(key)
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


class _Builder:
    """Builds the graph, title and text lines of one delivery."""

    def __init__(self, delivery: Delivery) -> None:
        self.d = delivery
        self.data = delivery.body
        self.graph = Graph()
        self.lines: list[str] = []
        self.oddities = list(delivery.oddities)
        self.title = f"Samsara {delivery.event_type}"

    def common(self) -> tuple[str | None, str | None]:
        vehicle = self.graph.add("Vehicle", _obj(self.data, "vehicle"))
        driver = self.graph.add("Driver", _obj(self.data, "driver"))
        self.graph.relate(driver, "DROVE", vehicle)
        return vehicle, driver

    def route_stop(self, arrived: bool) -> None:
        vehicle, driver = self.common()
        route_obj = _obj(self.data, "route")
        route = self.graph.add("Route", route_obj)
        self.graph.relate(vehicle, "ASSIGNED_TO_ROUTE", route)
        self.graph.relate(driver, "ASSIGNED_TO_ROUTE", route)
        details = _obj(self.data, "routeStopDetails")
        stops: dict[str, dict[str, Any]] = {}
        for stop in _objects(route_obj, "stops"):
            ref = self.graph.add("Stop", stop)
            self.graph.relate(ref, "PART_OF", route)
            address = self.graph.add("Address", _obj(stop, "address"))
            self.graph.relate(ref, "AT_ADDRESS", address)
            for doc in _objects(stop, "documents"):
                self.graph.relate(ref, "HAS_DOCUMENT", self.graph.add("Document", doc))
            if ref:
                stops.setdefault(ref, stop)
        stop_ref = self.graph.add("Stop", details)
        self.graph.relate(stop_ref, "PART_OF", route)
        verb = "ARRIVED_AT" if arrived else "DEPARTED_FROM"
        self.graph.relate(vehicle, verb, stop_ref)
        matched = stops.get(stop_ref or "")
        if matched is not None:
            self.graph.relate(vehicle, verb, self.graph.add("Address", _obj(matched, "address")))
        elif stop_ref:
            self.oddities.append(f"stop {object_id(details)} of routeStopDetails is not among the route's stops")
        stop_name = text_of(matched, "name") if matched else None
        where = stop_name or _name(details, "stop")
        self.title = (
            f"{_name(self.data.get('vehicle'), 'vehicle')} {'arrived at' if arrived else 'departed from'} "
            f"{where} on route {_name(route_obj, 'route')}"
        )
        self.lines += [
            f"Driver: {_name(self.data.get('driver'), 'driver')}",
            f"Stop state: {text_of(details, 'state') or 'unknown'}",
            f"Actual arrival: {text_of(details, 'actualArrivalTime') or '-'}",
            f"Actual departure: {text_of(details, 'actualDepartureTime') or '-'}",
        ]

    def geofence(self, entered: bool) -> None:
        vehicle, _ = self.common()
        address_obj = _obj(self.data, "address")
        address = self.graph.add("Address", address_obj)
        self.graph.relate(vehicle, "ENTERED" if entered else "EXITED", address)
        self.title = (
            f"{_name(self.data.get('vehicle'), 'vehicle')} {'entered' if entered else 'exited'} "
            f"{_name(address_obj, 'geofence')}"
        )
        if text_of(address_obj, "formattedAddress"):
            self.lines.append(f"Address: {text_of(address_obj, 'formattedAddress')}")

    def document(self) -> None:
        doc_obj = _obj(self.data, "document") or self.data
        doc = self.graph.add("Document", doc_obj)
        driver = self.graph.add("Driver", _obj(doc_obj, "driver"))
        vehicle = self.graph.add("Vehicle", _obj(doc_obj, "vehicle"))
        route = self.graph.add("Route", _obj(doc_obj, "route"))
        stop = self.graph.add("Stop", _obj(doc_obj, "routeStop"))
        self.graph.relate(doc, "SUBMITTED_BY", driver)
        self.graph.relate(doc, "FOR_VEHICLE", vehicle)
        self.graph.relate(doc, "FOR_ROUTE", route)
        self.graph.relate(stop, "HAS_DOCUMENT", doc)
        self.graph.relate(driver, "DROVE", vehicle)
        doc_type = text_of(_obj(doc_obj, "documentType"), "name") or "Document"
        self.title = f"{doc_type} submitted by {_name(doc_obj.get('driver'), 'driver')}"
        for field in _objects(doc_obj, "fields")[:50]:
            label, value = text_of(field, "label"), _field_value(field)
            if label and value:
                self.lines.append(f"{label}: {value}")

    def alert(self) -> None:
        data = self.data
        vehicle = self.graph.add("Vehicle", _obj(data, "vehicle") or _obj(data, "device"))
        driver = self.graph.add("Driver", _obj(data, "driver"))
        self.graph.relate(driver, "DROVE", vehicle)
        self.scan()
        summary = text_of(data, "summary") or text_of(data, "alertConditionDescription")
        self.title = f"Samsara alert: {summary}" if summary else f"Samsara {self.d.event_type}"
        for key in ("details", "alertConditionId", "alertEventUrl", "incidentUrl"):
            if text_of(data, key):
                self.lines.append(f"{key}: {text_of(data, key)}")

    def scan(self) -> None:
        """Entities of an event we have no specific rule for: every vehicle, driver, address,
        route and document object found in it."""
        refs: dict[str, list[str]] = {}
        for _, key, obj in walk(self.data):
            type_ = _SCAN_TYPES.get(key)
            if type_ is not None:
                ref = self.graph.add(type_, obj)
                if ref:
                    refs.setdefault(type_, []).append(ref)
        vehicles, drivers = refs.get("Vehicle", []), refs.get("Driver", [])
        if len(vehicles) == 1 and len(drivers) == 1:
            self.graph.relate(drivers[0], "DROVE", vehicles[0])

    def object_event(self, type_: str, verb: str) -> None:
        obj = _obj(self.data, type_.lower())
        ref = self.graph.add(type_, obj)
        if type_ == "Vehicle":
            driver = self.graph.add("Driver", _obj(obj, "staticAssignedDriver"))
            self.graph.relate(driver, "ASSIGNED_TO", ref)
        self.title = f"{type_} {_name(obj, '').strip() or object_id(obj) or ''} {verb.lower()}".replace("  ", " ")
        if type_ == "Address" and text_of(obj, "formattedAddress"):
            self.lines.append(f"Address: {text_of(obj, 'formattedAddress')}")


def _field_value(field: dict[str, Any]) -> str | None:
    value = field.get("value")
    if isinstance(value, dict):
        for key in ("stringValue", "numberValue", "dateTimeValue"):
            item = value.get(key)
            if isinstance(item, str | int | float) and not isinstance(item, bool):
                return str(item)
            if isinstance(item, dict) and isinstance(item.get("dateTime"), str):
                return str(item["dateTime"])
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return str(value)
    return None


def event_kind(event_type: str) -> str:
    return EVENT_KINDS.get(event_type, KIND_EVENT)


def route_update_view(data: dict[str, Any]) -> dict[str, Any]:
    """A route stop event's `data` as both paths give it: the webhook carries the driver and
    the vehicle next to the route, the feed (`expand=route`) inside it. Here they are next
    to it (the webhook's, else the route's) and the route is without them."""
    route = _obj(data, "route")
    view = {k: v for k, v in data.items() if k not in ("driver", "vehicle")}
    for key in ("driver", "vehicle"):
        value = data.get(key) if isinstance(data.get(key), dict) else route.get(key)
        if value is not None:
            view[key] = value
    if "route" in data and isinstance(data["route"], dict):
        view["route"] = {k: v for k, v in route.items() if k not in ("driver", "vehicle")}
    return view


def build_records(delivery: Delivery) -> list[Record]:
    """The records of one delivery: the event, and the object it carries when it carries one."""
    stop_id = route_stop_id(delivery)
    if delivery.event_type in ("RouteStopArrival", "RouteStopDeparture"):
        delivery = dataclasses.replace(delivery, body=route_update_view(delivery.body))
    b = _Builder(delivery)
    etype = delivery.event_type
    object_match = _OBJECT_EVENT.match(etype)
    if etype in ("RouteStopArrival", "RouteStopDeparture"):
        b.route_stop(arrived=etype == "RouteStopArrival")
    elif etype in ("GeofenceEntry", "GeofenceExit"):
        b.geofence(entered=etype == "GeofenceEntry")
    elif etype == "DocumentSubmitted":
        b.document()
    elif etype in ("Alert", "AlertIncident"):
        b.alert()
    elif object_match:
        b.object_event(object_match.group(1), object_match.group(2))
    else:
        b.scan()
    root = "data" if delivery.version == "2.0" else "event"
    b.oddities += coordinate_oddities(delivery.body, root)

    attributes: dict[str, Any] = {
        "event_id": delivery.event_id,
        "event_type": etype,
        "webhook_version": delivery.version,
        "org_id": delivery.org_id,
        "webhook_id": text_of(delivery.doc, "webhookId"),
        # 2.0: eventTime; 1.0: the event's startMs (eventMs is when the request was sent)
        "event_time": delivery.doc.get("eventTime") if delivery.version == "2.0" else delivery.occurred_at.isoformat(),
        "sent_ms": delivery.doc.get("eventMs") if delivery.version == "1.0" else None,
        root: delivery.body,
    }
    if stop_id is not None:
        # the same from the webhook and from its feed twin: nothing of the delivery (the
        # feed has no eventId, webhookId or orgId); the time is the route update's
        for key in ("event_id", "org_id", "webhook_id"):
            attributes.pop(key)
        attributes["event_time"] = delivery.occurred_at.isoformat()
    if b.oddities:
        attributes["oddities"] = b.oddities
    text = "\n".join([b.title, *b.lines, *(f"Note: {o}" for o in b.oddities)])[:_MAX_TEXT]
    records = [
        Record(
            source=SOURCE,
            kind=event_kind(etype),
            id=stop_id or f"event:{delivery.event_id}",
            version=delivery.version_us,
            occurred_at=delivery.occurred_at,
            title=b.title[:500],
            text=text,
            attributes={k: v for k, v in attributes.items() if v is not None},
            entities=b.graph.entities,
            relations=b.graph.relations,
        )
    ]
    object_event = (object_match.group(1), object_match.group(2)) if object_match else None
    records += _object_records(delivery, b, object_event)
    return records


def _object_records(delivery: Delivery, b: _Builder, object_event: tuple[str, str] | None) -> list[Record]:
    """Latest-state records of the objects an event carries in full."""
    found: list[tuple[str, str, dict[str, Any], bool]] = []  # (type, kind, object, deleted)
    data = delivery.body
    if object_event is not None:
        type_, verb = object_event
        found.append((type_, _OBJECT_KINDS[type_], _obj(data, type_.lower()), verb == "Deleted"))
    elif delivery.event_type == "DocumentSubmitted":
        found.append(("Document", KIND_DOCUMENT, _obj(data, "document") or data, False))
    elif delivery.event_type in ("RouteStopArrival", "RouteStopDeparture"):
        found.append(("Route", KIND_ROUTE, _obj(data, "route"), False))
    records = []
    for type_, kind, obj, deleted in found:
        key = object_id(obj)
        if key is None:
            continue
        ref = f"{type_}:{key}"
        entities = tuple(e for e in b.graph.entities if e.ref == ref)
        relations = tuple(r for r in b.graph.relations if ref in (r.src, r.dst))
        records.append(
            Record(
                source=SOURCE,
                kind=kind,
                id=f"{type_.lower()}:{key}",
                version=delivery.version_us,
                occurred_at=delivery.occurred_at,
                title=_name(obj, type_),
                text="" if deleted else b.title[:500],
                attributes=_object_attributes(delivery, obj),
                entities=entities,
                relations=relations,
                deleted=deleted,
            )
        )
    return records


def _object_attributes(delivery: Delivery, obj: dict[str, Any]) -> dict[str, Any]:
    """An object record's attributes: the object and the event that carried it. A route
    from a stop event names no eventId: its webhook and its feed twin give one record."""
    if delivery.event_type in ("RouteStopArrival", "RouteStopDeparture"):
        return {"object": obj, "last_event_type": delivery.event_type}
    return {"object": obj, "last_event_id": delivery.event_id, "last_event_type": delivery.event_type}
