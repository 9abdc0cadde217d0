"""Decoding a Front delivery and checking the parts every record depends on.

A delivery is either an application webhook envelope ``{type, authorization: {id}, payload}``
whose payload is a Front event, or (rule webhooks) a bare Front event
``{id: "evt_…", type, emitted_at, …}``. Both `receive` and `parse` go through `read_delivery`,
so an event that was accepted at the edge is one that can be parsed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from apex_platform.errors import PayloadError
from apex_platform.payloads import decode_json_object, json_type

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# datetime cannot go past 9999-12-31; a larger emitted_at is not a real event time.
_MAX_EPOCH_SECONDS = 253_402_300_799
# Real Front events nest a handful of levels; a deeper body is hostile or broken and could
# exhaust the recursion of the JSON encoders that carry it through Temporal.
MAX_DEPTH = 64
_MAX_EVENT_ID = 256


def decode_body(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or `PayloadError` saying exactly what is wrong."""
    return decode_json_object(body, what="Front webhook body", max_depth=MAX_DEPTH)


@dataclass(frozen=True)
class Delivery:
    """The checked core of one delivery; `event` is the Front event object itself."""

    event: dict[str, Any]
    event_id: str
    emitted_us: int
    #: application webhook type (inbound_received, tag_added …); None for a bare event
    webhook_type: str | None
    #: Front event type (inbound, tag, assign …); None when the event has no type
    event_type: str | None
    #: Front company id (cmp_…) from the envelope's authorization
    company_id: str | None

    @property
    def occurred_at(self) -> datetime:
        return EPOCH + timedelta(microseconds=self.emitted_us)

    @property
    def label(self) -> str:
        """The most specific name of what happened."""
        return self.webhook_type or self.event_type or "unknown"


def is_sync(doc: dict[str, Any]) -> bool:
    """The set-up ping: an envelope of type sync that carries no event."""
    return doc.get("type") == "sync" and doc.get("payload") is None


def _looks_like_event(doc: dict[str, Any]) -> bool:
    event_id = doc.get("id")
    return isinstance(event_id, str) and event_id.startswith("evt_") and "emitted_at" in doc


def _optional_str(container: dict[str, Any], key: str, where: str) -> str | None:
    value = container.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise PayloadError(f"Front webhook '{where}' must be a string, got {json_type(value)}")
    return value


def microseconds(value: object) -> int | None:
    """Unix seconds (int or float) to integer microseconds, or None when not a usable time."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if not 0 <= value <= _MAX_EPOCH_SECONDS:
        return None
    return round(value * 1_000_000)


def read_delivery(doc: object) -> Delivery:
    """Check a decoded body (envelope or bare event) and return its `Delivery`."""
    if not isinstance(doc, dict):
        raise PayloadError(f"Front webhook body must be a JSON object, got {json_type(doc)}")

    webhook_type: str | None = None
    company_id: str | None = None
    prefix = ""
    if "payload" in doc or "authorization" in doc:
        webhook_type = _optional_str(doc, "type", "type")
        authorization = doc.get("authorization")
        if authorization is not None:
            if not isinstance(authorization, dict):
                raise PayloadError(f"Front webhook 'authorization' must be an object, got {json_type(authorization)}")
            company_id = _optional_str(authorization, "id", "authorization.id")
        if "payload" not in doc or doc["payload"] is None:
            raise PayloadError(
                f"Front webhook envelope of type {webhook_type or '?'} has no 'payload' (the Front event)"
            )
        event = doc["payload"]
        if not isinstance(event, dict):
            raise PayloadError(f"Front webhook 'payload' must be an object, got {json_type(event)}")
        prefix = "payload."
    elif _looks_like_event(doc):
        event = doc
    else:
        raise PayloadError(
            "Front webhook body is missing 'payload': expected an application webhook envelope "
            "{type, authorization, payload} or a Front event {id: evt_…, type, emitted_at}"
        )

    if "id" not in event or event["id"] is None:
        raise PayloadError(f"Front webhook '{prefix}id' (the event id, evt_…) is missing")
    event_id = event["id"]
    if not isinstance(event_id, str):
        raise PayloadError(f"Front webhook '{prefix}id' must be a string, got {json_type(event_id)}")
    if not event_id.strip() or len(event_id) > _MAX_EVENT_ID or not event_id.isprintable():
        raise PayloadError(f"Front webhook '{prefix}id' must be 1 to {_MAX_EVENT_ID} printable characters")

    event_type = _optional_str(event, "type", f"{prefix}type")

    if "emitted_at" not in event or event["emitted_at"] is None:
        raise PayloadError(f"Front webhook '{prefix}emitted_at' is missing (event {event_id})")
    emitted_us = microseconds(event["emitted_at"])
    if emitted_us is None:
        raise PayloadError(
            f"Front webhook '{prefix}emitted_at' must be unix seconds, a number from 0 to "
            f"{_MAX_EPOCH_SECONDS}; got {json_type(event['emitted_at'])} (event {event_id})"
        )

    return Delivery(
        event=event,
        event_id=event_id,
        emitted_us=emitted_us,
        webhook_type=webhook_type,
        event_type=event_type,
        company_id=company_id,
    )
