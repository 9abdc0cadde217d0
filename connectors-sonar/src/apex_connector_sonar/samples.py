"""Sample SONAR data: alert webhooks and the deterministic ticker series the fake serves."""

from __future__ import annotations

import hashlib
import json
from datetime import date
from typing import Any

from apex_connector_sonar.signatures import sign

DEMO_TICKERS = "OTRI.USA,OTRI.ATL,NTI.USA"

ALERTS: list[dict[str, Any]] = [
    {
        "alertId": "al-20260310-otri-atl",
        "name": "Atlanta tender rejections spiking",
        "ticker": "OTRI.ATL",
        "value": 9.84,
        "threshold": 8.0,
        "condition": "above",
        "triggeredAt": "2026-03-10T13:05:00Z",
        "message": "OTRI.ATL rose above 8.00 (9.84): carriers in Atlanta are rejecting more contract tenders.",
    },
    {
        "ticker": "NTI",
        "granularity": "USA",
        "value": 2.31,
        "threshold": 2.5,
        "condition": "below",
        "triggeredAt": "2026-03-10T13:07:30Z",
    },
]


def alerts() -> list[dict[str, Any]]:
    return json.loads(json.dumps(ALERTS))  # type: ignore[no-any-return]


def encode(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode("utf-8")


def sign_headers(
    body: bytes,
    secret: str,
    *,
    header: str = "X-Sonar-Signature",
    encoding: str = "hex",
    timestamp_header: str | None = "X-Sonar-Timestamp",
    now: float | None = None,
) -> dict[str, str]:
    """The headers of an alert delivery signed with `secret` as the connector expects (by
    default with a send time, as the connector requires unless told otherwise)."""
    headers = {"Content-Type": "application/json"}
    timestamp = None
    if timestamp_header:
        import time

        timestamp = str(int(now if now is not None else time.time()))
        headers[timestamp_header] = timestamp
    headers[header] = sign(body, secret, encoding, timestamp)
    return headers


def series_value(index: str, granularity: str, day: date) -> float:
    """A stable, plausible-looking value of a ticker on a day."""
    seed = int(hashlib.sha256(f"{index}.{granularity}".encode()).hexdigest()[:6], 16)
    base = 4.0 + (seed % 700) / 100
    wave = ((day.toordinal() * 7 + seed) % 23) / 10 - 1.1
    return round(base + wave, 2)
