"""Records from Plaid's `/transactions/sync` pages and webhooks. Pure functions: the
caller supplies the version and the time the page was read."""

from __future__ import annotations

import hashlib
import json
import math
import re
from datetime import UTC, date, datetime
from typing import Any

from pydantic import ValidationError

from apex_platform.errors import PayloadError
from apex_platform.models import Entity, Record, Relation

SOURCE = "plaid"
KIND_TRANSACTION = "plaid.transaction"
KIND_ACCOUNT = "plaid.account"
KIND_WEBHOOK = "plaid.webhook"
KIND_UNREADABLE = "plaid.unreadable"

_MAX_NAME = 200
_MAX_TEXT = 4000
_BALANCE_FIELDS = (
    "available",
    "current",
    "limit",
    "iso_currency_code",
    "unofficial_currency_code",
    "last_updated_datetime",
)
_SPACES = re.compile(r"\s+")


def _str(doc: dict[str, Any], key: str) -> str | None:
    value = doc.get(key)
    return value if isinstance(value, str) and value.strip() else None


def _id(doc: dict[str, Any], key: str) -> str | None:
    """An identifier short enough to be a key in every store."""
    value = _str(doc, key)
    return value if value is not None and len(value) <= 256 and value.isprintable() else None


def _num(doc: dict[str, Any], key: str) -> float | int | None:
    value = doc.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value if math.isfinite(value) else None


def _obj(doc: dict[str, Any], key: str) -> dict[str, Any]:
    value = doc.get(key)
    return value if isinstance(value, dict) else {}


def normalized_name(name: str) -> str:
    """The key of a thing known only by name: case-folded, spaces collapsed."""
    return _SPACES.sub(" ", name).strip().casefold()[:_MAX_NAME]


def _when(value: str | None) -> datetime | None:
    """An ISO 8601 date-time, or a date (midnight UTC), as an aware datetime."""
    if not value:
        return None
    try:
        if len(value) <= 10:
            d = date.fromisoformat(value)
            return datetime(d.year, d.month, d.day, tzinfo=UTC)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _money(amount: float | int | None, currency: str | None) -> str:
    if amount is None:
        return "amount unknown"
    return f"{amount:.2f} {currency or ''}".strip()


def _unreadable(entry: object, where: str, version: int, read_at: datetime, item_id: str) -> Record:
    """An entry without the id a record needs: kept, not dropped, under a content id."""
    blob = json.dumps(entry, sort_keys=True, default=str, ensure_ascii=False)
    digest = hashlib.sha256(blob.encode()).hexdigest()[:32]
    return Record(
        source=SOURCE,
        kind=KIND_UNREADABLE,
        id=f"unreadable:{digest}",
        version=version,
        occurred_at=read_at,
        title=f"unreadable {where} entry of plaid item {item_id}",
        text=blob[:_MAX_TEXT],
        attributes={"item_id": item_id, "where": where, "entry": blob[:_MAX_TEXT]},
    )


def transaction_record(txn: dict[str, Any], item_id: str, version: int, read_at: datetime) -> Record:
    tid = txn["transaction_id"]
    account_id = _id(txn, "account_id")
    amount = _num(txn, "amount")
    currency = _str(txn, "iso_currency_code") or _str(txn, "unofficial_currency_code")
    name = _str(txn, "name") or _str(txn, "original_description")
    merchant_name = _str(txn, "merchant_name")
    merchant_id = _id(txn, "merchant_entity_id")
    pfc = _obj(txn, "personal_finance_category")
    primary, detailed = _id(pfc, "primary"), _id(pfc, "detailed")
    pending = txn.get("pending") if isinstance(txn.get("pending"), bool) else None
    occurred = (
        _when(_str(txn, "authorized_datetime"))
        or _when(_str(txn, "datetime"))
        or _when(_str(txn, "authorized_date"))
        or _when(_str(txn, "date"))
        or read_at
    )
    counterparties = [c for c in txn.get("counterparties") or [] if isinstance(c, dict)]

    tx_ref = f"Transaction:{tid}"
    entities = [
        Entity(
            type="Transaction",
            key=tid,
            properties={
                k: v
                for k, v in {
                    "amount": amount,
                    "currency": currency,
                    "date": _str(txn, "date"),
                    "name": name,
                    "pending": pending,
                }.items()
                if v is not None
            },
        )
    ]
    relations: list[Relation] = []
    if account_id:
        entities.append(Entity(type="Account", key=account_id))
        relations.append(Relation(src=tx_ref, type="POSTED_TO", dst=f"Account:{account_id}"))
    merchant_key = merchant_id or (f"name:{normalized_name(merchant_name)}" if merchant_name else None)
    if merchant_key:
        props = {"name": merchant_name, "entity_id": merchant_id, "website": _str(txn, "website")}
        entities.append(Entity(type="Merchant", key=merchant_key, properties={k: v for k, v in props.items() if v}))
        relations.append(Relation(src=tx_ref, type="PAID_TO", dst=f"Merchant:{merchant_key}"))
    names: list[str] = []
    for party in counterparties:
        pname, pid, ptype = _str(party, "name"), _id(party, "entity_id"), _str(party, "type")
        key = pid or (f"name:{normalized_name(pname)}" if pname else None)
        if key is None:
            continue
        if pname:
            names.append(pname)
        props = {"name": pname, "type": ptype, "entity_id": pid, "website": _str(party, "website")}
        entities.append(Entity(type="Counterparty", key=key, properties={k: v for k, v in props.items() if v}))
        relations.append(
            Relation(
                src=tx_ref,
                type="WITH_COUNTERPARTY",
                dst=f"Counterparty:{key}",
                properties={"type": ptype} if ptype else {},
            )
        )
    category = detailed or primary
    if category:
        entities.append(
            Entity(
                type="Category",
                key=category,
                properties={k: v for k, v in {"primary": primary, "detailed": detailed}.items() if v},
            )
        )
        relations.append(Relation(src=tx_ref, type="IN_CATEGORY", dst=f"Category:{category}"))

    who = merchant_name or name or "unknown payee"
    direction = "" if amount is None else (" (money out)" if amount > 0 else " (money in)")
    lines = [
        f"{'Pending t' if pending else 'T'}ransaction {_money(amount, currency)}{direction} at {who}"
        f" on {_str(txn, 'date') or occurred.date().isoformat()}.",
    ]
    if name and name != who:
        lines.append(f"Description: {name}.")
    if category:
        lines.append(f"Category: {primary or ''}{' / ' + detailed if detailed and primary else ''}.")
    if names:
        lines.append(f"Counterparties: {', '.join(names)}.")
    if account_id:
        lines.append(f"Account {account_id} of item {item_id}.")
    attributes = {
        "item_id": item_id,
        "account_id": account_id,
        "amount": amount,
        "iso_currency_code": _str(txn, "iso_currency_code"),
        "unofficial_currency_code": _str(txn, "unofficial_currency_code"),
        "date": _str(txn, "date"),
        "authorized_date": _str(txn, "authorized_date"),
        "datetime": _str(txn, "datetime"),
        "authorized_datetime": _str(txn, "authorized_datetime"),
        "name": name,
        "merchant_name": merchant_name,
        "merchant_entity_id": merchant_id,
        "pending": pending,
        "pending_transaction_id": _str(txn, "pending_transaction_id"),
        "payment_channel": _str(txn, "payment_channel"),
        "transaction_code": _str(txn, "transaction_code"),
        "category_primary": primary,
        "category_detailed": detailed,
        "category_confidence": _str(pfc, "confidence_level"),
        "counterparties": names,
        "location": {k: v for k, v in _obj(txn, "location").items() if isinstance(v, str | int | float) and v != ""},
        "website": _str(txn, "website"),
        "check_number": _str(txn, "check_number"),
    }
    return Record(
        source=SOURCE,
        kind=KIND_TRANSACTION,
        id=tid,
        version=version,
        occurred_at=occurred,
        title=f"{who}: {_money(amount, currency)}"[:300],
        text="\n".join(lines)[:_MAX_TEXT],
        attributes={k: v for k, v in attributes.items() if v not in (None, [], {})},
        entities=tuple(entities),
        relations=tuple(relations),
    )


def account_record(acct: dict[str, Any], item_id: str, version: int, read_at: datetime) -> Record:
    aid = acct["account_id"]
    balances = {
        k: v
        for k, v in _obj(acct, "balances").items()
        if k in _BALANCE_FIELDS
        and (v is None or isinstance(v, str) or (isinstance(v, int | float) and not isinstance(v, bool)))
    }
    name = _str(acct, "name") or _str(acct, "official_name") or aid
    mask = _str(acct, "mask")
    props = {
        "name": name,
        "mask": mask,
        "type": _str(acct, "type"),
        "subtype": _str(acct, "subtype"),
        "official_name": _str(acct, "official_name"),
    }
    props = {k: v for k, v in props.items() if v}
    code = balances.get("iso_currency_code") or balances.get("unofficial_currency_code")
    currency = code if isinstance(code, str) else None
    lines = [f"{name}{' ending ' + mask if mask else ''} ({props.get('type', '?')}/{props.get('subtype', '?')})."]
    for label in ("current", "available", "limit"):
        value = balances.get(label)
        if isinstance(value, int | float):
            lines.append(f"{label.capitalize()} balance: {_money(value, currency)}.")
    return Record(
        source=SOURCE,
        kind=KIND_ACCOUNT,
        id=aid,
        version=version,
        occurred_at=read_at,
        title=f"{name}{' ••' + mask if mask else ''}"[:300],
        text="\n".join(lines),
        attributes={"item_id": item_id, **props, "balances": balances},
        entities=(
            Entity(type="Account", key=aid, properties=props),
            Entity(type="Item", key=item_id),
        ),
        relations=(Relation(src=f"Account:{aid}", type="BELONGS_TO", dst=f"Item:{item_id}"),),
    )


def tombstone(removed: dict[str, Any], item_id: str, version: int, read_at: datetime) -> Record:
    """A transaction Plaid removed: deleted in every store."""
    account_id = _id(removed, "account_id")
    return Record(
        source=SOURCE,
        kind=KIND_TRANSACTION,
        id=removed["transaction_id"],
        version=version,
        occurred_at=read_at,
        attributes={"item_id": item_id, **({"account_id": account_id} if account_id else {})},
        deleted=True,
    )


def _has_id(entry: object, key: str) -> bool:
    if not isinstance(entry, dict):
        return False
    value = entry.get(key)
    return isinstance(value, str) and 0 < len(value.strip()) <= 512


def page_records(doc: dict[str, Any], item_id: str, version: int, read_at: datetime) -> list[Record]:
    """Every record of one `/transactions/sync` answer: accounts (balances), added and
    modified transactions as upserts, removed ones as tombstones."""
    for key in ("added", "modified", "removed", "accounts"):
        if doc.get(key) is not None and not isinstance(doc.get(key), list):
            raise PayloadError(f"plaid item {item_id}: /transactions/sync '{key}' is not an array")
    builders = (
        ("accounts", "account_id", account_record),
        ("added", "transaction_id", transaction_record),
        ("modified", "transaction_id", transaction_record),
        ("removed", "transaction_id", tombstone),
    )
    out: list[Record] = []
    for where, id_key, build in builders:
        for entry in doc.get(where) or []:
            record = None
            if _has_id(entry, id_key):
                try:
                    record = build(entry, item_id, version, read_at)
                except (ValidationError, TypeError, ValueError, AttributeError):
                    # a field of an unexpected type, or one no store can hold: keep the raw entry
                    record = None
            out.append(record or _unreadable(entry, where, version, read_at, item_id))
    return out


def webhook_record(payload: dict[str, Any], event_id: str, received_at: datetime) -> Record:
    """A Plaid webhook that is not a sync trigger (ITEM errors, expirations …), kept as is."""
    wtype = _str(payload, "webhook_type") or "UNKNOWN"
    code = _str(payload, "webhook_code") or "UNKNOWN"
    item_id = _str(payload, "item_id")
    error = _obj(payload, "error")
    lines = [f"Plaid {wtype} webhook {code}{' for item ' + item_id if item_id else ''}."]
    if error:
        lines.append(
            f"Error {error.get('error_type', '?')}/{error.get('error_code', '?')}: {error.get('error_message', '')}"
        )
    return Record(
        source=SOURCE,
        kind=KIND_WEBHOOK,
        id=event_id,
        version=int(received_at.timestamp() * 1_000_000),
        occurred_at=received_at,
        title=f"{wtype} {code}"[:300],
        text="\n".join(lines)[:_MAX_TEXT],
        attributes={
            "webhook_type": wtype,
            "webhook_code": code,
            "item_id": item_id,
            "environment": _str(payload, "environment"),
            "error_code": _str(error, "error_code"),
            "payload": payload,
        },
        entities=(Entity(type="Item", key=item_id),) if item_id else (),
    )
