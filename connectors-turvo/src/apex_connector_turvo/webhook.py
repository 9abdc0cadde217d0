"""Turvo webhook deliveries: the token check, the body, and what a delivery names.

Turvo's webhook profiles authenticate with a token the integrator generates and Turvo
sends back in a header; the payload schema is not public. So the header name and every
JSON path below are settings, tried in order, with defaults that cover the shapes seen in
public integrations (``{"eventName": "SHIPMENT_STATUS_UPDATE", "eventTime": …,
"eventPayload": {"id": …}}``) and the generic ``{"entityType", "entityId"}`` style.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from apex_connector_turvo.settings import TurvoSettings, split_list
from apex_connector_turvo.times import to_us
from apex_platform.errors import PayloadError, SignatureError
from apex_platform.payloads import decode_json_object
from apex_platform.settings import digest, secret_values
from apex_platform.vendor_http import SAFE_ID

# An entity id goes into an API path: vendor_http.SAFE_ID (never "." or "..": an id of
# ".." made GET /shipments/.. , which clients normalise to GET /v1), quoted when the path is built.
_SAFE_EVENT_ID = re.compile(r"^[A-Za-z0-9_.:@-]{1,200}$")
_WORD = re.compile(r"[A-Za-z0-9]+")
_ALIASES = {"account": "customer", "accounts": "customer", "load": "shipment", "loads": "shipment"}
MAX_DEPTH = 64


def lower_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {str(k).lower(): v for k, v in headers.items()}


def check_token(headers: Mapping[str, str], settings: TurvoSettings) -> None:
    """Raise `SignatureError` unless the configured header carries a configured token (any
    of them: several are set during a rotation)."""
    tokens = secret_values(settings.webhook_token)
    if not tokens:
        raise SignatureError(
            "Turvo webhook rejected: no webhook token is configured. Set APEX_TURVO_WEBHOOK_TOKEN to the "
            "token of the webhook profile in Turvo's admin console"
        )
    header = settings.webhook_header.strip().lower()
    provided = lower_headers(headers).get(header, "").strip()
    if not provided:
        raise SignatureError(
            f"Turvo webhook rejected: the {settings.webhook_header} header is missing (see APEX_TURVO_WEBHOOK_HEADER)"
        )
    scheme, _, rest = provided.partition(" ")
    if rest and scheme.lower() == "bearer":
        provided = rest.strip()
    # digests on both sides: a non-ASCII header cannot raise, and neither the token's length
    # nor which token matched shows in the time taken (every one is compared)
    given = digest(provided)
    matched = False
    for token in tokens:
        matched |= hmac.compare_digest(digest(token), given)
    if not matched:
        raise SignatureError(
            f"Turvo webhook rejected: the token in {settings.webhook_header} does not match APEX_TURVO_WEBHOOK_TOKEN"
        )


def decode_body(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or `PayloadError` saying what is wrong."""
    return decode_json_object(body, what="Turvo webhook body", max_depth=MAX_DEPTH)


def dig(doc: Any, path: str) -> Any:
    """The value at a dotted path (`eventPayload.id`, `stops.0.id`), or None."""
    current = doc
    for part in path.split("."):
        if isinstance(current, dict):
            current = current.get(part)
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return None
        if current is None:
            return None
    return current


def first(doc: Any, paths: str) -> tuple[str, Any] | None:
    """The first (path, value) of the comma-separated `paths` that holds a scalar."""
    for path in split_list(paths):
        value = dig(doc, path)
        if isinstance(value, str) and value.strip():
            return path, value.strip()
        if isinstance(value, int | float) and not isinstance(value, bool):
            return path, value
    return None


def entity_kind(raw: str, known: set[str]) -> str:
    """Normalise what the payload says the entity is (`SHIPMENT_STATUS_UPDATE`, `Shipment`,
    `carriers`, `account`) to a known entity type, or a cleaned-up unknown one."""
    words: list[str] = [str(w).lower() for w in _WORD.findall(raw)]
    for word in words:
        word = _ALIASES.get(word, word)
        for candidate in (word, word[:-1] if word.endswith("s") else word):
            if candidate in known:
                return candidate
    cleaned = "_".join(words)[:64]
    return cleaned or "unknown"


@dataclass(frozen=True)
class Delivery:
    """What one webhook names: the entity, and the event's own identity and time."""

    entity_type: str
    entity_id: str
    event_id: str
    event_time_us: int | None
    event_name: str | None


def read_delivery(doc: dict[str, Any], settings: TurvoSettings) -> Delivery:
    """The entity type and id a webhook names, and its event id; `PayloadError` naming what is missing."""
    found_type = first(doc, settings.entity_type_path)
    if found_type is None:
        raise PayloadError(
            "Turvo webhook names no entity type: none of "
            f"{', '.join(split_list(settings.entity_type_path))} holds a value (see APEX_TURVO_ENTITY_TYPE_PATH)"
        )
    found_id = first(doc, settings.entity_id_path)
    if found_id is None:
        raise PayloadError(
            "Turvo webhook names no entity id: none of "
            f"{', '.join(split_list(settings.entity_id_path))} holds a value (see APEX_TURVO_ENTITY_ID_PATH)"
        )
    entity_id = str(found_id[1])
    if isinstance(found_id[1], float):
        if not found_id[1].is_integer():
            raise PayloadError(f"Turvo webhook entity id at {found_id[0]!r} is not a whole number")
        entity_id = str(int(found_id[1]))
    if not SAFE_ID.fullmatch(entity_id):
        raise PayloadError(
            f"Turvo webhook entity id at {found_id[0]!r} is not a plain identifier "
            "(a letter or digit, then letters, digits, '_', '.', ':', '-'; at most 128)"
        )
    kind = entity_kind(str(found_type[1]), set(settings.entity_path_map()))
    time_found = first(doc, settings.event_time_path)
    event_time_us = to_us(time_found[1]) if time_found else None
    event_name = doc.get("eventName") if isinstance(doc.get("eventName"), str) else None
    return Delivery(
        entity_type=kind,
        entity_id=entity_id,
        event_id=event_id(doc, settings, kind, entity_id, event_time_us),
        event_time_us=event_time_us,
        event_name=event_name,
    )


def event_id(doc: dict[str, Any], settings: TurvoSettings, kind: str, entity_id: str, time_us: int | None) -> str:
    """A delivery id when the payload has one; otherwise a hash that is equal for a
    redelivery of the same change and different for the next change of the entity.

    With an event time, (type, id, time) identifies the change: a retried delivery maps to
    the same workflow id (200 duplicate) even if Turvo re-serialises the body. Without one,
    the canonical body is hashed instead, so only byte-for-byte equal content collapses.
    """
    found = first(doc, settings.delivery_id_path)
    if found is not None:
        value = str(found[1])
        if _SAFE_EVENT_ID.fullmatch(value):
            return value
        return "d-" + hashlib.sha256(value.encode()).hexdigest()[:40]
    basis = str(time_us) if time_us is not None else json.dumps(doc, sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256("\x1f".join((kind, entity_id, basis)).encode()).hexdigest()[:24]
    return f"{kind[:32]}-{entity_id}-{digest}"
