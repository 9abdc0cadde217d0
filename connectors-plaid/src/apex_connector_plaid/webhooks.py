"""Decoding Plaid webhook bodies (`{webhook_type, webhook_code, item_id, …}`)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from apex_platform.errors import PayloadError

#: TRANSACTIONS webhooks that mean "this Item has new transaction data": each wakes the
#: Item's poller. SYNC_UPDATES_AVAILABLE is what /transactions/sync users get; the others
#: are the older /transactions/get notices, which some Items still receive.
SYNC_TRIGGERS = frozenset(
    {"SYNC_UPDATES_AVAILABLE", "DEFAULT_UPDATE", "INITIAL_UPDATE", "HISTORICAL_UPDATE", "TRANSACTIONS_REMOVED"}
)
MAX_DEPTH = 32
_MAX_FIELD = 256


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _depth_ok(doc: object) -> bool:
    stack: list[tuple[object, int]] = [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                return False
            items = value.values() if isinstance(value, dict) else value
            stack.extend((item, depth + 1) for item in items)
        elif isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise PayloadError("Plaid webhook body contains an unpaired UTF-16 surrogate escape") from None
    return True


def decode(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or `PayloadError` saying what is wrong."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(f"Plaid webhook body is not UTF-8 (invalid byte at offset {exc.start})") from None
    if not text.strip():
        raise PayloadError("Plaid webhook body is empty; expected a JSON object")
    try:
        doc = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise PayloadError(
            f"Plaid webhook body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise PayloadError(f"Plaid webhook body nests deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:
        raise PayloadError(f"Plaid webhook body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise PayloadError(f"Plaid webhook body must be a JSON object, got {type(doc).__name__}")
    if not _depth_ok(doc):
        raise PayloadError(f"Plaid webhook body nests deeper than {MAX_DEPTH} levels")
    return doc


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
