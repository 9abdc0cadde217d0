"""`FinancialConnector`: QuickBooks Online change data capture, one poller per company."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, ClassVar

import httpx
from pydantic_settings import BaseSettings

from apex_connector_financial.cdc import (
    CdcAnswer,
    Change,
    QueryAnswer,
    ShapeError,
    format_time,
    parse_cdc,
    parse_query,
    query_time,
    whole_second,
)
from apex_connector_financial.client import QboClient
from apex_connector_financial.cursor import FinancialCursor, Window, decode
from apex_connector_financial.records import SOURCE, build_record
from apex_connector_financial.settings import FinancialSettings
from apex_connector_financial.tokens import FileTokenStore, SharedTokenStore, TokenManager, TokenStore
from apex_platform.capabilities import FakeVendor
from apex_platform.errors import PayloadError, VendorError
from apex_platform.models import InboundEvent, Page, Priority, Record, SourceMode
from apex_platform.settings import core_settings, load

if TYPE_CHECKING:
    from apex_platform.testing.conformance.samples import ConformanceSamples

log = logging.getLogger(__name__)

#: QuickBooks keeps 30 days of changes; stay a little inside the window
CDC_WINDOW = timedelta(days=30) - timedelta(minutes=5)


class FinancialConnector:
    """QuickBooks Online: invoices, payments, bills, customers and vendors (and other CDC
    entities by name). Each company (realmId) is one account with its own poller.

    `settings=None` reads `APEX_FINANCIAL_*` on first use; registering does no I/O.
    `token_store` keeps the rotated tokens (default: `APEX_FINANCIAL_TOKEN_STORE`, the
    platform's PostgreSQL shared by every worker host, or a 0600 file under APEX_HOME).
    """

    name = SOURCE
    mode: SourceMode = "poll"
    priority: Priority = "P2"
    settings_model: ClassVar[type[BaseSettings] | None] = FinancialSettings

    def __init__(
        self,
        settings: FinancialSettings | None = None,
        *,
        token_store: TokenStore | SharedTokenStore | None = None,
        clock: Callable[[], float] = time.time,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._settings = settings
        self._store = token_store
        self._clock = clock
        self._transport = transport
        self._tokens: TokenManager | None = None

    @property
    def settings(self) -> FinancialSettings:
        if self._settings is None:
            self._settings = load(FinancialSettings)
        return self._settings

    @property
    def poll_interval_seconds(self) -> float:
        return self.settings.poll_interval_seconds

    def start_fake_vendor(self) -> FakeVendor:
        """`FakeVendorSource`: the demo's fake QuickBooks Online API and the settings pointing at it."""
        from apex_connector_financial import demo

        base_url, stop = demo.start_fake_vendor()
        return FakeVendor(base_url, stop, demo.demo_environment(base_url))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    def conformance_samples(self) -> ConformanceSamples:
        """What the conformance suite runs with (`ConformanceProvider`)."""
        from apex_connector_financial.conformance import FinancialSamples

        return FinancialSamples()

    def accounts(self) -> list[str]:
        """The companies (realmIds) of `APEX_FINANCIAL_REFRESH_TOKENS`."""
        return sorted(self.settings.refresh_tokens)

    @property
    def tokens(self) -> TokenManager:
        """The access-token cache, built on first use (it outlives single polls)."""
        if self._tokens is None:
            s = self.settings
            if not s.client_id or s.client_secret is None:
                raise VendorError(
                    "financial: APEX_FINANCIAL_CLIENT_ID and APEX_FINANCIAL_CLIENT_SECRET must be set (the Intuit "
                    "app keys)",
                    retryable=False,
                )
            store = self._store or self._default_store(s)
            self._tokens = TokenManager(
                token_url=s.token_url,
                client_id=s.client_id,
                client_secret=s.client_secret.get_secret_value(),
                initial={realm: token.get_secret_value() for realm, token in s.refresh_tokens.items()},
                store=store,
                margin_seconds=s.token_refresh_margin_seconds,
                clock=self._clock,
            )
        return self._tokens

    @staticmethod
    def _default_store(s: FinancialSettings) -> TokenStore | SharedTokenStore:
        if s.token_store == "file":  # noqa: S105 - a store kind, not a secret
            return FileTokenStore(s.token_store_path or core_settings().home / "financial" / "tokens.json")
        from apex_connector_financial.postgres_tokens import PostgresTokenStore

        dsn = s.token_store_dsn

        def resolve() -> str:
            if dsn is not None:
                return dsn.get_secret_value()
            from apex_platform.inbox import InboxSettings, resolve_dsn

            return resolve_dsn(load(InboxSettings))

        return PostgresTokenStore(resolve, schema=s.token_store_schema)

    # -- parse: one object delivered as an event (replays, tests) ----------------------------

    def parse(self, event: InboundEvent) -> list[Record]:
        """`{"realm_id": "…", "entity": "Invoice", "object": <QuickBooks object>}` → its record."""
        from apex_connector_financial.cdc import _change

        payload = event.payload
        if not isinstance(payload, dict):
            raise PayloadError(f"financial event {event.event_id}: the payload is not a JSON object")
        realm, entity = payload.get("realm_id"), payload.get("entity")
        if (
            not isinstance(realm, str)
            or not realm.isdigit()
            or not isinstance(entity, str)
            or entity not in (self.settings.entities)
        ):
            raise PayloadError(f"financial event {event.event_id}: realm_id or entity is missing or unknown")
        try:
            return [build_record(realm, _change(entity, payload.get("object"), "object"))]
        except ShapeError as exc:
            raise PayloadError(f"financial event {event.event_id}: {exc}") from exc

    # -- poll ------------------------------------------------------------------------------

    async def poll(self, account: str, cursor: str | None) -> Page:
        settings = self.settings
        realm = account
        where = f"{SOURCE} {realm}"
        if realm not in settings.refresh_tokens:
            raise VendorError(f"{where}: not a configured company (APEX_FINANCIAL_REFRESH_TOKENS)", retryable=False)
        state = decode(cursor, where=where)
        tokens = self.tokens
        now = datetime.fromtimestamp(self._clock(), UTC)
        floor = now - CDC_WINDOW
        start = max(now - timedelta(days=settings.initial_lookback_days), floor)
        # an entity with a window is read through the query API until CDC holds all of its changes again
        windows = {e: w for e, w in state.windows.items() if e in settings.entities}
        since: dict[str, datetime] = {}
        for entity in settings.entities:
            when = state.of(entity) or start
            if when < floor and entity not in windows:
                # CDC cannot look further back; the changes in between are out of its reach
                log.warning(
                    "%s: %s cursor %s is older than QuickBooks' 30-day CDC window; changes between it and %s "
                    "cannot be read through CDC",
                    where,
                    entity,
                    when.isoformat(),
                    floor.isoformat(),
                )
                when = floor
            since[entity] = when
        groups: dict[datetime, list[str]] = {}
        for entity, when in since.items():
            if entity not in windows:
                groups.setdefault(when, []).append(entity)

        run = _Run(realm, settings.max_objects, floor, since)
        async with httpx.AsyncClient(
            base_url=settings.base_url, timeout=settings.timeout_seconds, transport=self._transport
        ) as http:
            client = QboClient(
                http,
                tokens,
                realm,
                minor_version=settings.minor_version,
                rate_limit_backoff=settings.rate_limit_backoff_seconds,
            )
            for when, group in sorted(groups.items()):
                answer = await self._cdc(client, group, when)
                if run.full(answer) and len(group) > 1:
                    # the cap is per answer: which entity lost objects is unknown, so ask each alone
                    for entity in group:
                        run.take(await self._cdc(client, [entity], when), [entity], when)
                else:
                    run.take(answer, group, when)
            for entity, window in windows.items():
                await self._step(client, run, entity, window)
        nxt = run.since
        if not run.windows:
            # every entity is complete up to its answer's time: share the earliest, one call next time
            common = min(nxt.values())
            nxt = dict.fromkeys(nxt, common)
        cursor_out = FinancialCursor(since={e: format_time(t) for e, t in nxt.items()}, windows=run.windows)
        return Page(records=tuple(run.records.values()), next_cursor=cursor_out.encode(), has_more=bool(run.windows))

    async def _cdc(self, client: QboClient, entities: list[str], since: datetime) -> CdcAnswer:
        answer = await client.cdc(entities, format_time(since))
        try:
            return parse_cdc(answer.doc, answer.where)
        except ShapeError as exc:
            raise answer.error(f"unexpected QuickBooks answer: {exc}", retryable=True) from exc

    async def _query(self, client: QboClient, entity: str, statement: str) -> QueryAnswer:
        answer = await client.query(statement)
        try:
            return parse_query(answer.doc, entity, statement)
        except ShapeError as exc:
            raise answer.error(f"unexpected QuickBooks answer: {exc}", retryable=True) from exc

    async def _step(self, client: QboClient, run: _Run, entity: str, window: Window) -> None:
        """One page of `entity`'s window through the query API, then ask CDC whether it holds
        everything from there on (deletions included); if so the window is closed."""
        cap = run.cap
        start, until = window.start_time, window.until_time
        page = await self._query(
            client,
            entity,
            select(
                "*",
                entity,
                f"MetaData.LastUpdatedTime >= {query_time(start)} and MetaData.LastUpdatedTime <= {query_time(until)}",
                f"orderby MetaData.LastUpdatedTime startposition 1 maxresults {cap}",
            ),
        )
        run.add(page.changes)
        if len(page.changes) < cap:
            nxt, read = until, True  # nothing between start and until is left unread
        else:
            latest = whole_second(max(c.updated for c in page.changes))
            if latest > start:
                # the page may end inside its latest second: that second is read again, whole
                nxt, read = min(latest, until), False
            else:
                await self._read_second(client, run, entity, start)
                nxt = start + timedelta(seconds=1)
                read = nxt > until
                nxt = min(nxt, until)
        probe = max(nxt, run.floor)
        answer = await self._cdc(client, [entity], probe)
        if not run.full(answer):
            # CDC holds every change since `probe`, deleted objects included: back to CDC alone
            run.add(answer.of(entity))
            run.since[entity] = max(probe, answer.time)
            run.windows.pop(entity, None)
            if probe > window.deletions_time:
                log.warning(
                    "%s: %s: QuickBooks' CDC answers from %s to %s were full (%d objects), and CDC is the only "
                    "route to deleted objects: %s objects deleted in that window may be missing. Every live %s "
                    "changed in it was read through the query API, and the deletions those answers held were "
                    "ingested",
                    run.where,
                    entity,
                    window.deletions_since,
                    format_time(probe),
                    cap,
                    entity,
                    entity,
                )
            return
        run.add([c for c in answer.of(entity) if c.deleted])  # the live ones come through the query API
        if read:
            # changes go on arriving faster than one CDC answer holds: the next window
            until_next = max(whole_second(answer.time), until)
            run.windows[entity] = Window(
                start=format_time(until), until=format_time(until_next), deletions_since=window.deletions_since
            )
        else:
            run.windows[entity] = Window(
                start=format_time(nxt), until=window.until, deletions_since=window.deletions_since
            )

    async def _read_second(self, client: QboClient, run: _Run, entity: str, second: datetime) -> None:
        """Every `entity` object last changed within `second`, when there are more than one
        page holds. The query API promises no order within a second, so pages by position may
        overlap: pages are read until the ids seen cover the count, which can only shrink (an
        object changed again leaves the second for a later one, read later)."""
        cap = run.cap
        condition = f"MetaData.LastUpdatedTime = {query_time(second)}"
        seen: dict[str, Change] = {}
        counted: int | None = None
        for _ in range(_SECOND_PASSES):
            counting = select("count(*)", entity, condition)
            total = (await self._query(client, entity, counting)).total_count
            if total is None:
                raise VendorError(f"{run.where}: QuickBooks answered {counting} without totalCount", retryable=True)
            if counted is not None and total != counted:
                seen = {}  # the set changed: start over
            counted = total
            for position in range(1, total + 1, cap):
                page = await self._query(
                    client,
                    entity,
                    select(
                        "*",
                        entity,
                        condition,
                        f"orderby MetaData.LastUpdatedTime startposition {position} maxresults {cap}",
                    ),
                )
                seen.update((c.id, c) for c in page.changes if whole_second(c.updated) == second)
            if len(seen) >= total:
                run.add(list(seen.values()))
                return
        raise VendorError(
            f"{run.where}: {counted} {entity} objects changed within {format_time(second)}, more than one query "
            f"page holds ({cap}), and {_SECOND_PASSES} passes through them by position did not show them all "
            "(QuickBooks promises no order within a second); the next poll tries again",
            retryable=True,
        )


#: passes by position through one crowded second before giving up for this poll
_SECOND_PASSES = 25
_ENTITY = re.compile(r"[A-Z][A-Za-z]{1,40}")


def select(what: str, entity: str, condition: str, tail: str = "") -> str:
    """A statement of QuickBooks' query language. `entity` is a validated setting and the
    condition holds only times this module formats, so nothing from an answer gets in."""
    if not _ENTITY.fullmatch(entity):
        raise VendorError(f"{SOURCE}: {entity[:40]!r} is not a QuickBooks entity name", retryable=False)
    return f"select {what} from {entity} where {condition} {tail}".rstrip()  # noqa: S608 - see the docstring


class _Run:
    """What one poll collects: records (once each), the next `changedSince` and windows."""

    def __init__(self, realm: str, cap: int, floor: datetime, since: dict[str, datetime]) -> None:
        self.realm = realm
        self.where = f"{SOURCE} {realm}"
        self.cap = cap
        self.floor = floor
        self.since = dict(since)
        self.windows: dict[str, Window] = {}
        self.records: dict[tuple[str, int], Record] = {}

    def full(self, answer: CdcAnswer) -> bool:
        return len(answer.changes) >= self.cap

    def add(self, changes: Iterable[Change]) -> None:
        for change in changes:
            record = build_record(self.realm, change)
            self.records.setdefault((record.id, record.version), record)

    def take(self, answer: CdcAnswer, group: list[str], since: datetime) -> None:
        """The records of one CDC answer and the next `changedSince` of its entities. A full
        answer of one entity (Intuit does not say which objects it kept) opens a window from
        `since` to the answer's time, read through the query API; its deletions are kept,
        since only CDC shows them."""
        changes = [c for c in answer.changes if c.entity in group]  # never an entity we did not ask for
        if not self.full(answer):
            self.add(changes)
            for entity in group:
                self.since[entity] = max(since, answer.time)
            return
        entity = group[0]
        self.add(c for c in changes if c.deleted)
        start = whole_second(since)
        self.windows[entity] = Window(
            start=format_time(start),
            until=format_time(max(whole_second(answer.time), start)),
            deletions_since=format_time(start),
        )
