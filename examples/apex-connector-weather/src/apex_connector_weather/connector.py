"""`WeatherConnector`: polls the NWS alerts API, area by area, page by page.

A run reads `GET /alerts?area=TX&start=<since>&limit=N`, newest first, following the
`cursor` of each answer's `pagination.next` until an answer has no next page. The run's
cursor (kept by Apex in the poll workflow, never a secret) holds `since`, the vendor's
page token and the newest `sent` time seen; when the run ends the next one starts at that
time less `overlap_seconds`. Alerts read twice are identical records, which every store
writes once, so the overlap costs nothing and a late-published alert is not missed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_settings import BaseSettings

from apex_connector_weather.records import SOURCE, alert_records, sent_time
from apex_connector_weather.settings import WeatherSettings
from apex_platform.errors import PayloadError, VendorError
from apex_platform.models import InboundEvent, Page, Priority, Record, SourceMode
from apex_platform.payloads import decode_json_object
from apex_platform.settings import load
from apex_platform.vendor_http import status_error

if TYPE_CHECKING:
    from apex_platform.testing.conformance import ConformanceSamples


class WeatherCursor(BaseModel):
    """Where a run of one area stands (JSON in the workflow's state)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    since: datetime
    page: str | None = None
    newest: datetime | None = None


class WeatherConnector:
    """NWS alerts for the areas a freight company's lanes cross (`APEX_WEATHER_AREAS`).

    Each area is one account, so each has its own poller and cursor. `settings=None` reads
    `APEX_WEATHER_*` on first use; registering does no I/O.
    """

    name = SOURCE
    mode: SourceMode = "poll"
    priority: Priority = "P2"
    settings_model: ClassVar[type[BaseSettings] | None] = WeatherSettings

    def __init__(
        self,
        settings: WeatherSettings | None = None,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._transport = transport

    @property
    def settings(self) -> WeatherSettings:
        if self._settings is None:
            self._settings = load(WeatherSettings)
        return self._settings

    @property
    def poll_interval_seconds(self) -> float:
        return self.settings.poll_interval_seconds

    def accounts(self) -> list[str]:
        return list(self.settings.areas)

    def conformance_samples(self) -> ConformanceSamples:
        """What `pytest --apex-conformance weather` runs with (a fake NWS)."""
        from apex_connector_weather.conformance import WeatherSamples

        return WeatherSamples()

    def parse(self, event: InboundEvent) -> list[Record]:
        """One alert feature, as the API gives it, to its records (replays, tests)."""
        return alert_records(event.payload, self.settings.lanes)

    async def poll(self, account: str, cursor: str | None) -> Page:
        settings = self.settings
        where = f"weather {account}"
        if account not in settings.areas:
            raise VendorError(f"{where}: not a configured area (APEX_WEATHER_AREAS)", retryable=False)
        state = self._decode(cursor, where)
        params = {"area": account, "start": state.since.isoformat(), "limit": str(settings.page_size)}
        if state.page:
            params["cursor"] = state.page
        doc = await self._get("/alerts", params, where)
        features = doc.get("features")
        if not isinstance(features, list):
            raise VendorError(f"{where}: the answer has no 'features' list", retryable=True)
        records: list[Record] = []
        newest = state.newest
        for feature in features:
            try:
                records += alert_records(feature, settings.lanes)
                sent = sent_time(feature)
            except PayloadError as exc:  # the API's own data: retried until the vendor fixes it
                raise VendorError(f"{where}: {exc}", retryable=True) from None
            newest = sent if newest is None else max(newest, sent)
        token = _next_token(doc)
        if token and features:
            nxt = WeatherCursor(since=state.since, page=token, newest=newest)
            return Page(records=tuple(records), next_cursor=nxt.model_dump_json(), has_more=True)
        overlap = timedelta(seconds=settings.overlap_seconds)
        done = WeatherCursor(since=state.since if newest is None else max(state.since, newest - overlap))
        return Page(records=tuple(records), next_cursor=done.model_dump_json(), has_more=False)

    def _decode(self, cursor: str | None, where: str) -> WeatherCursor:
        if cursor is None:
            return WeatherCursor(since=self._clock() - timedelta(hours=self.settings.lookback_hours))
        try:
            return WeatherCursor.model_validate_json(cursor)
        except ValidationError:
            raise VendorError(
                f"{where}: the cursor is not one this connector wrote: {cursor[:80]!r}", retryable=False
            ) from None

    async def _get(self, path: str, params: dict[str, str], where: str) -> dict[str, Any]:
        settings = self.settings
        headers = {"User-Agent": settings.user_agent, "Accept": "application/geo+json"}
        async with httpx.AsyncClient(
            base_url=settings.base_url, timeout=settings.timeout_seconds, transport=self._transport, headers=headers
        ) as http:
            try:
                response = await http.get(path, params=params)
            except httpx.TransportError as exc:
                raise VendorError(f"{where}: GET {path} failed: {type(exc).__name__}", retryable=True) from None
        if response.status_code != 200:
            raise status_error(
                response, where=f"{where}: GET {path}", rate_limit_backoff=settings.rate_limit_backoff_seconds
            )
        try:
            return decode_json_object(response.content, what=f"the NWS answer to GET {path}")
        except PayloadError as exc:
            raise VendorError(f"{where}: {exc}", retryable=True) from None


def _next_token(doc: dict[str, Any]) -> str | None:
    """The `cursor` parameter of `pagination.next`. Only the token is kept: the next request
    goes to the configured base URL, wherever the link points."""
    pagination = doc.get("pagination")
    link = pagination.get("next") if isinstance(pagination, dict) else None
    if not isinstance(link, str):
        return None
    tokens = parse_qs(urlsplit(link).query).get("cursor", [])
    return tokens[0] if tokens and 0 < len(tokens[0]) <= 1024 else None
