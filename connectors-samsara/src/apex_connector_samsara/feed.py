"""Samsara's vehicle stats feed: `GET /fleet/vehicles/stats/feed?types=…&after=<endCursor>`.

`read_page` makes one call (with in-call retries for connection errors and 5xx) and turns the
answer into records; vendor failures become `VendorError`s whose message names the source,
the account and the endpoint, never the token.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from tenacity import wait_exponential

from apex_connector_samsara.envelope import EPOCH, MAX_DEPTH, micros, parse_time
from apex_connector_samsara.graph import Graph, coordinate_oddities, object_id, text_of
from apex_connector_samsara.records import SOURCE
from apex_connector_samsara.settings import SamsaraSettings
from apex_platform.errors import PayloadError, VendorError
from apex_platform.models import Page, Record
from apex_platform.payloads import check_json_structure, json_type
from apex_platform.vendor_http import TransientFailure, parse_retry_after, retry_transient

FEED_PATH = "/fleet/vehicles/stats/feed"
KIND_LOCATION = "samsara.vehicle_location"
KIND_ENGINE_STATE = "samsara.engine_state"
KIND_STAT = "samsara.vehicle_stat"
KIND_ANOMALY = "samsara.feed_anomaly"
KIND_GAP = "samsara.feed_gap"

_VEHICLE_KEYS = {"id", "name", "externalIds"}
#: the longest Retry-After we honour; a larger one is capped (Temporal retries again anyway)
MAX_RETRY_AFTER = 300.0


@dataclass(frozen=True)
class FeedAnswer:
    records: list[Record]
    end_cursor: str | None
    has_next_page: bool


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds: Samsara sends decimals ("0.40235"); an HTTP date is accepted too."""
    return parse_retry_after(value, default=None, cap=MAX_RETRY_AFTER)


def _transient(message: str) -> TransientFailure:
    """Connection trouble or a 5xx: retried inside the call, then a retryable `VendorError`."""
    return TransientFailure(VendorError(message, retryable=True))


def _vendor_message(response: httpx.Response) -> str:
    """Samsara's error message (`{"message": …, "requestId": …}`), for people, never parsed for logic."""
    try:
        doc = response.json()
    except ValueError:
        return response.text[:200].strip()
    if isinstance(doc, dict):
        parts = [str(doc[k])[:200] for k in ("message", "requestId") if isinstance(doc.get(k), str | int)]
        return " / request ".join(parts)
    return ""


class FeedReader:
    """Reads pages of the feed for one configured account."""

    def __init__(self, settings: SamsaraSettings, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.settings = settings
        self._transport = transport

    def _where(self, account: str) -> str:
        return f"samsara account {account!r}: GET {FEED_PATH}"

    async def read_page(self, account: str, cursor: str | None) -> Page:
        token = self.settings.token_for(account)
        try:
            answer = await self._call(account, token, cursor)
        except _ExpiredCursor as exc:
            if self.settings.expired_cursor != "restart" or cursor is None:
                raise VendorError(str(exc), retryable=False) from None
            answer = await self._call(account, token, None)
            answer = FeedAnswer(
                [gap_record(account, cursor, str(exc)), *answer.records], answer.end_cursor, answer.has_next_page
            )
        return Page(records=tuple(answer.records), next_cursor=answer.end_cursor, has_more=answer.has_next_page)

    async def _call(self, account: str, token: str, cursor: str | None) -> FeedAnswer:
        params = {"types": ",".join(self.settings.feed_type_list())}
        if cursor:
            params["after"] = cursor
        where = self._where(account)
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
        return self._answer(response, account, cursor, where)

    async def _get(self, client: httpx.AsyncClient, params: dict[str, str], where: str) -> httpx.Response:
        try:
            response = await client.get(FEED_PATH, params=params)
        except httpx.TimeoutException:
            raise _transient(f"{where} timed out after {self.settings.http_timeout_seconds} s") from None
        except httpx.TransportError as exc:
            raise _transient(f"{where} failed: {type(exc).__name__}: {exc}"[:500]) from None
        if response.status_code >= 500:
            raise _transient(f"{where} answered {response.status_code}: {_vendor_message(response)}")
        return response

    def _answer(self, response: httpx.Response, account: str, cursor: str | None, where: str) -> FeedAnswer:
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
                f"{where} answered 403: the API token may not read vehicle statistics (give it the "
                "'Read Vehicle Statistics' scope) or the organisation lacks the license",
                retryable=False,
            )
        if status == 400 and cursor:
            raise _ExpiredCursor(
                f"{where} rejected the stored cursor (400: {_vendor_message(response)}). Feed cursors expire "
                "after 30 days. To read on from now: set APEX_SAMSARA_EXPIRED_CURSOR=restart, or stop and start "
                "the stream (apex-platform sources stop/start samsara); the data in between is not in the feed"
            )
        if status != 200:
            raise VendorError(f"{where} answered {status}: {_vendor_message(response)}", retryable=False)
        try:
            doc = response.json()
        except ValueError:
            raise PayloadError(f"{where} answered 200 with a body that is not JSON") from None
        check_json_structure(doc, what=f"{where} answer", max_depth=MAX_DEPTH)
        return feed_answer(doc, account)


class _ExpiredCursor(Exception):
    pass


def feed_answer(doc: Any, account: str) -> FeedAnswer:
    """Records of one feed answer `{data: [vehicle…], pagination: {endCursor, hasNextPage}}`."""
    if not isinstance(doc, dict):
        raise PayloadError(f"Samsara feed answer must be a JSON object, got {json_type(doc)}")
    data = doc.get("data")
    if not isinstance(data, list):
        raise PayloadError(f"Samsara feed answer 'data' must be an array, got {json_type(data)}")
    pagination = doc.get("pagination")
    if not isinstance(pagination, dict):
        raise PayloadError(f"Samsara feed answer 'pagination' must be an object, got {json_type(pagination)}")
    end_cursor = pagination.get("endCursor")
    has_next = pagination.get("hasNextPage")
    if end_cursor is not None and not isinstance(end_cursor, str):
        raise PayloadError(f"Samsara feed 'pagination.endCursor' must be a string, got {json_type(end_cursor)}")
    if not isinstance(has_next, bool):
        raise PayloadError(f"Samsara feed 'pagination.hasNextPage' must be a boolean, got {json_type(has_next)}")
    records: list[Record] = []
    for vehicle in data:
        records.extend(vehicle_records(vehicle, account))
    return FeedAnswer(records, end_cursor or None, has_next)


def vehicle_records(vehicle: object, account: str) -> list[Record]:
    """One record per stat point of one vehicle entry of the feed."""
    vid = object_id(vehicle)
    if vid is None or not isinstance(vehicle, dict):
        return [anomaly_record(account, None, "vehicle", vehicle, "vehicle entry without a usable 'id'")]
    records: list[Record] = []
    for stat, points in vehicle.items():
        if stat in _VEHICLE_KEYS:
            continue
        if not isinstance(points, list):
            points = [points]
        for point in points:
            try:
                records.append(point_record(account, vehicle, vid, str(stat), point))
            except PayloadError as exc:
                records.append(anomaly_record(account, vid, str(stat), point, str(exc)))
    return records


def point_record(account: str, vehicle: dict[str, Any], vid: str, stat: str, point: object) -> Record:
    if not isinstance(point, dict):
        raise PayloadError(f"a {stat} point must be an object, got {json_type(point)}")
    raw_time = point.get("time")
    moment = parse_time(raw_time, f"feed {stat} 'time'")
    time_text = str(raw_time).strip()
    graph = Graph()
    vehicle_ref = graph.add("Vehicle", vehicle)
    name = text_of(vehicle, "name") or f"vehicle {vid}"
    attributes: dict[str, Any] = {"account": account, "vehicle_id": vid, "vehicle_name": text_of(vehicle, "name")}
    oddities = coordinate_oddities(point, stat)
    if moment < datetime(2000, 1, 1, tzinfo=UTC):
        oddities.append(f"time {time_text} is before 2000 (accepted as sent)")
    if stat == "gps":
        kind, rid = KIND_LOCATION, f"{vid}:{time_text}"
        geo = point.get("reverseGeo") if isinstance(point.get("reverseGeo"), dict) else {}
        place = text_of(geo, "formattedLocation")
        attributes.update(
            latitude=point.get("latitude"),
            longitude=point.get("longitude"),
            heading_degrees=point.get("headingDegrees"),
            speed_mph=point.get("speedMilesPerHour"),
            is_ecu_speed=point.get("isEcuSpeed"),
            formatted_location=place,
        )
        address = graph.add("Address", point.get("address"))
        graph.relate(vehicle_ref, "LOCATED_AT", address)
        where = place or f"{point.get('latitude')}, {point.get('longitude')}"
        title = f"{name} at {where}"
        speed = point.get("speedMilesPerHour")
        text = f"{title} ({speed} mph)" if isinstance(speed, int | float) else title
    elif stat == "engineStates":
        kind, rid = KIND_ENGINE_STATE, f"{vid}:engineState:{time_text}"
        attributes["value"] = point.get("value")
        title = text = f"{name} engine {point.get('value')}"
    else:
        kind, rid = KIND_STAT, f"{vid}:{stat}:{time_text}"
        attributes.update(stat=stat, value=point.get("value", {k: v for k, v in point.items() if k != "time"}))
        title = text = f"{name} {stat} {attributes['value']}"[:500]
    if len(rid) > 512:
        raise PayloadError(f"a {stat} point's id would be longer than 512 characters")
    if oddities:
        attributes["oddities"] = oddities
    return Record(
        source=SOURCE,
        kind=kind,
        id=rid,
        version=max(0, micros(moment)),
        occurred_at=moment,
        title=title[:500],
        text=text[:1000],
        attributes={k: v for k, v in attributes.items() if v is not None},
        entities=graph.entities,
        relations=graph.relations,
    )


def _digest(value: object) -> str:
    blob = json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def anomaly_record(account: str, vid: str | None, stat: str, point: object, problem: str) -> Record:
    """A feed entry that cannot become a stat record is kept, not dropped, with what is wrong."""
    return Record(
        source=SOURCE,
        kind=KIND_ANOMALY,
        id=f"anomaly:{vid or '-'}:{stat}:{_digest(point)}",
        version=0,
        occurred_at=EPOCH,
        title=f"unreadable {stat} entry in the Samsara feed of account {account}",
        text=problem[:1000],
        attributes={"account": account, "vehicle_id": vid, "stat": stat, "entry": point, "problem": problem[:1000]},
    )


def gap_record(account: str, cursor: str, reason: str) -> Record:
    """Left in the stores when the stream restarts from now after its cursor was rejected."""
    now = datetime.now(UTC)
    return Record(
        source=SOURCE,
        kind=KIND_GAP,
        id=f"feed_gap:{account}:{hashlib.sha256(cursor.encode()).hexdigest()[:24]}",
        version=max(0, micros(now)),
        occurred_at=now,
        title=f"Samsara feed of account {account} restarted from now: data since the rejected cursor is missing",
        text=reason[:2000],
        attributes={"account": account, "rejected_cursor": cursor[:512], "reason": reason[:2000]},
    )
