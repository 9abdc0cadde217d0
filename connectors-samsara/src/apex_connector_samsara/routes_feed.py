"""Samsara's route updates feed (`GET /fleet/routes/audit-logs/feed?expand=route`), read
for reconciliation: the stop arrivals and departures its webhooks may have missed.

Samsara: "a feed of immutable, append-only updates for routes"; each entry is a route
update (`time`, `type: route tracking`, `operation` such as `stop arrived` / `stop
departed`, `source`, `route`, `changes.before/after.stops` — only the stops that changed),
paged with `after=<endCursor>` and `pagination.hasNextPage`. A RouteStopArrival or
RouteStopDeparture webhook (Webhooks 2.0) carries the same route update as its `data`.

Webhook and feed share no event id (the webhook's `eventId` is not in the feed), so a listed
update is committed under a key of its own, stable across passes:
`route-stop:<route id>:<stop id>:arrived|departed:<update time, unix ms>` (`feed_key`).
The webhook of the same update is another inbox delivery (under its `eventId`); both give
identical records (the stop's record, versioned by the update's time: `records`), which
the saga writes once. A second arrival at the same stop is another update, another key.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

import httpx
from tenacity import wait_exponential

from apex_connector_samsara.envelope import MAX_DEPTH, micros, parse_time, plain_id, route_stop_key
from apex_connector_samsara.feed import _transient, _vendor_message, retry_after_seconds
from apex_connector_samsara.settings import SamsaraSettings
from apex_platform.errors import PayloadError, VendorError
from apex_platform.payloads import check_json_structure, json_type
from apex_platform.reconcile import FoundDelivery, ReconcilePage
from apex_platform.vendor_http import retry_transient

log = logging.getLogger(__name__)

ROUTES_FEED_PATH = "/fleet/routes/audit-logs/feed"
#: feed operations that have a webhook (Event Subscriptions): operation → eventType
STOP_OPERATIONS = {"stop arrived": "RouteStopArrival", "stop departed": "RouteStopDeparture"}
#: Samsara's routes endpoints allow 5 requests/s: the wait between two pages of a pass
PAGE_SPACING_SECONDS = 0.2


def feed_key(event_type: str, route: object, stop: object, time: object) -> str | None:
    """The inbox key of one listed stop update: the stop, what happened and the update's
    time in unix milliseconds; None when an id or the time is not usable."""
    route_id, stop_id = plain_id(route), plain_id(stop)
    if route_id is None or stop_id is None:
        return None
    try:
        ms = micros(parse_time(time, "route update 'time'")) // 1000
    except PayloadError:
        return None
    return f"{route_stop_key(event_type, route_id, stop_id)}:{ms}"


def webhook_body(entry: dict[str, Any], stop: dict[str, Any], event_type: str) -> tuple[str, bytes]:
    """(inbox key, body) of the RouteStopArrival/Departure webhook that `entry` stands for:
    a Webhooks 2.0 envelope whose `data` is the route update as the webhook carries it
    (driver, operation, route, routeStopDetails = the stop, time, type, vehicle)."""
    route: Any = entry.get("route")
    route = route if isinstance(route, dict) else {}
    data = {
        "operation": entry.get("operation"),
        "type": entry.get("type"),
        "time": entry.get("time"),
        "route": route,
        "routeStopDetails": stop,
        "driver": route.get("driver"),
        "vehicle": route.get("vehicle"),
    }
    # without usable ids or time the entry is kept all the same, under a digest of its body
    # (the drain names what is missing)
    key = feed_key(event_type, route, stop, entry.get("time"))
    doc = {
        "eventId": key or "",
        "eventTime": entry.get("time"),
        "eventType": event_type,
        "data": {k: v for k, v in data.items() if v is not None},
    }
    body = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
    if key is None:
        key = "routes-feed:" + hashlib.sha256(body).hexdigest()[:32]
        doc["eventId"] = key
        body = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
    return key, body


def found_deliveries(doc: Any, where: str) -> tuple[list[FoundDelivery], str | None, bool]:
    """The stop arrivals and departures of one feed answer, its endCursor and hasNextPage."""
    if not isinstance(doc, dict):
        raise PayloadError(f"{where}: the answer must be a JSON object, got {json_type(doc)}")
    data = doc.get("data")
    if not isinstance(data, list):
        raise PayloadError(f"{where}: 'data' must be an array, got {json_type(data)}")
    pagination = doc.get("pagination")
    if not isinstance(pagination, dict):
        raise PayloadError(f"{where}: 'pagination' must be an object, got {json_type(pagination)}")
    end_cursor, has_next = pagination.get("endCursor"), pagination.get("hasNextPage")
    if end_cursor is not None and not isinstance(end_cursor, str):
        raise PayloadError(f"{where}: 'pagination.endCursor' must be a string, got {json_type(end_cursor)}")
    if not isinstance(has_next, bool):
        raise PayloadError(f"{where}: 'pagination.hasNextPage' must be a boolean, got {json_type(has_next)}")
    found: list[FoundDelivery] = []
    for entry in data:
        if not isinstance(entry, dict) or entry.get("operation") not in STOP_OPERATIONS:
            continue  # ETA updates and the like: no webhook of ours stands for them
        event_type = STOP_OPERATIONS[entry["operation"]]
        changes: Any = entry.get("changes")
        after: Any = changes.get("after") if isinstance(changes, dict) else None
        listed: Any = after.get("stops") if isinstance(after, dict) else None
        stops = [s for s in listed if isinstance(s, dict)] if isinstance(listed, list) else []
        stops = stops or [{}]
        for stop in stops:
            key, body = webhook_body(entry, stop, event_type)
            found.append(FoundDelivery(event_id=key, body=body))
    return found, end_cursor or None, has_next


class _ExpiredCursor(Exception):
    pass


class RoutesFeedReader:
    """Reads one page of the route updates feed for one configured account."""

    def __init__(self, settings: SamsaraSettings, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.settings = settings
        self._transport = transport

    async def read_page(self, account: str, cursor: str | None) -> ReconcilePage:
        token = self.settings.token_for(account)
        where = f"samsara account {account!r}: GET {ROUTES_FEED_PATH}"
        params = {"expand": "route"}
        if cursor:
            params["after"] = cursor
        async with httpx.AsyncClient(
            base_url=self.settings.base_url.rstrip("/"),
            timeout=self.settings.http_timeout_seconds,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            transport=self._transport,
        ) as client:
            response = await retry_transient(
                lambda: self._get(client, params, where),
                attempts=self.settings.http_attempts,
                wait=wait_exponential(multiplier=0.2, max=2.0),
            )
        try:
            doc = self._document(response, where, cursor)
        except _ExpiredCursor as exc:
            # a safety net that cannot read on is worse than one with a gap: the webhooks
            # of the gap are what they are; reconciliation goes on from now
            log.warning("%s; reconciliation reads on from now", exc)
            return await self.read_page(account, None)
        found, end_cursor, has_next = found_deliveries(doc, where)
        return ReconcilePage(
            deliveries=tuple(found),
            next_cursor=end_cursor or cursor,
            has_more=has_next,
            retry_after=PAGE_SPACING_SECONDS if has_next else None,
        )

    async def _get(self, client: httpx.AsyncClient, params: dict[str, str], where: str) -> httpx.Response:
        try:
            response = await client.get(ROUTES_FEED_PATH, params=params)
        except httpx.TimeoutException:
            raise _transient(f"{where} timed out after {self.settings.http_timeout_seconds} s") from None
        except httpx.TransportError as exc:
            raise _transient(f"{where} failed: {type(exc).__name__}: {exc}"[:500]) from None
        if response.status_code >= 500:
            raise _transient(f"{where} answered {response.status_code}: {_vendor_message(response)}")
        return response

    def _document(self, response: httpx.Response, where: str, cursor: str | None) -> Any:
        status = response.status_code
        if status == 429:
            after = retry_after_seconds(response.headers.get("retry-after"))
            raise VendorError(
                f"{where} was rate limited (429); retry after {after} s", retryable=True, retry_after=after
            )
        if status == 401:
            raise VendorError(
                f"{where} answered 401: the API token is missing, revoked or invalid; check "
                "APEX_SAMSARA_API_TOKEN / APEX_SAMSARA_API_TOKENS",
                retryable=False,
            )
        if status == 403:
            raise VendorError(
                f"{where} answered 403: the API token may not read routes (give it the 'Read Routes' scope)",
                retryable=False,
            )
        if status == 400 and cursor:
            raise _ExpiredCursor(f"{where} rejected the stored cursor (400: {_vendor_message(response)})")
        if status != 200:
            raise VendorError(f"{where} answered {status}: {_vendor_message(response)}", retryable=False)
        try:
            doc = response.json()
        except ValueError:
            raise PayloadError(f"{where} answered 200 with a body that is not JSON") from None
        check_json_structure(doc, what=f"{where} answer", max_depth=MAX_DEPTH)
        return doc
