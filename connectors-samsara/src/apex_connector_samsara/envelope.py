"""Decoding a Samsara delivery and checking the parts every record depends on.

Webhooks 2.0: ``{eventId, eventTime (ISO 8601), eventType, orgId, webhookId, data}``.
Webhooks 1.0: ``{eventId, eventMs (unix ms), eventType: Alert | Ping, event}``. Samsara's
Webhooks 1.0 reference: `eventMs` is when the HTTP request was sent; `event.startMs` is when
the condition began (the event time); the two differ by a lag.
Both `receive` and `parse` go through `read_delivery`, so an event accepted at the edge is
one that can be parsed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from apex_platform.errors import PayloadError
from apex_platform.payloads import decode_json_object, json_type

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Samsara payloads nest a handful of levels; a deeper body is hostile or broken and could
# exhaust the recursion of the JSON encoders that carry it through Temporal.
MAX_DEPTH = 64
MAX_EVENT_ID = 200
# Event times before this are accepted but flagged (Samsara's own examples say 1970).
PLAUSIBLE_SINCE = datetime(2000, 1, 1, tzinfo=UTC)


def decode_body(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or `PayloadError` saying exactly what is wrong."""
    return decode_json_object(body, what="Samsara webhook body", max_depth=MAX_DEPTH)


def parse_time(value: object, where: str) -> datetime:
    """An ISO 8601 time as Samsara writes it ("2020-01-27T07:06:25Z", "…25.683Z", "+07:00"), aware UTC."""
    if not isinstance(value, str) or not value.strip():
        raise PayloadError(f"Samsara {where} must be an ISO 8601 time string, got {json_type(value)}")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise PayloadError(f"Samsara {where} is not an ISO 8601 time: {value[:64]!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # Samsara writes UTC; a bare time is taken as UTC
    return moment.astimezone(UTC)


def micros(moment: datetime) -> int:
    """Microseconds since the epoch (exact integer arithmetic, no float rounding)."""
    return (moment - EPOCH) // timedelta(microseconds=1)


@dataclass(frozen=True)
class Delivery:
    """The checked core of one delivery."""

    doc: dict[str, Any]
    version: Literal["1.0", "2.0"]
    event_id: str
    event_type: str
    occurred_at: datetime
    #: `data` (2.0) or `event` (1.0): the object the event is about
    body: dict[str, Any]
    oddities: tuple[str, ...] = field(default=())

    @property
    def version_us(self) -> int:
        # A record version cannot be negative: pre-1970 times (flagged) clamp to 0.
        return max(0, micros(self.occurred_at))

    @property
    def org_id(self) -> str | None:
        org = self.doc.get("orgId", self.body.get("orgId"))
        return str(org) if isinstance(org, int | str) and not isinstance(org, bool) else None


def _event_id(doc: dict[str, Any]) -> str:
    value = doc.get("eventId")
    if value is None:
        raise PayloadError("Samsara webhook has no 'eventId'")
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise PayloadError(f"Samsara webhook 'eventId' must be a string, got {json_type(value)}")
    text = str(value).strip()
    if not text:
        raise PayloadError("Samsara webhook 'eventId' is empty")
    if len(text) > MAX_EVENT_ID:
        raise PayloadError(f"Samsara webhook 'eventId' is longer than {MAX_EVENT_ID} characters")
    if any(ord(c) < 32 for c in text):
        raise PayloadError("Samsara webhook 'eventId' contains control characters")
    return text


def _event_type(doc: dict[str, Any]) -> str:
    value = doc.get("eventType")
    if value is None:
        raise PayloadError("Samsara webhook has no 'eventType'")
    if not isinstance(value, str) or not value.strip():
        raise PayloadError(f"Samsara webhook 'eventType' must be a non-empty string, got {json_type(value)}")
    return value.strip()[:128]


def _from_ms(value: object, where: str = "eventMs") -> datetime:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PayloadError(f"Samsara webhook '{where}' must be a number of milliseconds, got {json_type(value)}")
    if value != value or abs(value) > 253_402_300_799_000:  # NaN, or past year 9999
        raise PayloadError(f"Samsara webhook '{where}' is not a plausible unix time in milliseconds")
    return EPOCH + timedelta(microseconds=round(value * 1000))


def _started(body: dict[str, Any], sent: datetime, oddities: list[str]) -> datetime:
    """A 1.0 event's time: `event.startMs` (when the condition began), else — flagged — the
    time the request was sent (`eventMs`). A `startMs` that is not a usable time is flagged,
    never a reason to refuse the delivery."""
    if "startMs" not in body or body["startMs"] is None:
        oddities.append("no event.startMs: the event time is eventMs, when Samsara sent the request")
        return sent
    try:
        return _from_ms(body["startMs"], "event.startMs")
    except PayloadError as exc:
        oddities.append(f"{exc}; the event time is eventMs, when Samsara sent the request")
        return sent


def _route_update_time(body: dict[str, Any], event_time: datetime, oddities: list[str]) -> datetime:
    """A route stop event's time: its route update's `data.time`, the `time` the route
    updates feed lists for the same update — so a webhook and its feed twin have one time
    (Samsara's own example has `eventTime` 1970 and `data.time` 2020). Without a usable
    `data.time`, the `eventTime` (flagged when `data.time` is there but unreadable)."""
    if body.get("time") is None:
        return event_time
    try:
        return parse_time(body["time"], "route update 'data.time'")
    except PayloadError as exc:
        oddities.append(f"{exc}; the event time is eventTime")
        return event_time


def read_delivery(doc: Any) -> Delivery:
    """Check a decoded delivery of either webhook version; `PayloadError` names what is wrong."""
    if not isinstance(doc, dict):
        raise PayloadError(f"Samsara webhook body must be a JSON object, got {json_type(doc)}")
    event_id = _event_id(doc)
    event_type = _event_type(doc)
    oddities: list[str] = []
    if "eventTime" in doc:
        occurred = parse_time(doc["eventTime"], "webhook 'eventTime'")
        body = doc.get("data", {})
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise PayloadError(f"Samsara webhook 'data' must be an object, got {json_type(body)}")
        version: Literal["1.0", "2.0"] = "2.0"
        if event_type in ROUTE_STOP_EVENTS:
            occurred = _route_update_time(body, occurred, oddities)
    elif "eventMs" in doc:
        sent = _from_ms(doc["eventMs"])
        body = doc.get("event", {})
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise PayloadError(f"Samsara webhook 'event' must be an object, got {json_type(body)}")
        occurred = _started(body, sent, oddities) if event_type != "Ping" else sent
        version = "1.0"
    else:
        raise PayloadError("Samsara webhook has neither 'eventTime' (Webhooks 2.0) nor 'eventMs' (Webhooks 1.0)")
    if occurred < PLAUSIBLE_SINCE:
        oddities.append(f"event time {occurred.isoformat()} is before 2000 (accepted as sent)")
    return Delivery(
        doc=doc,
        version=version,
        event_id=event_id,
        event_type=event_type,
        occurred_at=occurred,
        body=body,
        oddities=tuple(oddities),
    )


def is_ping(doc: dict[str, Any]) -> bool:
    return doc.get("eventType") == "Ping"


#: route stop events: eventType → what happened at the stop. Their records are keyed by the
#: stop (`route_stop_id`), so that a webhook and its route updates feed twin — two inbox
#: deliveries, the feed has no eventId — give identical records, which the saga writes once.
ROUTE_STOP_EVENTS = {"RouteStopArrival": "arrived", "RouteStopDeparture": "departed"}


def route_stop_key(event_type: str, route_id: str, stop_id: str) -> str:
    """`route-stop:<route>:<stop>:arrived|departed`: the record id of a stop's arrival or departure."""
    return f"route-stop:{route_id}:{stop_id}:{ROUTE_STOP_EVENTS[event_type]}"


def plain_id(obj: object) -> str | None:
    """An object's `id` as a key part: text or integer, printable, at most 64 characters,
    no ':' (the key's separator: two different stops never share a key)."""
    value = obj.get("id") if isinstance(obj, dict) else None
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value).strip()
    return text if text and text.isprintable() and ":" not in text and len(text) <= 64 else None


def route_stop_id(delivery: Delivery) -> str | None:
    """The stop-keyed record id of a route stop arrival or departure (Webhooks 2.0, with
    usable route and stop ids), else None (its records are then keyed by the eventId)."""
    if delivery.event_type not in ROUTE_STOP_EVENTS or delivery.version != "2.0":
        return None
    route_id = plain_id(delivery.body.get("route"))
    stop_id = plain_id(delivery.body.get("routeStopDetails"))
    if route_id is None or stop_id is None:
        return None
    return route_stop_key(delivery.event_type, route_id, stop_id)
