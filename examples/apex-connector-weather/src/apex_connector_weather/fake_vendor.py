"""A fake NWS alerts API (`GET /alerts`) for tests and demos, served over real HTTP.

It answers in the shape of api.weather.gov: a GeoJSON `FeatureCollection` of CAP
messages, newest `sent` first, `pagination.next` a link whose `cursor` parameter is an
opaque token (absent on the last page), `application/problem+json` errors, 403 without a User-Agent. The page token
is a keyset (the last `sent` and id served), so alerts published while a run pages do not
shift the pages. Faults are queued with `fail(status, retry_after=...)`.
"""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from litestar import Litestar, Request, Response, get

from apex_platform.testing.vendor_server import FakeVendorServer

PROBLEMS = "https://api.weather.gov/problems"
CONTEXT: list[Any] = [
    "https://geojson.org/geojson-ld/geojson-context.jsonld",
    {"@version": "1.1", "wx": "https://api.weather.gov/ontology#", "@vocab": "https://api.weather.gov/ontology#"},
]


def alert(
    alert_id: str,
    *,
    sent: str,
    event: str = "Winter Storm Warning",
    severity: str = "Severe",
    ugc: list[str] | None = None,
    area_desc: str = "",
    message_type: str = "Alert",
    references: list[str] | None = None,
    status: str = "Actual",
    expires: str | None = None,
) -> dict[str, Any]:
    """A feature in the shape of the API's, with the fields a test cares about."""
    url = f"https://api.weather.gov/alerts/{alert_id}"
    codes = ugc or []
    return {
        "id": url,
        "type": "Feature",
        "geometry": None,
        "properties": {
            "@id": url,
            "@type": "wx:Alert",
            "id": alert_id,
            "areaDesc": area_desc or "; ".join(codes),
            "geocode": {"SAME": [], "UGC": codes},
            "affectedZones": [f"https://api.weather.gov/zones/county/{c}" for c in codes],
            "references": [
                {"@id": f"https://api.weather.gov/alerts/{r}", "identifier": r, "sender": "w-nws.webmaster@noaa.gov"}
                for r in references or []
            ],
            "sent": sent,
            "effective": sent,
            "onset": sent,
            "expires": expires or sent,
            "ends": None,
            "status": status,
            "messageType": message_type,
            "category": "Met",
            "severity": severity,
            "certainty": "Likely",
            "urgency": "Expected",
            "event": event,
            "sender": "w-nws.webmaster@noaa.gov",
            "senderName": "NWS Test Office",
            "headline": f"{event} issued by NWS Test Office",
            "description": f"* WHAT...{event}.",
            "instruction": None,
            "response": "Prepare",
        },
    }


@dataclass
class FakeNws:
    """The alerts the fake serves, the requests it got, the faults it will answer with."""

    features: list[dict[str, Any]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    faults: list[tuple[int, str | None]] = field(default_factory=list)
    #: where `pagination.next` links point (a test may make it point elsewhere)
    link_base: str = "https://api.weather.gov"
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def publish(self, *features: dict[str, Any]) -> None:
        with self._lock:
            self.features.extend(features)

    def fail(self, status: int, *, retry_after: str | None = None, times: int = 1) -> None:
        with self._lock:
            self.faults.extend([(status, retry_after)] * times)

    def alerts(self, query: dict[str, str], user_agent: str | None) -> Response[Any]:
        with self._lock:
            self.requests.append({"query": dict(query), "user_agent": user_agent})
            if self.faults:
                status, retry_after = self.faults.pop(0)
                return _problem(status, "Service Unavailable" if status >= 500 else "Error", retry_after)
            features = list(self.features)
        if not user_agent:
            return _problem(403, "Forbidden: a User-Agent header is required")
        try:
            limit = int(query.get("limit", "500"))
            start = datetime.fromisoformat(query["start"]) if "start" in query else None
            after = _decode(query["cursor"]) if "cursor" in query else None
        except (ValueError, KeyError):
            return _problem(400, "Bad Request: a parameter is invalid")
        if not 1 <= limit <= 500:
            return _problem(400, "Bad Request: limit must be between 1 and 500")
        area = query.get("area")
        chosen = [
            f
            for f in features
            if (area is None or any(c[:2] == area for c in f["properties"]["geocode"]["UGC"]))
            and (start is None or _sent(f) >= start)
        ]
        chosen.sort(key=lambda f: (_sent(f), f["properties"]["id"]), reverse=True)
        if after is not None:
            chosen = [f for f in chosen if (_sent(f), f["properties"]["id"]) < after]
        page = chosen[:limit]
        doc: dict[str, Any] = {"@context": CONTEXT, "type": "FeatureCollection", "features": page, "title": "Alerts"}
        if len(chosen) > limit:
            last = page[-1]["properties"]
            token = _encode(last["sent"], last["id"])
            rest = sorted((k, v) for k, v in query.items() if k != "cursor")
            doc["pagination"] = {"next": f"{self.link_base}/alerts?{urlencode([*rest, ('cursor', token)])}"}
        return Response(json.dumps(doc).encode(), media_type="application/geo+json")


def _sent(feature: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(feature["properties"]["sent"])


def _encode(sent: str, alert_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([sent, alert_id]).encode()).decode().rstrip("=")


def _decode(token: str) -> tuple[datetime, str]:
    sent, alert_id = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    return datetime.fromisoformat(sent), str(alert_id)


def _problem(status: int, title: str, retry_after: str | None = None) -> Response[Any]:
    body = {"correlationId": "fake0001", "title": title, "type": f"{PROBLEMS}/Error", "status": status}
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return Response(
        json.dumps(body).encode(), status_code=status, media_type="application/problem+json", headers=headers
    )


def create_app(fake: FakeNws) -> Litestar:
    @get("/alerts")
    async def alerts(request: Request[Any, Any, Any]) -> Response[Any]:
        query = {k: str(v) for k, v in request.query_params.items()}
        return fake.alerts(query, request.headers.get("user-agent"))

    return Litestar(route_handlers=[alerts], logging_config=None, openapi_config=None)


class FakeNwsServer(FakeVendorServer):
    """Serves a `FakeNws` on 127.0.0.1 (a free port) in a background thread."""

    def __init__(self, fake: FakeNws | None = None) -> None:
        self.fake = fake or FakeNws()
        super().__init__(create_app(self.fake), name="fake NWS")
