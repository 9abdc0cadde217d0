"""`SamsaraConnector`: Webhooks 1.0/2.0 (batched) and the vehicle stats feed (stream)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, ClassVar

from pydantic_settings import BaseSettings

from apex_connector_samsara import signatures
from apex_connector_samsara.envelope import decode_body, is_ping, read_delivery
from apex_connector_samsara.feed import FeedReader
from apex_connector_samsara.records import SOURCE, build_records
from apex_connector_samsara.settings import MIN_FEED_WAIT_SECONDS, SamsaraSettings
from apex_platform.capabilities import FakeVendor
from apex_platform.contracts import SampleDelivery, WebhookReply
from apex_platform.errors import ApexError, PayloadError, SettingsError, SignatureError, VendorError
from apex_platform.models import InboundEvent, Page, Priority, Record, SourceMode
from apex_platform.reconcile import ReconcilePage
from apex_platform.settings import load

if TYPE_CHECKING:
    from apex_platform.testing.conformance.samples import ConformanceSamples


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    # HTTP header names are case-insensitive and hosts differ in how they present them.
    return {str(name).lower(): value for name, value in headers.items()}


class SamsaraConnector:
    """Samsara: webhooks (verify/receive/parse, accumulated in batches) and the stats feed (poll).

    `settings=None` reads `APEX_SAMSARA_*` on first use, so registering the connector does
    no I/O and works while nothing is configured.
    """

    name = SOURCE
    mode: SourceMode = "stream"
    priority: Priority = "P1"
    settings_model: ClassVar[type[BaseSettings] | None] = SamsaraSettings
    #: `verify` is an HMAC or token check with configured secrets: the API runs it on its loop
    verify_is_local: ClassVar[bool] = True
    #: ~1,000 events/min: webhook events go to the accumulator and are parsed in batches
    batch_webhooks: ClassVar[bool] = True

    def __init__(
        self,
        settings: SamsaraSettings | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._clock = clock

    @property
    def settings(self) -> SamsaraSettings:
        if self._settings is None:
            self._settings = load(SamsaraSettings)
        return self._settings

    def start_fake_vendor(self) -> FakeVendor:
        """`FakeVendorSource`: the demo's fake Samsara API and the settings pointing at it."""
        from apex_connector_samsara import demo

        base_url, stop = demo.start_fake_vendor()
        return FakeVendor(base_url, stop, demo.demo_environment(base_url))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    def conformance_samples(self) -> ConformanceSamples:
        """What the conformance suite runs with (`ConformanceProvider`)."""
        from apex_connector_samsara.conformance import SamsaraSamples

        return SamsaraSamples()

    # -- PollSource (the stream) -------------------------------------------------------------

    @property
    def poll_interval_seconds(self) -> float:
        """Wait once the feed is drained. Never fails (it is read when a stream starts and by
        protocol checks); invalid settings surface at the first `poll`."""
        try:
            return max(MIN_FEED_WAIT_SECONDS, self.settings.feed_wait_seconds)
        except ApexError:
            return MIN_FEED_WAIT_SECONDS

    def accounts(self) -> list[str]:
        """One feed stream per Samsara organisation (API token); no I/O."""
        return self.settings.account_names()

    async def poll(self, account: str, cursor: str | None) -> Page:
        """The feed page after `cursor` (None: Samsara's last known values).

        Settings problems are non-retryable `VendorError`s: retrying cannot fix them, and the
        stream shows the message (naming the variable) as its last error."""
        try:
            reader = FeedReader(self.settings)
            return await reader.read_page(account, cursor)
        except SettingsError as exc:
            raise VendorError(f"samsara account {account!r}: {exc}", retryable=False) from None

    # -- ReconcileSource: the route updates feed fills what the webhooks missed ------------

    @property
    def reconcile_interval_seconds(self) -> float:
        """Seconds between passes; never fails (invalid settings surface at `reconcile`)."""
        try:
            return self.settings.reconcile_interval_seconds
        except ApexError:
            return 60.0

    def reconcile_accounts(self) -> list[str]:
        """`APEX_SAMSARA_RECONCILE_ACCOUNTS`: off (empty) by default."""
        return self.settings.reconcile_account_names()

    async def reconcile(self, account: str, cursor: str | None) -> ReconcilePage:
        """The route updates feed page after `cursor` (see `routes_feed`)."""
        from apex_connector_samsara.routes_feed import RoutesFeedReader

        return await RoutesFeedReader(self.settings).read_page(account, cursor)

    # -- WebhookSource -----------------------------------------------------------------------

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        """Raise `SignatureError` unless `body` was signed with a configured secret within the window."""
        settings = self.settings
        secrets = settings.secrets()
        if not secrets:
            raise SignatureError(
                "Samsara webhook rejected: no webhook secret is configured. Set APEX_SAMSARA_WEBHOOK_SECRET "
                "to the webhook's Secret Key (Samsara: Settings > Webhooks)"
            )
        try:
            keys = [signatures.decode_secret(s, index=i) for i, s in enumerate(secrets)]
        except SettingsError as exc:
            raise SignatureError(f"Samsara webhook rejected: {exc}") from None
        lowered = _lower(headers)
        provided = signatures.parse_signatures(lowered.get(signatures.SIGNATURE_HEADER))
        raw_ts = lowered.get(signatures.TIMESTAMP_HEADER)
        timestamp = signatures.parse_timestamp(raw_ts)
        signatures.check_fresh(timestamp, self._clock(), settings.max_age_seconds)
        assert raw_ts is not None  # parse_timestamp refused a missing one
        if not signatures.matches(body, raw_ts.strip(), provided, keys):
            raise SignatureError(
                "Samsara webhook rejected: X-Samsara-Signature does not match the body "
                "(wrong APEX_SAMSARA_WEBHOOK_SECRET, or the body was altered on the way)"
            )

    def receive(self, headers: Mapping[str, str], body: bytes) -> InboundEvent | WebhookReply:
        """Answer a Ping at once; decode anything else into an `InboundEvent` (id = eventId:
        Samsara's retries of one delivery repeat it; two events never share it)."""
        doc = decode_body(body)
        if is_ping(doc):
            return WebhookReply(200, {"status": "ok", "type": "Ping"})
        delivery = read_delivery(doc)
        return InboundEvent(
            source=SOURCE,
            event_id=delivery.event_id,
            received_at=datetime.fromtimestamp(self._clock(), UTC),
            payload=doc,
            # Nothing from the request headers is kept: they hold the signature.
            headers={},
        )

    def parse(self, event: InboundEvent) -> list[Record]:
        """Records of one delivery (pure). `PayloadError` only when not even the event record can be made."""
        if event.payload is None:
            where = f" (stored as {event.payload_ref}; resolve it before parsing)" if event.payload_ref else ""
            raise PayloadError(f"Samsara event {event.event_id} has no payload{where}")
        return build_records(read_delivery(event.payload))

    # -- DemoSource --------------------------------------------------------------------------

    def demo_environment(self) -> dict[str, str]:
        """A throw-away webhook secret for `apex-platform demo`, used only when none is set."""
        from apex_connector_samsara.demo import demo_secret

        return {"APEX_SAMSARA_WEBHOOK_SECRET": demo_secret()}

    def demo_deliveries(self) -> list[SampleDelivery]:
        """The sample deliveries (incl. Samsara's published RouteStopArrival example), signed now."""
        from apex_connector_samsara import samples

        secrets = self.settings.secrets()
        if not secrets:
            raise SettingsError("APEX_SAMSARA_WEBHOOK_SECRET is not set; the demo cannot sign Samsara webhooks")
        now = int(self._clock())
        deliveries = []
        for event in samples.events():
            body = samples.encode(event)
            headers = {**signatures.sign(body, secrets[0], now), "Content-Type": "application/json"}
            deliveries.append(SampleDelivery(path=f"/webhooks/{self.name}", body=body, headers=headers))
        return deliveries
