"""`CrmConnector`: polls HubSpot CRM v3 object by object type, page by page."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar
from zoneinfo import ZoneInfo

import httpx
from pydantic_settings import BaseSettings

from apex_connector_crm.client import HubSpotClient, Limits, time_zone
from apex_connector_crm.cursor import MAX_IDS_AT_SINCE, CrmCursor, decode
from apex_connector_crm.objects import (
    Associations,
    HubSpotObject,
    ShapeError,
    parse_associations,
    parse_object,
    parse_page,
)
from apex_connector_crm.records import (
    COMPANIES,
    CONTACTS,
    DEALS,
    MERGED_PROPERTY,
    SOURCE,
    ObjectType,
    Related,
    build_merged_tombstones,
    build_record,
    build_tombstone,
    modified_ms,
    object_type,
)
from apex_connector_crm.settings import CrmSettings
from apex_platform.capabilities import FakeVendor
from apex_platform.errors import PayloadError, VendorError
from apex_platform.models import InboundEvent, Page, Priority, Record, SourceMode
from apex_platform.ratelimit import RateBudgets, budget_key, shared_budgets
from apex_platform.settings import load

if TYPE_CHECKING:
    from apex_platform.testing.conformance.samples import ConformanceSamples

#: HubSpot's documented maxima per batch call
_ASSOC_BATCH = 1000
_READ_BATCH = 100
_ASSOC_ROUNDS = 20
_LIST_PAGE = 100


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class CrmConnector:
    """HubSpot CRM v3: contacts, companies and deals (and other object types by name).

    Each configured object type is one account, so each has its own poller and cursor.
    `settings=None` reads `APEX_CRM_*` on first use; registering does no I/O.
    """

    name = SOURCE
    mode: SourceMode = "poll"
    priority: Priority = "P2"
    settings_model: ClassVar[type[BaseSettings] | None] = CrmSettings

    def __init__(
        self,
        settings: CrmSettings | None = None,
        *,
        clock: Callable[[], float] = time.time,
        transport: httpx.AsyncBaseTransport | None = None,
        budgets: RateBudgets | None = None,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._transport = transport
        self._budgets = budgets
        self._zone: ZoneInfo | None = None  # the account's, once HubSpot said it

    @property
    def settings(self) -> CrmSettings:
        if self._settings is None:
            self._settings = load(CrmSettings)
        return self._settings

    @property
    def poll_interval_seconds(self) -> float:
        return self.settings.poll_interval_seconds

    def start_fake_vendor(self) -> FakeVendor:
        """`FakeVendorSource`: the demo's fake HubSpot API and the settings pointing at it."""
        from apex_connector_crm import demo

        base_url, stop = demo.start_fake_vendor()
        return FakeVendor(base_url, stop, demo.demo_environment(base_url))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    def conformance_samples(self) -> ConformanceSamples:
        """What the conformance suite runs with (`ConformanceProvider`)."""
        from apex_connector_crm.conformance import CrmSamples

        return CrmSamples()

    def accounts(self) -> list[str]:
        """The configured object types (`APEX_CRM_OBJECTS`): one poller each."""
        return list(self.settings.objects)

    # -- parse: one object delivered as an event (replays, tests) ----------------------------

    def parse(self, event: InboundEvent) -> list[Record]:
        """`{"object_type": "contacts", "object": <HubSpot object>}` → its record (a tombstone
        when archived). Relations come only from polling, which reads associations."""
        payload = event.payload
        if not isinstance(payload, dict):
            raise PayloadError(f"crm event {event.event_id}: the payload is not a JSON object")
        type_name = payload.get("object_type")
        if not isinstance(type_name, str) or not type_name:
            raise PayloadError(f"crm event {event.event_id}: object_type is missing")
        kind = object_type(type_name)
        try:
            obj = parse_object(payload.get("object"), "object")
            if obj.archived:
                return [build_tombstone(kind, obj)]
            return [build_record(kind, obj), *build_merged_tombstones(kind, obj)]
        except ShapeError as exc:
            raise PayloadError(f"crm event {event.event_id}: {exc}") from exc

    # -- poll ------------------------------------------------------------------------------

    async def poll(self, account: str, cursor: str | None) -> Page:
        settings = self.settings
        where = f"{SOURCE} {account}"
        if account not in settings.objects:
            raise VendorError(f"{where}: not a configured object type (APEX_CRM_OBJECTS)", retryable=False)
        if settings.access_token is None:
            raise VendorError(
                f"{where}: APEX_CRM_ACCESS_TOKEN is not set (a HubSpot private app token)", retryable=False
            )
        state = decode(cursor, where=where)
        kind = object_type(account)
        now_ms = int(self._clock() * 1000)
        async with httpx.AsyncClient(
            base_url=settings.base_url, timeout=settings.timeout_seconds, transport=self._transport
        ) as http:
            token = settings.access_token.get_secret_value()
            client = HubSpotClient(
                http,
                token,
                source=SOURCE,
                account=account,
                rate_limit_backoff=settings.rate_limit_backoff_seconds,
                limits=self._limits(token),
            )

            async def account_zone() -> ZoneInfo | None:
                if self._zone is None:
                    self._zone = await client.account_time_zone()
                return self._zone

            client._account_zone = account_zone
            try:
                if state.phase == "archived":
                    return await self._archived_page(client, kind, state)
                return await self._search_page(client, kind, state, now_ms)
            except ShapeError as exc:
                raise VendorError(f"{where}: unexpected HubSpot answer: {exc}", retryable=True) from exc

    def _limits(self, token: str) -> Limits:
        """The account's budgets: one per portal (base URL and token, hashed), shared by the
        pollers of every object type and, through the budgets' database, by every process."""
        s = self.settings
        general = budget_key("crm-hubspot", s.base_url, token)
        burst = max(1, min(10, s.requests_per_ten_seconds - 1))
        return Limits(
            budgets=self._budgets if self._budgets is not None else shared_budgets(),
            general=general,
            search=f"{general}:search",
            rate=(s.requests_per_ten_seconds - burst) / 10.0,
            burst=burst,
            search_rate=float(s.search_requests_per_second),
            search_burst=1,
            zone=time_zone(s.account_time_zone),
            daily_retry_seconds=s.daily_retry_seconds,
            clock=self._clock,
        )

    def _properties(self, kind: ObjectType) -> list[str]:
        extra = {
            CONTACTS.name: self.settings.contact_properties,
            COMPANIES.name: self.settings.company_properties,
            DEALS.name: self.settings.deal_properties,
        }.get(kind.name, [])
        return list(dict.fromkeys([*kind.default_properties, kind.modified_property, MERGED_PROPERTY, *extra]))

    async def _search_page(self, client: HubSpotClient, kind: ObjectType, state: CrmCursor, now_ms: int) -> Page:
        settings = self.settings
        limit = settings.page_size
        prop = kind.modified_property
        if state.tie:
            filters: list[dict[str, str]] = [{"propertyName": prop, "operator": "EQ", "value": str(state.since)}]
            if state.tie_after is not None:
                filters.append({"propertyName": "hs_object_id", "operator": "GT", "value": state.tie_after})
            sorts = [{"propertyName": "hs_object_id", "direction": "ASCENDING"}]
        else:
            until = now_ms - int(settings.settle_seconds * 1000)
            filters = [
                {"propertyName": prop, "operator": "GT" if state.strict else "GTE", "value": str(state.since)},
                {"propertyName": prop, "operator": "LTE", "value": str(max(until, 0))},
            ]
            sorts = [{"propertyName": prop, "direction": "ASCENDING"}]
        body = {
            "filterGroups": [{"filters": filters}],
            "sorts": sorts,
            "properties": self._properties(kind),
            "limit": limit,
        }
        path = f"/crm/v3/objects/{kind.name}/search"
        page = parse_page(await client.call("POST", path, body=body), client.where("POST", path))
        objects = page.objects
        stamps = [modified_ms(kind, o) for o in objects]
        full = len(objects) >= limit

        if state.tie:
            if any(ms != state.since for ms in stamps):
                raise ShapeError(f"{path}: results outside the requested millisecond {state.since}")
            ids = [int(o.id) for o in objects]
            if ids != sorted(ids):
                raise ShapeError(f"{path}: results are not sorted by hs_object_id")
            records = await self._records(client, kind, objects)
            if full:
                nxt = state.model_copy(update={"tie_after": objects[-1].id})
                return Page(records=tuple(records), next_cursor=nxt.encode(), has_more=True)
            # the whole millisecond is written: carry on after it
            nxt = state.model_copy(update={"tie": False, "tie_after": None, "strict": True, "ids_at_since": ()})
            return Page(records=tuple(records), next_cursor=nxt.encode(), has_more=True)

        if stamps != sorted(stamps):
            raise ShapeError(f"{path}: results are not sorted by {prop}")
        skip = set() if state.strict else set(state.ids_at_since)
        fresh = [o for o, ms in zip(objects, stamps, strict=True) if not (ms == state.since and o.id in skip)]
        if not objects:
            return await self._end_of_run(kind, state, Page(next_cursor=state.encode()), now_ms)
        last = stamps[-1]
        if full and last == state.since:
            # a full page inside one millisecond: page through it by object id instead
            records = await self._records(client, kind, fresh)
            nxt = state.model_copy(update={"tie": True, "tie_after": None})
            return Page(records=tuple(records), next_cursor=nxt.encode(), has_more=True)
        at_last = [o.id for o, ms in zip(objects, stamps, strict=True) if ms == last]
        if last == state.since and not state.strict:
            at_last = list(dict.fromkeys([*state.ids_at_since, *at_last]))
        records = await self._records(client, kind, fresh)
        if len(at_last) > MAX_IDS_AT_SINCE:
            nxt = state.model_copy(
                update={"since": last, "ids_at_since": (), "strict": False, "tie": True, "tie_after": None}
            )
            return Page(records=tuple(records), next_cursor=nxt.encode(), has_more=True)
        nxt = state.model_copy(update={"since": last, "ids_at_since": tuple(at_last), "strict": False})
        page_out = Page(records=tuple(records), next_cursor=nxt.encode(), has_more=full)
        return page_out if full else await self._end_of_run(kind, nxt, page_out, now_ms)

    async def _end_of_run(self, kind: ObjectType, state: CrmCursor, page: Page, now_ms: int) -> Page:
        """The search is drained: start the archived sweep when one is due."""
        sweep_ms = int(self.settings.archived_sweep_seconds * 1000)
        if state.swept_at is not None and now_ms - state.swept_at < sweep_ms:
            return page
        nxt = state.model_copy(update={"phase": "archived", "after": None, "sweep_started": now_ms})
        return page.model_copy(update={"next_cursor": nxt.encode(), "has_more": True})

    async def _archived_page(self, client: HubSpotClient, kind: ObjectType, state: CrmCursor) -> Page:
        path = f"/crm/v3/objects/{kind.name}"
        # the list endpoint takes at most 100 a page (search takes 200)
        params = {
            "archived": "true",
            "limit": str(min(self.settings.page_size, _LIST_PAGE)),
            "properties": kind.modified_property,
        }
        if state.after:
            params["after"] = state.after
        page = parse_page(await client.call("GET", path, params=params), client.where("GET", path))
        records = []
        sweep_max = state.sweep_max
        for obj in page.objects:
            if not obj.archived:
                continue  # never delete on doubt
            tomb = build_tombstone(kind, obj)
            archived_ms = tomb.version // 1000
            sweep_max = archived_ms if sweep_max is None else max(sweep_max, archived_ms)
            if archived_ms > state.archived_since:
                records.append(tomb)
        if page.after is not None:
            nxt = state.model_copy(update={"after": page.after, "sweep_max": sweep_max})
            return Page(records=tuple(records), next_cursor=nxt.encode(), has_more=True)
        # HubSpot's own archive times set the watermark, less an overlap for objects archived
        # while the listing was being paged (the worker's clock is never compared with them)
        overlap = int(self.settings.archived_overlap_seconds * 1000)
        since = state.archived_since if sweep_max is None else max(state.archived_since, sweep_max - overlap)
        nxt = state.model_copy(
            update={
                "phase": "search",
                "after": None,
                "archived_since": since,
                "sweep_max": None,
                "swept_at": state.sweep_started,
                "sweep_started": None,
            }
        )
        return Page(records=tuple(records), next_cursor=nxt.encode(), has_more=False)

    # -- associations ------------------------------------------------------------------------

    async def _records(self, client: HubSpotClient, kind: ObjectType, objects: list[HubSpotObject]) -> list[Record]:
        if not objects:
            return []
        related: dict[str, Related] = {}
        if self.settings.associations and kind in (CONTACTS, DEALS):
            ids = [o.id for o in objects]
            companies = await self._associated(client, kind.name, COMPANIES.name, ids)
            contacts = await self._associated(client, kind.name, CONTACTS.name, ids) if kind is DEALS else {}
            domains = await self._property_of(client, COMPANIES.name, "domain", companies)
            emails = await self._property_of(client, CONTACTS.name, "email", contacts)
            for oid in ids:
                related[oid] = Related(
                    companies={c: domains.get(c) for c in companies.get(oid, [])},
                    contacts={c: emails.get(c) for c in contacts.get(oid, [])},
                )
        records: list[Record] = []
        for o in objects:
            records.append(build_record(kind, o, related.get(o.id)))
            records.extend(build_merged_tombstones(kind, o))
        return records

    async def _associated(self, client: HubSpotClient, src: str, dst: str, ids: list[str]) -> dict[str, list[str]]:
        """v4 batch association read, following each id's own paging."""
        path = f"/crm/v4/associations/{src}/{dst}/batch/read"
        out: dict[str, list[str]] = {}
        for chunk in _chunks(ids, _ASSOC_BATCH):
            inputs: list[dict[str, Any]] = [{"id": i} for i in chunk]
            for _ in range(_ASSOC_ROUNDS):
                found: Associations = parse_associations(
                    await client.call("POST", path, body={"inputs": inputs}), client.where("POST", path)
                )
                for oid, targets in found.to.items():
                    bucket = out.setdefault(oid, [])
                    bucket.extend(t for t in targets if t not in bucket)
                if not found.more:
                    break
                inputs = [{"id": oid, "after": after} for oid, after in found.more.items()]
        return out

    async def _property_of(
        self, client: HubSpotClient, type_name: str, prop: str, by_owner: dict[str, list[str]]
    ) -> dict[str, str | None]:
        """One property (email, domain) of the associated objects, which keys their entities."""
        ids = sorted({i for targets in by_owner.values() for i in targets}, key=int)
        path = f"/crm/v3/objects/{type_name}/batch/read"
        values: dict[str, str | None] = {}
        for chunk in _chunks(ids, _READ_BATCH):
            body = {"properties": [prop], "inputs": [{"id": i} for i in chunk]}
            page = parse_page(await client.call("POST", path, body=body), client.where("POST", path))
            for obj in page.objects:
                values[obj.id] = obj.properties.get(prop)
        return values
