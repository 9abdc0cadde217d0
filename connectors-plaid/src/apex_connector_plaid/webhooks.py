"""Decoding Plaid webhook bodies (`{webhook_type, webhook_code, item_id, …}`)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from apex_platform.errors import PayloadError
from apex_platform.payloads import decode_json_object

#: TRANSACTIONS webhooks that mean "this Item has new transaction data": each wakes the
#: Item's poller. SYNC_UPDATES_AVAILABLE is what /transactions/sync users get; the others
#: are the older /transactions/get notices, which some Items still receive.
SYNC_TRIGGERS = frozenset(
    {"SYNC_UPDATES_AVAILABLE", "DEFAULT_UPDATE", "INITIAL_UPDATE", "HISTORICAL_UPDATE", "TRANSACTIONS_REMOVED"}
)
MAX_DEPTH = 32
_MAX_FIELD = 256


def decode(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or `PayloadError` saying what is wrong."""
    return decode_json_object(body, what="Plaid webhook body", max_depth=MAX_DEPTH)


def _field(doc: dict[str, Any], key: str, *, required: bool) -> str | None:
    value = doc.get(key)
    if value is None:
        if required:
            raise PayloadError(f"Plaid webhook '{key}' is missing")
        return None
    if not isinstance(value, str):
        raise PayloadError(f"Plaid webhook '{key}' must be a string, got {type(value).__name__}")
    value = value.strip()
    if not value or len(value) > _MAX_FIELD or not value.isprintable():
        raise PayloadError(f"Plaid webhook '{key}' must be 1 to {_MAX_FIELD} printable characters")
    return value


@dataclass(frozen=True)
class Webhook:
    doc: dict[str, Any]
    webhook_type: str
    webhook_code: str
    item_id: str | None
    event_id: str

    @property
    def is_sync_trigger(self) -> bool:
        return self.webhook_type == "TRANSACTIONS" and self.webhook_code in SYNC_TRIGGERS


def read(body: bytes) -> Webhook:
    doc = decode(body)
    return read_doc(doc, hashlib.sha256(body).hexdigest())


def read_doc(doc: object, digest: str) -> Webhook:
    """Check a decoded body. Plaid sends no delivery id: the event id is the type, code
    and the body's SHA-256, so a redelivered body is the same event."""
    if not isinstance(doc, dict):
        raise PayloadError(f"Plaid webhook body must be a JSON object, got {type(doc).__name__}")
    wtype = _field(doc, "webhook_type", required=True)
    code = _field(doc, "webhook_code", required=True)
    assert wtype is not None
    assert code is not None
    item_id = _field(doc, "item_id", required=wtype == "TRANSACTIONS")
    event_id = f"{wtype.lower()}.{code.lower()}.{digest[:40]}"[:256]
    return Webhook(doc=doc, webhook_type=wtype, webhook_code=code, item_id=item_id, event_id=event_id)
