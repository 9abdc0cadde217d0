"""`PlaidConnector`: polls `/transactions/sync` per Item and takes Plaid's webhooks."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic_settings import BaseSettings

from apex_connector_plaid import webhooks
from apex_connector_plaid.client import fetch_verification_key, transactions_sync
from apex_connector_plaid.cursor import SyncCursor
from apex_connector_plaid.records import SOURCE, page_records, webhook_record
from apex_connector_plaid.settings import (
    DEFAULT_LOOP_CURSOR_MAX_AGE_SECONDS,
    DEFAULT_POLL_INTERVAL_SECONDS,
    DEFAULT_WEBHOOK_REPEAT_WINDOW_SECONDS,
    PlaidSettings,
)
from apex_connector_plaid.tokens import TokenProvider, TokenSource
from apex_connector_plaid.verification import KeyCache, KeyFetcher, verify_webhook
from apex_platform.capabilities import FakeVendor
from apex_platform.contracts import PollTrigger, WebhookReply
from apex_platform.errors import PayloadError, SettingsError, SignatureError, VendorError
from apex_platform.models import InboundEvent, Page, Priority, Record, SourceMode
from apex_platform.settings import load

if TYPE_CHECKING:
    from apex_platform.contracts import SampleDelivery
    from apex_platform.testing.conformance.samples import ConformanceSamples

log = logging.getLogger(__name__)


class PlaidConnector:
    """Plaid Transactions: one poller per Item reads `/transactions/sync`; the
    SYNC_UPDATES_AVAILABLE webhook wakes that poller at once.

    `settings=None` reads `APEX_PLAID_*` on first use, so registering the connector does
    no I/O and works while nothing is configured.
    """

    name = SOURCE
    mode: SourceMode = "poll"
    priority: Priority = "P1"
    settings_model: ClassVar[type[BaseSettings] | None] = PlaidSettings
    #: A sync loop is all-or-nothing: Plaid's TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION
    #: voids every page since the loop's first cursor, so the platform stages the pages of
    #: a loop and writes them only once `has_more` is false (see `PollSource`).
    atomic_pagination: ClassVar[bool] = True
    #: Link webhooks (SESSION_FINISHED, ITEM_ADD_RESULT, EVENTS) carry public tokens, which
    #: `/item/public_token/exchange` turns into access tokens, and link tokens: the
    #: platform redacts them before the body is stored (see `WebhookSource.receive`)
    redacted_keys: ClassVar[frozenset[str]] = frozenset(
        {"public_token", "public_tokens", "link_token", "access_token", "processor_token"}
    )

    def __init__(
        self,
        settings: PlaidSettings | None = None,
        *,
        clock: Callable[[], float] = time.time,
        token_provider: TokenProvider | None = None,
        key_fetcher: KeyFetcher | None = None,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._token_provider = token_provider
        self._key_fetcher = key_fetcher
        self._keys: KeyCache | None = None
        self._tokens: TokenSource | None = None

    def start_fake_vendor(self) -> FakeVendor:
        """`FakeVendorSource`: the demo's fake Plaid API and the settings pointing at it."""
        from apex_connector_plaid import demo

        base_url, stop = demo.start_fake_vendor()
        return FakeVendor(base_url, stop, demo.demo_environment(base_url))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    def conformance_samples(self) -> ConformanceSamples:
        """What the conformance suite runs with (`ConformanceProvider`)."""
        from apex_connector_plaid.conformance import PlaidSamples

        return PlaidSamples()

    @property
    def settings(self) -> PlaidSettings:
        if self._settings is None:
            self._settings = load(PlaidSettings)
        return self._settings

    @property
    def tokens(self) -> TokenSource:
        if self._tokens is None:
            self._tokens = TokenSource(self.settings, self._token_provider)
        return self._tokens

    @property
    def key_cache(self) -> KeyCache:
        if self._keys is None:
            settings = self.settings
            fetch = self._key_fetcher or (lambda kid: fetch_verification_key(settings, kid))
            self._keys = KeyCache(
                fetch,
                self._clock,
                settings.key_cache_seconds,
                unknown_per_minute=settings.key_fetches_per_minute,
                wait_seconds=settings.key_fetch_timeout_seconds + 1.0,
                max_stale=settings.key_max_stale_seconds,
            )
        return self._keys

    # -- PollSource --------------------------------------------------------------------------

    @property
    def poll_interval_seconds(self) -> float:
        # Read by `isinstance(…, PollSource)` too: a broken setting must not break that check;
        # `poll` reports it instead.
        try:
            return self.settings.poll_interval_seconds
        except SettingsError:
            return DEFAULT_POLL_INTERVAL_SECONDS

    @property
    def pagination_cursor_max_age_seconds(self) -> float:
        """How long a mid-loop cursor may wait (`APEX_PLAID_LOOP_CURSOR_MAX_AGE_SECONDS`)."""
        try:
            return self.settings.loop_cursor_max_age_seconds
        except SettingsError:
            return DEFAULT_LOOP_CURSOR_MAX_AGE_SECONDS

    def accounts(self) -> list[str]:
        """The configured Item ids (APEX_PLAID_ACCESS_TOKENS keys, then APEX_PLAID_ITEMS)."""
        return self.tokens.item_ids()

    async def poll(self, account: str, cursor: str | None) -> Page:
        """One `/transactions/sync` page of Item `account` after `cursor`."""
        try:
            settings = self.settings
            token = await self.tokens.token(account)
        except SettingsError as exc:
            raise VendorError(f"plaid item {account}: {exc}", retryable=False) from None
        position = SyncCursor.decode(cursor)
        doc = await transactions_sync(settings, account, token, position.plaid)
        next_cursor, has_more = doc.get("next_cursor"), doc.get("has_more")
        if not isinstance(next_cursor, str) or not isinstance(has_more, bool):
            raise PayloadError(
                f"plaid item {account}: /transactions/sync answer lacks a string next_cursor and a boolean has_more"
            )
        now = self._clock()
        version = position.next_version(int(now * 1_000_000))
        records = page_records(doc, account, version, datetime.fromtimestamp(now, UTC))
        log.info(
            "plaid item %s: %d added, %d modified, %d removed, has_more=%s, status=%s",
            account,
            len(doc.get("added") or []),
            len(doc.get("modified") or []),
            len(doc.get("removed") or []),
            has_more,
            doc.get("transactions_update_status"),
        )
        return Page(
            records=tuple(records),
            next_cursor=SyncCursor(plaid=next_cursor, floor=version).encode(),
            has_more=has_more,
        )

    # -- WebhookSource -----------------------------------------------------------------------

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        """Raise `SignatureError` unless `Plaid-Verification` proves Plaid sent `body` recently.

        The first webhook signed with a new key id fetches that key from Plaid (a blocking
        call with a short timeout, one at a time per kid, at most
        APEX_PLAID_KEY_FETCHES_PER_MINUTE a minute for kids not known to be valid); later
        ones use the cache (see `KeyCache`).
        """
        try:
            settings = self.settings
            keys = self.key_cache
        except SettingsError as exc:
            raise SignatureError(f"Plaid webhook rejected: {exc}") from None
        verify_webhook(
            headers,
            body,
            keys=keys,
            now=self._clock(),
            max_age_seconds=settings.webhook_max_age_seconds,
            clock_skew_seconds=settings.webhook_clock_skew_seconds,
        )

    def receive(self, headers: Mapping[str, str], body: bytes) -> InboundEvent | WebhookReply | PollTrigger:
        """SYNC_UPDATES_AVAILABLE (and the older TRANSACTIONS update codes) → `PollTrigger`
        for the Item; every other webhook → an event kept as a `plaid.webhook` record.

        The event id is the body's type, code and SHA-256 plus the repeat window of its
        arrival (`APEX_PLAID_WEBHOOK_REPEAT_WINDOW_SECONDS`, see `webhooks`): Plaid's
        retries inside a window are duplicates, the same body in a later window is a new
        event. The drain keeps the event id and arrival time taken here."""
        try:
            window_seconds = self.settings.webhook_repeat_window_seconds
        except SettingsError:
            # at the edge `verify` has loaded the settings already; the drain keeps the
            # event id taken at the edge, so only the record matters there
            window_seconds = DEFAULT_WEBHOOK_REPEAT_WINDOW_SECONDS
        now = self._clock()
        hook = webhooks.read(body, arrival=now, window_seconds=window_seconds)
        if hook.is_sync_trigger:
            assert hook.item_id is not None
            try:
                known = self.tokens.knows(hook.item_id)
            except SettingsError as exc:
                raise PayloadError(f"Plaid webhook for item {hook.item_id} cannot be routed: {exc}") from None
            if not known:
                log.warning(
                    "plaid: %s for item %s, which has no access token (APEX_PLAID_ACCESS_TOKENS); ignored",
                    hook.webhook_code,
                    hook.item_id,
                )
                return WebhookReply(
                    200, {"status": "ignored", "reason": "item not configured", "item_id": hook.item_id}
                )
            return PollTrigger(account=hook.item_id, event_id=hook.event_id)
        return InboundEvent(
            source=SOURCE,
            event_id=hook.event_id,
            received_at=datetime.fromtimestamp(now, UTC),
            payload=hook.doc,
            headers={},  # the Plaid-Verification JWT is not kept
        )

    def parse(self, event: InboundEvent) -> list[Record]:
        """A non-trigger webhook as one `plaid.webhook` record (pure)."""
        if event.payload is None:
            raise PayloadError(f"Plaid event {event.event_id} has no payload")
        hook = webhooks.read_doc(event.payload, "")
        # one record per body: a repeat in a later window is a new version (its arrival time)
        return [webhook_record(hook.doc, webhooks.record_id_of(event.event_id), event.received_at)]

    # -- DemoSource --------------------------------------------------------------------------

    def demo_environment(self) -> dict[str, Any]:
        """Points the connector at the demo's fake Plaid, starting it in this process."""
        from apex_connector_plaid import demo

        return demo.demo_environment()

    def demo_deliveries(self) -> list[SampleDelivery]:
        from apex_connector_plaid import demo

        return demo.demo_deliveries()
