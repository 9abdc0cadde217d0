"""Decoding Plaid webhook bodies (`{webhook_type, webhook_code, item_id, …}`).

Plaid sends no delivery id, and two identical bodies can be two genuine events (an Item
in ITEM_LOGIN_REQUIRED again after a fix failed). Plaid retries a delivery it did not see
answered 2xx within 10 s for up to 24 hours (delays from 30 s, each 4 times the one
before), re-signing each attempt (its `iat` must be fresh), so nothing in a retry tells
it from a new event. The rule: a webhook's event id is its type, code and body SHA-256
plus the repeat window it arrived in (`floor(arrival / APEX_PLAID_WEBHOOK_REPEAT_WINDOW_SECONDS)`,
one day by default, Plaid's retry period). The same body inside one window is one event
(Plaid's retries dedupe); in a later window it is a new event, written as a new version
(its arrival time) of the same record, whose id leaves the window out.
"""

from __future__ import annotations

import hashlib
import math
import re
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
#: the record id part of an event id: `<type>.<code>.<sha256 prefix>`
_MAX_RECORD_ID = 240
_WINDOW_SUFFIX = re.compile(r"~w\d+$")


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
    #: `<type>.<code>.<sha256 of the body>`: the same body is the same record
    record_id: str
    #: `record_id`, plus `~w<repeat window>` when the arrival time is known (see the module)
    event_id: str

    @property
    def is_sync_trigger(self) -> bool:
        return self.webhook_type == "TRANSACTIONS" and self.webhook_code in SYNC_TRIGGERS


def repeat_window(arrival: float, window_seconds: float) -> int:
    """The index of the repeat window `arrival` (unix seconds) falls in."""
    return math.floor(arrival / window_seconds)


def read(body: bytes, *, arrival: float | None = None, window_seconds: float | None = None) -> Webhook:
    """Check a raw body. With `arrival` and `window_seconds` the event id carries the
    repeat window (see the module): Plaid's retries inside it are one event."""
    doc = decode(body)
    hook = read_doc(doc, hashlib.sha256(body).hexdigest())
    if arrival is None or window_seconds is None:
        return hook
    window = repeat_window(arrival, window_seconds)
    return Webhook(
        doc=hook.doc,
        webhook_type=hook.webhook_type,
        webhook_code=hook.webhook_code,
        item_id=hook.item_id,
        record_id=hook.record_id,
        event_id=f"{hook.record_id}~w{window}",
    )


def record_id_of(event_id: str) -> str:
    """The record id of a webhook event id (its repeat window left out; event ids stored
    before windows existed have none)."""
    return _WINDOW_SUFFIX.sub("", event_id)


def read_doc(doc: object, digest: str) -> Webhook:
    """Check a decoded body; `digest` is the SHA-256 of the body as Plaid sent it."""
    if not isinstance(doc, dict):
        raise PayloadError(f"Plaid webhook body must be a JSON object, got {type(doc).__name__}")
    wtype = _field(doc, "webhook_type", required=True)
    code = _field(doc, "webhook_code", required=True)
    assert wtype is not None
    assert code is not None
    item_id = _field(doc, "item_id", required=wtype == "TRANSACTIONS")
    record_id = f"{wtype.lower()}.{code.lower()}.{digest[:40]}"[:_MAX_RECORD_ID]
    return Webhook(
        doc=doc, webhook_type=wtype, webhook_code=code, item_id=item_id, record_id=record_id, event_id=record_id
    )
