"""QuickBooks objects as Apex records (pure: no I/O, no clock).

Record ids are `<realmId>:<entity>:<Id>`: QuickBooks ids are unique per entity type only
(Invoice 5 and Payment 5 both exist), and per company.

Versions: `LastUpdatedTime` in milliseconds * 1000 + min(SyncToken, 999), i.e. the time
in microseconds with the sub-millisecond digits replaced by the SyncToken. QuickBooks keeps
`LastUpdatedTime` to the second, and two saves inside one second differ only by their
SyncToken (which QuickBooks increments on every save), so the tie-breaker keeps the
version monotonic. SyncTokens beyond 999 inside one second would share a version (the
later write then wins as a correction). A deletion takes 999: it wins over every live
version of its second. Any date up to year 9999 stays far below 2**63 (a full
microsecond time * 1000 would overflow a signed 64-bit column after the year 2262).
"""

from __future__ import annotations

from typing import Any

from apex_connector_financial.cdc import Change, parse_time
from apex_platform.models import Entity, Record, Relation

SOURCE = "financial"
KINDS = {
    "Invoice": "financial.invoice",
    "Payment": "financial.payment",
    "Bill": "financial.bill",
    "Customer": "financial.customer",
    "Vendor": "financial.vendor",
}
_MAX_LINES = 200
_MAX_TEXT = 400


def kind_of(entity: str) -> str:
    return KINDS.get(entity) or f"{SOURCE}.{entity.lower()}"


def record_id(realm: str, entity: str, oid: str) -> str:
    return f"{realm}:{entity.lower()}:{oid}"


def entity_ref(realm: str, entity: str, oid: str) -> str:
    """`Invoice:qbo:<realm>:<Id>`: the entity a QuickBooks object is, keyed by company and id."""
    return f"{entity}:qbo:{realm}:{oid}"


def version_of(change: Change) -> int:
    millis = int(change.updated.timestamp()) * 1000 + change.updated.microsecond // 1000
    tie = 999 if change.deleted else min(change.sync_token or 0, 999)
    return millis * 1000 + tie


def _s(value: Any, limit: int = _MAX_TEXT) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str | int | float):
        text = str(value).strip()
        return text[:limit] if text else None
    return None


def _num(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _ref(body: dict[str, Any], name: str) -> tuple[str | None, str | None]:
    """`{"CustomerRef": {"value": "3", "name": "Acme"}}` → ("3", "Acme")."""
    ref = body.get(name)
    if not isinstance(ref, dict):
        return None, None
    return _s(ref.get("value"), 64), _s(ref.get("name"))


def _date(value: Any) -> str | None:
    text = _s(value, 40)
    if text is None:
        return None
    return text if parse_time(text if "T" in text else f"{text}T00:00:00+00:00") else None


def _lines(body: dict[str, Any]) -> list[dict[str, Any]]:
    raw = body.get("Line")
    out: list[dict[str, Any]] = []
    for line in raw[:_MAX_LINES] if isinstance(raw, list) else []:
        if not isinstance(line, dict):
            continue
        detail_type = _s(line.get("DetailType"), 64)
        detail = line.get(detail_type) if detail_type else None
        item: dict[str, Any] = {
            "line_id": _s(line.get("Id"), 64),
            "description": _s(line.get("Description")),
            "amount": _num(line.get("Amount")),
            "detail_type": detail_type,
        }
        if isinstance(detail, dict):
            for ref_name in ("ItemRef", "AccountRef"):
                ref_id, ref_name_value = _ref(detail, ref_name)
                if ref_id or ref_name_value:
                    item[ref_name[:-3].lower()] = ref_name_value or ref_id
            if _num(detail.get("Qty")) is not None:
                item["quantity"] = _num(detail.get("Qty"))
            if _num(detail.get("UnitPrice")) is not None:
                item["unit_price"] = _num(detail.get("UnitPrice"))
        out.append({k: v for k, v in item.items() if v is not None})
    return out


def _linked(body: dict[str, Any], txn_type: str) -> list[str]:
    """Ids of the transactions of one type a payment or bill payment applies to (LinkedTxn)."""
    ids: list[str] = []
    lines = body.get("Line")
    for line in lines if isinstance(lines, list) else []:
        links = line.get("LinkedTxn") if isinstance(line, dict) else None
        for link in links if isinstance(links, list) else []:
            if isinstance(link, dict) and link.get("TxnType") == txn_type:
                txn = _s(link.get("TxnId"), 64)
                if txn and txn not in ids:
                    ids.append(txn)
    return ids


def _party_name(body: dict[str, Any]) -> str | None:
    return _s(body.get("DisplayName")) or _s(body.get("CompanyName")) or _s(body.get("FullyQualifiedName"))


def build_record(realm: str, change: Change) -> Record:
    """The record of one changed object; a tombstone when QuickBooks says it was deleted."""
    entity, body = change.entity, change.body
    base: dict[str, Any] = {
        "source": SOURCE,
        "kind": kind_of(entity),
        "id": record_id(realm, entity, change.id),
        "version": version_of(change),
        "occurred_at": change.updated,
    }
    if change.deleted:
        return Record(
            **base,
            title=f"deleted QuickBooks {entity} {change.id}",
            attributes={"realm_id": realm, "entity": entity, "qbo_id": change.id},
            deleted=True,
        )
    me = entity_ref(realm, entity, change.id)
    currency = _ref(body, "CurrencyRef")[0]
    attributes: dict[str, Any] = {
        "realm_id": realm,
        "entity": entity,
        "qbo_id": change.id,
        "sync_token": change.sync_token,
        "created_at": _s(
            (body.get("MetaData") or {}).get("CreateTime") if isinstance(body.get("MetaData"), dict) else None, 40
        ),
        "updated_at": change.updated.isoformat(),
    }
    props: dict[str, Any] = {"qbo_id": change.id, "realm_id": realm}
    relations: list[Relation] = []
    others: list[Entity] = []
    lines_text: list[str] = []
    title = f"QuickBooks {entity} {change.id}"

    if entity in ("Invoice", "Bill", "Payment") or "TotalAmt" in body:
        total = _num(body.get("TotalAmt"))
        attributes.update(
            {
                "doc_number": _s(body.get("DocNumber"), 64),
                "txn_date": _date(body.get("TxnDate")),
                "due_date": _date(body.get("DueDate")),
                # amount next to currency: the entities enricher makes an Amount of the pair
                "amount": total,
                "currency": currency,
                "balance": _num(body.get("Balance")),
                "private_note": _s(body.get("PrivateNote")),
            }
        )
        lines = _lines(body)
        if lines:
            attributes["lines"] = lines
            lines_text = [
                f"- {ln.get('description') or ln.get('item') or ln.get('detail_type', 'line')}: {ln.get('amount', '')}"
                for ln in lines[:40]
            ]
        props.update({"doc_number": attributes["doc_number"], "amount": total, "currency": currency})

    if entity == "Invoice":
        cust_id, cust_name = _ref(body, "CustomerRef")
        attributes.update({"customer_id": cust_id, "customer": cust_name})
        if cust_id:
            others.append(
                Entity(
                    type="Customer", key=f"qbo:{realm}:{cust_id}", properties={"name": cust_name} if cust_name else {}
                )
            )
            relations.append(Relation(src=me, type="FOR_CUSTOMER", dst=entity_ref(realm, "Customer", cust_id)))
        title = f"Invoice {attributes['doc_number'] or change.id}" + (f" to {cust_name}" if cust_name else "")
    elif entity == "Payment":
        cust_id, cust_name = _ref(body, "CustomerRef")
        attributes.update(
            {"customer_id": cust_id, "customer": cust_name, "unapplied_amount": _num(body.get("UnappliedAmt"))}
        )
        invoices = _linked(body, "Invoice")
        attributes["invoice_ids"] = invoices
        for inv in invoices:
            others.append(Entity(type="Invoice", key=f"qbo:{realm}:{inv}"))
            relations.append(Relation(src=me, type="PAYS", dst=entity_ref(realm, "Invoice", inv)))
        title = f"Payment {change.id}" + (f" from {cust_name}" if cust_name else "")
    elif entity == "Bill":
        vendor_id, vendor_name = _ref(body, "VendorRef")
        attributes.update({"vendor_id": vendor_id, "vendor": vendor_name})
        if vendor_id:
            others.append(
                Entity(
                    type="Vendor",
                    key=f"qbo:{realm}:{vendor_id}",
                    properties={"name": vendor_name} if vendor_name else {},
                )
            )
            relations.append(Relation(src=me, type="FROM_VENDOR", dst=entity_ref(realm, "Vendor", vendor_id)))
        title = f"Bill {attributes['doc_number'] or change.id}" + (f" from {vendor_name}" if vendor_name else "")
    elif entity in ("Customer", "Vendor"):
        name = _party_name(body)
        email = body.get("PrimaryEmailAddr")
        phone = body.get("PrimaryPhone")
        attributes.update(
            {
                "display_name": name,
                "company_name": _s(body.get("CompanyName")),
                "email": _s(email.get("Address"), 320) if isinstance(email, dict) else None,
                "phone": _s(phone.get("FreeFormNumber"), 64) if isinstance(phone, dict) else None,
                "balance": _num(body.get("Balance")),
                "currency": currency,
                "active": body.get("Active") if isinstance(body.get("Active"), bool) else None,
            }
        )
        props.update({"name": name, "email": attributes["email"]})
        title = f"{entity} {name or change.id}"

    attributes = {k: v for k, v in attributes.items() if v is not None}
    props = {k: v for k, v in props.items() if v is not None}
    etype = entity if entity[0].isalpha() else f"Qbo{entity}"
    entities = [Entity(type=etype, key=me.split(":", 1)[1], properties=props), *others]
    summary = [f"{k}: {v}" for k, v in attributes.items() if k not in ("lines",) and not isinstance(v, list | dict)]
    return Record(
        **base,
        title=title[:300],
        text="\n".join(summary + lines_text),
        attributes=attributes,
        entities=tuple(entities),
        relations=tuple(relations),
    )
