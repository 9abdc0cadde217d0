"""SONAR alert webhooks: decoding a delivery and its `sonar.alert` record.

Assumed body (no public schema exists; every field but the ticker is optional):
``{"alertId", "ticker": "OTRI.ATL" | "OTRI", "granularity": "ATL", "value", "threshold",
"condition": "above" | "below" | …, "triggeredAt": ISO time, "message", "name"}``.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from typing import Any

from apex_connector_sonar.tickers import SOURCE, Ticker
from apex_platform.errors import PayloadError
from apex_platform.models import Record
from apex_platform.payloads import decode_json_object

KIND_ALERT = "sonar.alert"
_SAFE_ID = re.compile(r"^[A-Za-z0-9_.:@-]{1,200}$")
MAX_DEPTH = 32


def decode(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or `PayloadError` saying what is wrong."""
    return decode_json_object(body, what="SONAR alert body", max_depth=MAX_DEPTH)


def ticker_of(doc: dict[str, Any]) -> Ticker:
    raw = doc.get("ticker")
    if not isinstance(raw, str) or not raw.strip():
        raise PayloadError('SONAR alert has no \'ticker\' (e.g. "OTRI.ATL", or "OTRI" with "granularity")')
    symbol = raw.strip()
    granularity = doc.get("granularity") or doc.get("market")
    if "." not in symbol:
        if not isinstance(granularity, str) or not granularity.strip():
            raise PayloadError(f"SONAR alert ticker {symbol!r} has no granularity (\"OTRI.ATL\" or a 'granularity')")
        symbol = f"{symbol}.{granularity.strip()}"
    return Ticker.parse(symbol)


def time_us(value: Any) -> int | None:
    if isinstance(value, str) and value.strip():
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return int(parsed.timestamp() * 1_000_000)
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < 1e11:
        return int(value * 1_000_000)
    return None


def event_id(doc: dict[str, Any], ticker: Ticker) -> str:
    """The alert id, or a hash of what identifies one firing (ticker, time, value)."""
    raw = doc.get("alertId") or doc.get("id")
    if isinstance(raw, str | int) and not isinstance(raw, bool) and str(raw).strip():
        text = str(raw).strip()
        return text if _SAFE_ID.match(text) else "a-" + hashlib.sha256(text.encode()).hexdigest()[:40]
    basis = json.dumps([ticker.symbol, doc.get("triggeredAt"), doc.get("value"), doc.get("name")], default=str)
    return f"{ticker.symbol}-" + hashlib.sha256(basis.encode()).hexdigest()[:24]


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def alert_record(doc: dict[str, Any], eid: str, received: datetime) -> Record:
    ticker = ticker_of(doc)
    at_us = time_us(doc.get("triggeredAt") or doc.get("timestamp"))
    version = at_us if at_us is not None else int(received.timestamp() * 1_000_000)
    value, threshold = _number(doc.get("value")), _number(doc.get("threshold"))
    condition = doc.get("condition") if isinstance(doc.get("condition"), str) else None
    name = doc.get("name") if isinstance(doc.get("name"), str) else None
    message = doc.get("message") if isinstance(doc.get("message"), str) else None
    parts = [f"SONAR alert: {ticker.symbol}"]
    if condition and threshold is not None:
        parts.append(f"{condition} {threshold:g}")
    if value is not None:
        parts.append(f"(now {value:g})")
    title = " ".join(parts)
    entities, relations = ticker.entities()
    return Record(
        source=SOURCE,
        kind=KIND_ALERT,
        id=f"alert:{eid}",
        version=version,
        occurred_at=datetime.fromtimestamp(version / 1_000_000, UTC),
        title=(name + ": " + title if name else title)[:500],
        text=(message or title)[:10_000],
        attributes={
            "alert_id": eid,
            "ticker": ticker.symbol,
            "index": ticker.index,
            "granularity": ticker.granularity,
            "value": value,
            "threshold": threshold,
            "condition": condition,
            "name": name,
            "triggered_at": doc.get("triggeredAt") if isinstance(doc.get("triggeredAt"), str) else None,
            "payload": doc,
        },
        entities=tuple(entities),
        relations=tuple(relations),
    )
