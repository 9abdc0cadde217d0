"""`SonarConnector`: scheduled SONAR ticker polling, plus HMAC-signed alert webhooks."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, ClassVar

import httpx
from pydantic_settings import BaseSettings

from apex_connector_sonar import alerts, signatures
from apex_connector_sonar.client import SonarClient
from apex_connector_sonar.settings import SonarSettings, split_list
from apex_connector_sonar.tickers import SOURCE, Ticker, value_record
from apex_platform.capabilities import FakeVendor
from apex_platform.contracts import SampleDelivery
from apex_platform.errors import PayloadError, SettingsError, VendorError
from apex_platform.models import InboundEvent, Page, Priority, Record, SourceMode
from apex_platform.ratelimit import RateBudgets, budget_key, shared_budgets
from apex_platform.settings import load, secret_values

if TYPE_CHECKING:
    from apex_platform.testing.conformance.samples import ConformanceSamples

DEFAULT_POLL_INTERVAL = 3600.0


def _today() -> date:
    return datetime.now(UTC).date()


class SonarConnector:
    """FreightWaves SONAR. Poll accounts are ticker symbols (`APEX_SONAR_TICKERS`); each has
    its own poller and cursor (the last date fetched, ISO). Alerts arrive at
    ``POST /webhooks/sonar`` and start one ingest workflow each.
    """

    name = SOURCE
    mode: SourceMode = "poll"
    priority: Priority = "P2"
    settings_model: ClassVar[type[BaseSettings] | None] = SonarSettings
    #: `verify` is an HMAC or token check with configured secrets: the API runs it on its loop
    verify_is_local: ClassVar[bool] = True

    def __init__(
        self,
        settings: SonarSettings | None = None,
        *,
        clock: Callable[[], float] = time.time,
        today: Callable[[], date] = _today,
        budgets: RateBudgets | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        limit_window_seconds: float = 60.0,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._today = today
        self._budgets = budgets
        self._transport = transport
        self._window = limit_window_seconds  # SONAR's minute; tests shorten it
        self._client: SonarClient | None = None

    @property
    def settings(self) -> SonarSettings:
        if self._settings is None:
            self._settings = load(SonarSettings)
        return self._settings

    @property
    def client(self) -> SonarClient:
        if self._client is None:
            s = self.settings
            # one budget per SONAR account, shared by every worker process (named without the user)
            budget = budget_key("sonar", s.base_url, s.username or "")
            self._client = SonarClient(
                s,
                self._budgets or shared_budgets(),
                budget,
                clock=self._clock,
                transport=self._transport,
                window=self._window,
            )
        return self._client

    def start_fake_vendor(self) -> FakeVendor:
        """`FakeVendorSource`: the demo's fake SONAR API and the settings pointing at it."""
        from apex_connector_sonar import demo

        base_url, stop = demo.start_fake_vendor()
        return FakeVendor(base_url, stop, demo.demo_environment(base_url))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    def conformance_samples(self) -> ConformanceSamples:
        """What the conformance suite runs with (`ConformanceProvider`)."""
        from apex_connector_sonar.conformance import SonarSamples

        return SonarSamples()

    # -- PollSource -------------------------------------------------------------------------

    @property
    def poll_interval_seconds(self) -> float:
        try:
            return self.settings.poll_interval_seconds
        except SettingsError:
            return DEFAULT_POLL_INTERVAL  # invalid settings surface at the first poll, not at registration

    def accounts(self) -> list[str]:
        return self.settings.ticker_list()

    async def poll(self, account: str, cursor: str | None) -> Page:
        """Data of one ticker after the cursor (minus the revision look-back), one page of
        at most `APEX_SONAR_PAGE_DAYS` days; the next cursor is the last date requested."""
        s = self.settings
        try:
            ticker = Ticker.parse(account)
        except PayloadError as exc:
            raise VendorError(f"sonar: {exc}", retryable=False) from None
        today = self._today()
        if cursor:
            try:
                last = date.fromisoformat(cursor)
            except ValueError:
                raise VendorError(f"sonar {account}: cursor {cursor!r} is not an ISO date", retryable=False) from None
            start = last + timedelta(days=1 - s.lookback_days)
        else:
            start = today - timedelta(days=s.initial_days - 1)
        if start > today:
            return Page(next_cursor=cursor, has_more=False)
        end = min(start + timedelta(days=s.page_days - 1), today)
        points = await self.client.data(ticker, start, end)
        fields = split_list(s.revision_field)
        best: dict[str, Record] = {}
        for point in points:
            record = value_record(ticker, point, fields)
            if record is None or not start.isoformat() <= record.attributes["date"] <= end.isoformat():
                continue
            if record.id not in best or record.version >= best[record.id].version:
                best[record.id] = record
        records = tuple(sorted(best.values(), key=lambda r: r.version))
        return Page(records=records, next_cursor=end.isoformat(), has_more=end < today)

    # -- WebhookSource (alerts) ---------------------------------------------------------------

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        signatures.verify(headers, body, self.settings, self._clock())

    def receive(self, headers: Mapping[str, str], body: bytes) -> InboundEvent:
        doc = alerts.decode(body)
        ticker = alerts.ticker_of(doc)
        return InboundEvent(
            source=SOURCE,
            event_id=alerts.event_id(doc, ticker),
            received_at=datetime.fromtimestamp(self._clock(), UTC),
            payload=doc,
            headers={},
        )

    def parse(self, event: InboundEvent) -> list[Record]:
        if not isinstance(event.payload, dict):
            where = f" (stored as {event.payload_ref}; resolve it first)" if event.payload_ref else ""
            raise PayloadError(f"SONAR alert {event.event_id} has no payload{where}")
        return [alerts.alert_record(event.payload, event.event_id, event.received_at)]

    # -- DemoSource -------------------------------------------------------------------------

    def demo_deliveries(self) -> list[SampleDelivery]:
        from apex_connector_sonar import samples

        s = self.settings
        secrets = secret_values(s.webhook_secret)
        if not secrets:
            raise SettingsError("APEX_SONAR_WEBHOOK_SECRET is not set; the demo cannot sign SONAR alerts")
        out = []
        for doc in samples.alerts():
            body = samples.encode(doc)
            headers = samples.sign_headers(
                body,
                secrets[0],
                header=s.signature_header,
                encoding=s.signature_encoding,
                timestamp_header=s.timestamp_header,
                now=self._clock(),
            )
            out.append(SampleDelivery(path=f"/webhooks/{self.name}", body=body, headers=headers))
        return out
