"""`FinancialConnector`: QuickBooks Online change data capture, one poller per company."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import ClassVar

import httpx
from pydantic_settings import BaseSettings

from apex_connector_financial.cdc import CdcAnswer, ShapeError, format_time, parse_cdc
from apex_connector_financial.client import QboClient
from apex_connector_financial.cursor import FinancialCursor, decode
from apex_connector_financial.records import SOURCE, build_record
from apex_connector_financial.settings import FinancialSettings
from apex_connector_financial.tokens import FileTokenStore, TokenManager, TokenStore
from apex_platform.errors import PayloadError, VendorError
from apex_platform.models import InboundEvent, Page, Priority, Record, SourceMode
from apex_platform.settings import core_settings, load

log = logging.getLogger(__name__)

#: QuickBooks keeps 30 days of changes; stay a little inside the window
CDC_WINDOW = timedelta(days=30) - timedelta(minutes=5)


class FinancialConnector:
    """QuickBooks Online: invoices, payments, bills, customers and vendors (and other CDC
    entities by name). Each company (realmId) is one account with its own poller.

    `settings=None` reads `APEX_FINANCIAL_*` on first use; registering does no I/O.
    `token_store` keeps the rotated refresh tokens (default: a 0600 file under APEX_HOME).
    """

    name = SOURCE
    mode: SourceMode = "poll"
    priority: Priority = "P2"
    settings_model: ClassVar[type[BaseSettings] | None] = FinancialSettings

    def __init__(
        self,
        settings: FinancialSettings | None = None,
        *,
        token_store: TokenStore | None = None,
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

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

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
            store = self._store or FileTokenStore(
                s.token_store_path or core_settings().home / "financial" / "tokens.json"
            )
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
        since: dict[str, datetime] = {}
        for entity in settings.entities:
            when = state.of(entity) or start
            if when < floor:
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
            groups.setdefault(when, []).append(entity)

        records: list[Record] = []
        nxt: dict[str, datetime] = {}
        saturated = False
        cap = settings.max_objects
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
                if len(answer.changes) >= cap and len(group) > 1:
                    # the cap is per answer: which entity lost objects is unknown, so ask each alone
                    for entity in group:
                        saturated |= self._take(
                            realm, await self._cdc(client, [entity], when), [entity], when, cap, records, nxt
                        )
                else:
                    saturated |= self._take(realm, answer, group, when, cap, records, nxt)
        if not saturated:
            # every entity is complete up to its answer's time: share the earliest, one call next time
            common = min(nxt.values())
            nxt = dict.fromkeys(nxt, common)
        cursor_out = FinancialCursor(since={e: format_time(t) for e, t in nxt.items()})
        return Page(records=tuple(records), next_cursor=cursor_out.encode(), has_more=saturated)

    async def _cdc(self, client: QboClient, entities: list[str], since: datetime) -> CdcAnswer:
        doc, where = await client.cdc(entities, format_time(since))
        try:
            return parse_cdc(doc, where)
        except ShapeError as exc:
            raise VendorError(f"{where}: unexpected QuickBooks answer: {exc}", retryable=True) from exc

    def _take(
        self,
        realm: str,
        answer: CdcAnswer,
        group: list[str],
        since: datetime,
        cap: int,
        records: list[Record],
        nxt: dict[str, datetime],
    ) -> bool:
        """Records of one answer and the next `changedSince` of its entities; True when the
        answer was full (one entity: carry on from its latest change, has_more)."""
        changes = [c for c in answer.changes if c.entity in group]  # never an entity we did not ask for
        records.extend(build_record(realm, c) for c in changes)
        if len(answer.changes) < cap:
            for entity in group:
                nxt[entity] = max(since, answer.time)
            return False
        entity = group[0]
        latest = max(c.updated for c in changes) if changes else since
        if latest <= since:
            raise VendorError(
                f"{SOURCE} {realm}: more than {cap} {entity} objects changed at {format_time(since)}; CDC cannot page "
                "through them (a query-based backfill is needed)",
                retryable=False,
            )
        nxt[entity] = latest
        return True
