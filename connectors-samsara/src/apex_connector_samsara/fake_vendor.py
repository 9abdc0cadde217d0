"""A fake Samsara for tests and the demo: the vehicle stats feed over real HTTP, and a sender of
signed webhooks.

The feed serves the documented shape ``{data: [{id, name, externalIds, gps: [...],
engineStates: [...]}], pagination: {endCursor, hasNextPage}}`` for `vehicles` x `points`
deterministic GPS points (seeded), `page_size` stat points per page, with a bearer-token
check and injectable failures: every k-th call 429 with ``Retry-After``, 5xx, 403, and
cursor expiry (400 with Samsara's error body ``{message, requestId}``).

Differences from Samsara, on purpose: the first call without ``after`` starts at the
beginning of the data set (Samsara returns the last known values), so a test knows exactly
which points must arrive.
"""

from __future__ import annotations

import base64
import copy
import json
import math
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from litestar import Litestar, Request, Response, get

from apex_connector_samsara import signatures
from apex_connector_samsara.feed import FEED_PATH
from apex_connector_samsara.routes_feed import ROUTES_FEED_PATH
from apex_platform.testing.vendor_server import FakeVendorServer

START = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
_CITIES = [
    ("Columbus, OH", 39.9612, -82.9988),
    ("Indianapolis, IN", 39.7684, -86.1581),
    ("Dayton, OH", 39.7589, -84.1916),
    ("Louisville, KY", 38.2527, -85.7585),
    ("Pittsburgh, PA", 40.4406, -79.9959),
]


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


#: (status, JSON body, headers) of one answer
_Answer = tuple[int, dict[str, Any], dict[str, str]]


def vehicle_id(index: int) -> str:
    return str(281474977000000 + index)


@dataclass
class FeedItem:
    vehicle: int
    stat: str
    point: dict[str, Any]


@dataclass
class FakeSamsara:
    """State and behaviour of the fake; change the fault fields between calls."""

    vehicles: int = 10
    points: int = 10
    page_size: int = 500
    token: str = "fake-samsara-token"  # noqa: S105 - a fake server's token
    seed: int = 7
    step_seconds: int = 5
    #: an engine state every n GPS points of a vehicle (0: none)
    engine_every: int = 0
    #: every k-th feed call answers 429 (None: never)
    rate_limit_every: int | None = None
    retry_after: str = "1"
    #: the next n feed calls answer 503
    fail_next_5xx: int = 0
    forbidden: bool = False
    #: seconds each feed call takes (to stop a reader mid-stream in tests)
    delay: float = 0.0
    calls: list[tuple[str | None, int]] = field(default_factory=list)
    #: the route updates feed (`route_update` appends): entries per page, calls, 429s to come
    route_updates: list[dict[str, Any]] = field(default_factory=list)
    route_page_size: int = 100
    route_calls: list[tuple[str | None, int]] = field(default_factory=list)
    routes_rate_limit_next: int = 0
    #: served verbatim (status 200) by the next route feed call, when set
    routes_raw_body: bytes | None = None
    _items: list[FeedItem] = field(default_factory=list, init=False, repr=False)
    _generation: int = field(default=0, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        self._items = self._build()

    # -- data ---------------------------------------------------------------------------------

    def _build(self) -> list[FeedItem]:
        items: list[tuple[datetime, int, int, FeedItem]] = []
        for v in range(self.vehicles):
            rng = random.Random(self.seed * 1_000_003 + v)  # noqa: S311 - deterministic test data
            city, lat, lon = _CITIES[v % len(_CITIES)]
            heading = rng.uniform(0, 360)
            for i in range(self.points):
                moment = START + timedelta(seconds=i * self.step_seconds, milliseconds=v)
                heading = (heading + rng.uniform(-20, 20)) % 360
                speed = round(rng.uniform(0, 68), 1)
                lat += math.cos(math.radians(heading)) * speed * 0.00002
                lon += math.sin(math.radians(heading)) * speed * 0.00002
                point = {
                    "time": _iso(moment),
                    "latitude": round(lat, 6),
                    "longitude": round(lon, 6),
                    "headingDegrees": round(heading),
                    "speedMilesPerHour": speed,
                    "isEcuSpeed": True,
                    "reverseGeo": {"formattedLocation": f"near {city}"},
                }
                items.append((moment, v, 0, FeedItem(v, "gps", point)))
                if self.engine_every and i % self.engine_every == 0:
                    state = "On" if speed > 0 else "Idle"
                    items.append((moment, v, 1, FeedItem(v, "engineStates", {"time": _iso(moment), "value": state})))
        items.sort(key=lambda t: (t[0], t[1], t[2]))
        return [t[3] for t in items]

    @property
    def total(self) -> int:
        """Stat points in the data set (all types)."""
        return len(self._items)

    def expected_ids(self, stat: str = "gps") -> set[str]:
        """Record ids the connector must produce for every point of `stat`."""
        infix = {"gps": "", "engineStates": "engineState:"}[stat]
        return {f"{vehicle_id(i.vehicle)}:{infix}{i.point['time']}" for i in self._items if i.stat == stat}

    def expire_cursors(self) -> None:
        """Every cursor handed out so far becomes expired (Samsara: after 30 days)."""
        self._generation += 1

    # -- cursors ------------------------------------------------------------------------------

    def _cursor(self, offset: int) -> str:
        return base64.urlsafe_b64encode(f"fake:{self._generation}:{offset}".encode()).decode().rstrip("=")

    def _offset(self, cursor: str) -> int | None:
        try:
            text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
            tag, generation, offset = text.split(":")
            if tag != "fake" or int(generation) != self._generation:
                return None
            return int(offset)
        except (ValueError, UnicodeDecodeError):
            return None

    # -- the endpoint -------------------------------------------------------------------------

    def feed(
        self, authorization: str | None, types: str | None, after: str | None
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        """(status, JSON body, headers) of one feed call."""
        if self.delay:
            time.sleep(self.delay)
        with self._lock:
            status, body, headers = self._feed(authorization, types, after)
            self.calls.append((after, status))
            return status, body, headers

    def _error(self, status: int, message: str) -> _Answer:
        return status, {"message": message, "requestId": uuid.uuid4().hex[:16]}, {}

    def _feed(
        self, authorization: str | None, types: str | None, after: str | None
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        if authorization != f"Bearer {self.token}":
            return self._error(401, "Unauthorized")
        if self.forbidden:
            return self._error(403, "Forbidden: token does not have the required scope")
        if self.rate_limit_every and (len(self.calls) + 1) % self.rate_limit_every == 0:
            status, body, _ = self._error(429, "Too Many Requests")
            return status, body, {"Retry-After": self.retry_after}
        if self.fail_next_5xx > 0:
            self.fail_next_5xx -= 1
            return self._error(503, "Service Unavailable")
        wanted = {t.strip() for t in (types or "").split(",") if t.strip()}
        if not wanted:
            return self._error(400, "Invalid value for parameter 'types'")
        offset = 0
        if after:
            found = self._offset(after)
            if found is None:
                return self._error(400, "Invalid 'after' cursor: the cursor is expired or invalid")
            offset = found
        page = self._items[offset : offset + self.page_size]
        end = offset + len(page)
        data: dict[int, dict[str, Any]] = {}
        for item in page:
            if item.stat not in wanted:
                continue
            entry = data.setdefault(
                item.vehicle,
                {
                    "id": vehicle_id(item.vehicle),
                    "name": f"Truck {4400 + item.vehicle}",
                    "externalIds": {"samsara.vin": f"3AKJHHDR5LSLA{item.vehicle:04d}"},
                },
            )
            entry.setdefault(item.stat, []).append(item.point)
        body = {
            "data": list(data.values()),
            "pagination": {"endCursor": self._cursor(end), "hasNextPage": end < len(self._items)},
        }
        return 200, body, {}

    # -- the route updates feed (GET /fleet/routes/audit-logs/feed) ----------------------------

    def route_update(
        self,
        route_id: str,
        stop_id: str,
        operation: str,
        moment: datetime,
        *,
        vehicle: int = 0,
        stops: int = 3,
    ) -> dict[str, Any]:
        """Samsara records a route update (a RouteFeedObject): the stop's new state in
        `changes.after.stops`, the whole route with `expand=route`."""
        state = {"stop arrived": "arrived", "stop departed": "departed"}.get(operation, "en route")
        stop = {"id": stop_id, "state": state, "externalIds": {"siteId": stop_id}}
        if state == "arrived":
            stop["actualArrivalTime"] = _iso(moment)
        if state == "departed":
            stop["actualDepartureTime"] = _iso(moment)
        before = {"id": stop_id, "state": {"arrived": "en route", "departed": "arrived"}.get(state, "scheduled")}
        route_stops = [{"id": f"{route_id}-{n}", "name": f"Stop {n}"} for n in range(stops)]
        if all(rs["id"] != stop_id for rs in route_stops):
            route_stops.append({"id": stop_id, "name": "Stop"})
        route = {
            "id": route_id,
            "name": f"Route {route_id}",
            "externalIds": {},
            "scheduledRouteStartTime": _iso(START),
            "driver": {"id": str(52100 + vehicle), "name": f"Driver {vehicle}"},
            "vehicle": {"id": vehicle_id(vehicle), "name": f"Truck {4400 + vehicle}"},
            "stops": route_stops,
        }
        entry = {
            "time": _iso(moment),
            "type": "route tracking",
            "operation": operation,
            "source": "automatic",
            "route": route,
            "changes": {"before": {"stops": [before]}, "after": {"stops": [stop]}},
        }
        with self._lock:
            self.route_updates.append(entry)
        return entry

    def routes_feed(self, authorization: str | None, after: str | None, expand: str | None) -> _Answer:
        with self._lock:
            answer = self._routes_feed(authorization, after, expand)
            self.route_calls.append((after, answer[0]))
            return answer

    def _routes_feed(self, authorization: str | None, after: str | None, expand: str | None) -> _Answer:
        if authorization != f"Bearer {self.token}":
            return self._error(401, "Unauthorized")
        if self.routes_rate_limit_next > 0:
            self.routes_rate_limit_next -= 1
            status, body, _ = self._error(429, "Too Many Requests")
            return status, body, {"Retry-After": self.retry_after}
        if self.routes_raw_body is not None:
            raw, self.routes_raw_body = self.routes_raw_body, None
            return 200, json.loads(raw), {}
        offset = 0
        if after:
            found = self._offset(after)
            if found is None:
                return self._error(400, "Invalid 'after' cursor: the cursor is expired or invalid")
            offset = found
        page = copy.deepcopy(self.route_updates[offset : offset + self.route_page_size])
        if expand != "route":
            for entry in page:
                entry["route"] = {"id": entry["route"]["id"]}
        end = offset + len(page)
        body = {
            "data": page,
            "pagination": {"endCursor": self._cursor(end), "hasNextPage": end < len(self.route_updates)},
        }
        return 200, body, {}


def route_stop_webhook(entry: dict[str, Any], *, event_id: str | None = None, org_id: int = 20936) -> dict[str, Any]:
    """The RouteStopArrival / RouteStopDeparture webhook (2.0) Samsara sends for a route
    update, in the shape of its documented example: `data` holds the update's driver,
    operation, route, routeStopDetails (the changed stop), time, type and vehicle. A new
    `eventId` unless given: Samsara's retries of one delivery repeat its `eventId`."""
    event_type = {"stop arrived": "RouteStopArrival", "stop departed": "RouteStopDeparture"}[entry["operation"]]
    route = entry["route"]
    return {
        "eventId": event_id or str(uuid.uuid4()),
        "eventTime": entry["time"],
        "eventType": event_type,
        "orgId": org_id,
        "webhookId": "1411751028848270",
        "data": {
            "driver": route.get("driver"),
            "operation": entry["operation"],
            "route": route,
            "routeStopDetails": entry["changes"]["after"]["stops"][0],
            "time": entry["time"],
            "type": entry["type"],
            "vehicle": route.get("vehicle"),
        },
    }


def create_app(fake: FakeSamsara) -> Litestar:
    """The Litestar app serving `fake`."""

    @get(FEED_PATH, sync_to_thread=False)
    def feed(request: Request[Any, Any, Any]) -> Response[Any]:
        status, body, headers = fake.feed(
            request.headers.get("authorization"), request.query_params.get("types"), request.query_params.get("after")
        )
        return Response(body, status_code=status, headers=headers)

    @get(ROUTES_FEED_PATH, sync_to_thread=False)
    def routes_feed(request: Request[Any, Any, Any]) -> Response[Any]:
        status, body, headers = fake.routes_feed(
            request.headers.get("authorization"), request.query_params.get("after"), request.query_params.get("expand")
        )
        return Response(body, status_code=status, headers=headers)

    return Litestar(route_handlers=[feed, routes_feed], logging_config=None, openapi_config=None)


class FakeServer(FakeVendorServer):
    """Serves a `FakeSamsara` on 127.0.0.1 (a free port unless `port` is given) in a background thread."""

    def __init__(self, fake: FakeSamsara | None = None, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.fake = fake or FakeSamsara()
        super().__init__(create_app(self.fake), name="fake Samsara", host=host, port=port, start_timeout=20.0)


def webhook_request(
    event: dict[str, Any], secret: str, *, timestamp: int | None = None
) -> tuple[bytes, dict[str, str]]:
    """Body and headers of a webhook delivery as Samsara sends it (signed with `secret`)."""
    from apex_connector_samsara.samples import encode

    body = encode(event)
    ts = int(time.time()) if timestamp is None else timestamp
    headers = {
        **signatures.sign(body, secret, ts),
        "Content-Type": "application/json",
        "User-Agent": "Samsara-Webhook/fake",
        "X-Samsara-Request": uuid.uuid4().hex,
        "X-Samsara-Event-Type": str(event.get("eventType", "")),
    }
    return body, headers


async def send_webhook(url: str, event: dict[str, Any], secret: str, *, timestamp: int | None = None) -> httpx.Response:
    """POST one signed delivery (Webhooks 1.0 or 2.0: whatever `event` is) to `url`."""
    body, headers = webhook_request(event, secret, timestamp=timestamp)
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.post(url, content=body, headers=headers)
