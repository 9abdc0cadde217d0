"""Reconciliation from Turvo's list endpoints: the entities updated since a cursor,
committed to the inbox as deliveries the drain fetches and parses like webhooks.

What is public of the listing (integrations quoting Turvo's tenant-only reference):
``GET /v1/shipments/list`` (and ``/orders/list`` …) with filters such as ``updated[gte]`` /
``updated[lte]``, offset paging by ``start`` / ``pageSize`` (no cursor parameter), and an
answer ``{"Status": "SUCCESS", "details": {"pagination": {…, "moreAvailable"}, "shipments":
[…]}}``. Nothing says in which order items come. Offset paging over a set that changes
while it is read skips items, so a pass never pages by offset when it can help it: it reads
time windows ``[since, until]`` that fit in one page, halving a window whose page is full,
and moves ``since`` to the end of each window read. Only a window no wider than
``APEX_TURVO_RECONCILE_MIN_WINDOW_SECONDS`` that still fills a page is paged by offset.

A pass ends at the time it started (a fixed ``until``); the next starts
``APEX_TURVO_RECONCILE_OVERLAP_SECONDS`` before it. Each listed entity becomes a delivery
``{"entityType", "entityId", "eventId": "reconcile-<type>-<id>-<updated µs>", "eventTime",
"eventName": "<TYPE>_RECONCILED"}``: the same entity at the same update time has the same
event id in every pass (the inbox keeps one), and its records are those a webhook of that
state gives (the version is the entity's update time, nothing of the delivery is kept), so
the saga writes them once whichever came first.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

from apex_connector_turvo.client import TurvoClient
from apex_connector_turvo.deletion import list_items
from apex_connector_turvo.records import updated_us
from apex_connector_turvo.settings import TurvoSettings, split_list
from apex_connector_turvo.times import iso
from apex_connector_turvo.webhook import read_delivery
from apex_platform.errors import PayloadError, SettingsError, VendorError
from apex_platform.reconcile import FoundDelivery, ReconcilePage
from apex_platform.vendor_http import SAFE_ID

_SECOND_US = 1_000_000
#: halvings of one window in one call before it is paged by offset anyway
_MAX_SPLITS = 40


@dataclass(frozen=True)
class ListCursor:
    """Where a pass is: windows start at `since` (µs, inclusive); `until` is the pass's fixed
    end (None: the next call starts a pass); `span` the last width that fit one page;
    `start` the offset inside a minimal window that overflowed. No secret in it (it is kept
    in workflow history)."""

    since: int
    until: int | None = None
    span: int | None = None
    start: int = 0

    def encode(self) -> str:
        return json.dumps({k: v for k, v in asdict(self).items() if v}, separators=(",", ":"))

    @classmethod
    def decode(cls, text: str) -> ListCursor:
        try:
            doc = json.loads(text)
            return cls(
                since=int(doc["since"]),
                until=None if doc.get("until") is None else int(doc["until"]),
                span=None if doc.get("span") is None else int(doc["span"]),
                start=int(doc.get("start", 0)),
            )
        except (ValueError, TypeError, KeyError) as exc:
            raise VendorError(
                f"turvo: the stored reconcile cursor {text[:80]!r} is unreadable ({exc}); stop the reconciler "
                "and start it again to list from APEX_TURVO_RECONCILE_LOOKBACK_SECONDS back",
                retryable=False,
            ) from None


class Lister:
    """One account (entity type) of one connector: pages of its list endpoint."""

    def __init__(self, settings: TurvoSettings, client: TurvoClient, *, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.client = client
        self._clock = clock

    def _paths(self, kind: str) -> str:
        s = self.settings
        if kind not in s.reconcile_account_names():
            raise SettingsError(f"turvo: {kind!r} is not in APEX_TURVO_RECONCILE_ACCOUNTS")
        list_path = s.list_path_map().get(kind)
        if list_path is None or kind not in s.entity_path_map():
            raise SettingsError(
                f"turvo: reconciling {kind!r} needs its list path (APEX_TURVO_LIST_PATHS) and its entity path "
                "(APEX_TURVO_ENTITY_PATHS)"
            )
        return list_path

    async def read_page(self, kind: str, cursor: str | None) -> ReconcilePage:
        s = self.settings
        list_path = self._paths(kind)
        now = round(self._clock() * _SECOND_US)
        c = (
            ListCursor.decode(cursor)
            if cursor
            else ListCursor(since=now - round(s.reconcile_lookback_seconds * _SECOND_US))
        )
        if c.until is None:
            c = replace(c, until=max(now, c.since), start=0)
        assert c.until is not None
        lo = c.since
        hi = min(lo + c.span, c.until) if c.span else c.until
        minimal = max(1, round(s.reconcile_min_window_seconds * _SECOND_US))
        items, more = await self._list(list_path, lo, hi, c.start)
        for _ in range(_MAX_SPLITS):
            if not more or hi - lo <= minimal or c.start:
                break
            hi = lo + (hi - lo) // 2
            items, more = await self._list(list_path, lo, hi, 0)
        deliveries = [self._found(kind, item, hi) for item in items]
        if more:
            # a minimal window still fills a page: page it by offset (it is in the past, and
            # a change moves an entity out of it into a later window)
            nxt = replace(c, since=lo, span=hi - lo, start=c.start + len(items))
            return ReconcilePage(deliveries=deliveries, next_cursor=nxt.encode(), has_more=True)
        if hi >= c.until:
            overlap = round(s.reconcile_overlap_seconds * _SECOND_US)
            done = ListCursor(since=max(c.until - overlap, 0))
            return ReconcilePage(deliveries=deliveries, next_cursor=done.encode(), has_more=False)
        nxt = ListCursor(since=hi, until=c.until, span=max(minimal, (hi - lo) * 2))
        return ReconcilePage(deliveries=deliveries, next_cursor=nxt.encode(), has_more=True)

    async def _list(self, list_path: str, lo: int, hi: int, start: int) -> tuple[list[dict[str, Any]], bool]:
        s = self.settings
        name = s.list_updated_filter
        size = s.reconcile_page_size
        params = {
            f"{name}[gte]": _filter_time(lo),
            f"{name}[lte]": _filter_time(hi),
            "start": str(start),
            "pageSize": str(size),
        }
        doc = await self.client.get(list_path, params=params)
        if doc is None:
            raise VendorError(
                f"turvo: GET {list_path} answered 404; check APEX_TURVO_LIST_PATHS and APEX_TURVO_BASE_URL",
                retryable=False,
            )
        status = doc.get("Status")
        if isinstance(status, str) and status.upper() == "ERROR":
            raise VendorError(f"turvo: GET {list_path} answered ERROR: {str(doc.get('details'))[:200]}", retryable=True)
        items = list_items(doc)
        if items is None:
            raise PayloadError(f"turvo: GET {list_path} answered without a list under 'details'")
        details = doc.get("details")
        pagination = details.get("pagination") if isinstance(details, dict) else None
        flag = pagination.get("moreAvailable") if isinstance(pagination, dict) else None
        more = flag if isinstance(flag, bool) else len(items) >= size
        return items, more

    def _found(self, kind: str, item: dict[str, Any], window_end: int) -> FoundDelivery:
        """The delivery a listed entity stands for, under the id `receive` gives its body."""
        raw_id = item.get("id")
        if isinstance(raw_id, float) and raw_id.is_integer():
            raw_id = int(raw_id)
        entity_id = str(raw_id) if isinstance(raw_id, str | int) and not isinstance(raw_id, bool) else ""
        at = updated_us(item, split_list(self.settings.updated_path))
        version = at if at is not None else window_end
        if SAFE_ID.fullmatch(entity_id):
            event_id = f"reconcile-{kind}-{entity_id}-{version}"
        else:  # kept all the same: the drain records it as unparsed, naming the id
            digest = hashlib.sha256(json.dumps(item, sort_keys=True, default=str).encode()).hexdigest()[:32]
            event_id = f"reconcile-{kind}-d-{digest}"
        doc = {
            "entityType": kind,
            "entityId": entity_id,
            "eventId": event_id,
            "eventTime": iso(version),
            "eventName": f"{kind.upper()}_RECONCILED",
        }
        body = json.dumps(doc, separators=(",", ":")).encode()
        if SAFE_ID.fullmatch(entity_id):
            read = read_delivery(doc, self.settings)
            if (read.entity_type, read.entity_id, read.event_id) != (kind, entity_id, event_id):
                raise SettingsError(
                    "turvo: a reconciled delivery is not read back as it was written: APEX_TURVO_ENTITY_TYPE_PATH, "
                    "APEX_TURVO_ENTITY_ID_PATH and APEX_TURVO_DELIVERY_ID_PATH must include entityType, entityId "
                    f"and eventId (read {read.entity_type}/{read.entity_id}/{read.event_id})"
                )
        return FoundDelivery(event_id=event_id, body=body)


def _filter_time(us: int) -> str:
    """A filter bound as ISO 8601 UTC with milliseconds (truncated: a window's end and the
    next window's start stay the same instant, so nothing falls between them)."""
    text = iso(us - us % 1000)
    assert text is not None
    if "." not in text:
        text = text.replace("Z", ".000Z")
    return text[: text.index(".") + 4] + "Z"
