"""NWS alerts (GeoJSON features of CAP messages) to records. Pure: no I/O, no clock.

One feature is one CAP message. Its `properties.id` is the record id and its `sent`
time, in microseconds, the version. An `Update` or a `Cancel` supersedes the messages it
references: each of those becomes a tombstone at the newer message's version, so an
alert that is no longer in force is gone from every store, and reading the older message
again later (the next page, the next run) cannot bring it back. A `Cancel` has no record
of its own. Messages whose status is not `Actual` (tests, exercises, drafts) give none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from apex_platform.errors import PayloadError
from apex_platform.models import Entity, Record, Relation

SOURCE = "weather"
KIND = "weather.alert"
MESSAGE_TYPES = frozenset({"Alert", "Update", "Cancel"})
#: the CAP values a record keeps as attributes, when the message has them
_KEPT = (
    "event",
    "severity",
    "certainty",
    "urgency",
    "status",
    "messageType",
    "category",
    "response",
    "areaDesc",
    "senderName",
    "effective",
    "onset",
    "expires",
    "ends",
)
_MAX_ID = 256


def alert_records(feature: Any, lanes: Mapping[str, Sequence[str]] | None = None) -> list[Record]:
    """The records of one alert feature; `PayloadError` naming the alert and the field when it
    is not the shape the NWS documents."""
    if not isinstance(feature, dict) or not isinstance(feature.get("properties"), dict):
        raise PayloadError("weather alert: a GeoJSON feature with a 'properties' object is expected")
    props: dict[str, Any] = feature["properties"]
    alert_id = props.get("id")
    if not isinstance(alert_id, str) or not 0 < len(alert_id) <= _MAX_ID:
        raise PayloadError(f"weather alert: properties.id must be a string of 1 to {_MAX_ID} characters")
    where = f"weather alert {alert_id}"
    sent = _time(props.get("sent"), f"{where}: sent")
    message_type = props.get("messageType")
    if message_type not in MESSAGE_TYPES:
        raise PayloadError(f"{where}: messageType must be one of {sorted(MESSAGE_TYPES)}, not {message_type!r}")
    if props.get("status") != "Actual":
        return []
    version = int(sent.timestamp()) * 1_000_000 + sent.microsecond
    superseded = [
        Record(source=SOURCE, kind=KIND, id=ref, version=version, occurred_at=sent, deleted=True)
        for ref in _references(props.get("references"), where)
        if ref != alert_id
    ]
    if message_type == "Cancel":
        return superseded
    event = _text(props.get("event"), f"{where}: event") or "Weather alert"
    zones = _zones(props.get("geocode"), where)
    alert = Entity(type="WeatherAlert", key=alert_id, properties={"event": event})
    lane_names = sorted(name for name, codes in (lanes or {}).items() if set(codes) & set(zones))
    attributes = {key: props[key] for key in _KEPT if isinstance(props.get(key), str)}
    attributes["zones"] = zones
    if lane_names:
        attributes["lanes"] = lane_names
    text = "\n\n".join(t for t in (_text(props.get("description"), where), _text(props.get("instruction"), where)) if t)
    record = Record(
        source=SOURCE,
        kind=KIND,
        id=alert_id,
        version=version,
        occurred_at=sent,
        title=_text(props.get("headline"), f"{where}: headline") or event,
        text=text,
        attributes=attributes,
        entities=(
            alert,
            *(Entity(type="WeatherZone", key=zone) for zone in zones),
            *(Entity(type="Lane", key=name) for name in lane_names),
        ),
        relations=(
            *(Relation(src=alert.ref, type="AFFECTS", dst=f"WeatherZone:{zone}") for zone in zones),
            *(Relation(src=alert.ref, type="THREATENS", dst=f"Lane:{name}") for name in lane_names),
        ),
    )
    return [record, *superseded]


def sent_time(feature: Any) -> datetime:
    """When the alert was sent (after `alert_records` accepted the feature)."""
    return _time(feature["properties"]["sent"], "sent")


def _time(value: Any, what: str) -> datetime:
    if not isinstance(value, str):
        raise PayloadError(f"{what} must be an ISO 8601 time with an offset")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise PayloadError(f"{what} is not an ISO 8601 time: {value[:40]!r}") from None
    if moment.tzinfo is None:
        raise PayloadError(f"{what} has no UTC offset: {value[:40]!r}")
    return moment.astimezone(UTC)


def _text(value: Any, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise PayloadError(f"{what} must be a string or null")
    return value.strip()


def _zones(geocode: Any, where: str) -> list[str]:
    """The county and zone codes (UGC) the alert covers, sorted, each once."""
    if geocode is None:
        return []
    codes = geocode.get("UGC", []) if isinstance(geocode, dict) else None
    if not isinstance(codes, list) or not all(isinstance(c, str) and 0 < len(c) <= 16 for c in codes):
        raise PayloadError(f"{where}: geocode.UGC must be a list of county or zone codes")
    return sorted(set(codes))


def _references(refs: Any, where: str) -> list[str]:
    if refs is None:
        return []
    if not isinstance(refs, list):
        raise PayloadError(f"{where}: references must be a list")
    ids: list[str] = []
    for ref in refs:
        identifier = ref.get("identifier") if isinstance(ref, dict) else None
        if not isinstance(identifier, str) or not 0 < len(identifier) <= _MAX_ID:
            raise PayloadError(f"{where}: each reference needs an identifier of 1 to {_MAX_ID} characters")
        ids.append(identifier)
    return sorted(set(ids))
