"""Settings of the weather connector, read from `APEX_WEATHER_*` environment variables."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode

from apex_platform.settings import apex_config

NWS_URL = "https://api.weather.gov"
_AREA = re.compile(r"^[A-Z]{2}$")
_UGC = re.compile(r"^[A-Z]{2}[CZ]\d{3}$")


def _split(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip().upper() for part in value.split(",") if part.strip()]
    return value


class WeatherSettings(BaseSettings):
    model_config = apex_config("APEX_WEATHER_")

    base_url: str = Field(default=NWS_URL, description="The NWS API (api.weather.gov) or a mirror of it")
    user_agent: str = Field(
        default="apex-connector-weather",
        min_length=1,
        description="User-Agent of every request: the NWS refuses requests without one and asks for a contact, "
        'e.g. "(acme-freight.com, ops@acme-freight.com)"',
    )
    areas: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="State or marine area codes the lanes cross, comma-separated (TX,OK,AR): one poller each",
    )
    lanes: dict[str, list[str]] = Field(
        default_factory=dict,
        description='Lanes and the county or zone codes (UGC) they run through, as JSON: {"DAL-ATL": ["TXC113", '
        '"LAC017"]}; an alert on one of them gets a THREATENS relation to the lane',
    )
    poll_interval_seconds: float = Field(default=300.0, gt=0, description="Seconds between two complete runs")
    page_size: int = Field(default=100, ge=1, le=500, description="Alerts per request (the API's maximum is 500)")
    lookback_hours: float = Field(default=24.0, gt=0, description="How far back the first run of an area reads")
    overlap_seconds: float = Field(
        default=600.0,
        ge=0,
        description="Each run reads again alerts sent this long before the newest one seen (late publication); "
        "an alert read twice is the same record and changes nothing",
    )
    timeout_seconds: float = Field(default=15.0, gt=0, description="HTTP timeout of one request")
    rate_limit_backoff_seconds: float = Field(
        default=5.0, gt=0, description="Wait after a 429 without Retry-After (the NWS limit clears within ~5 s)"
    )

    @field_validator("user_agent")
    @classmethod
    def _user_agent(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("is blank: the NWS refuses requests that do not say who sends them")
        return value.strip()

    @field_validator("areas", mode="before")
    @classmethod
    def _areas(cls, value: Any) -> Any:
        value = _split(value)
        for area in value if isinstance(value, list) else []:
            if not isinstance(area, str) or not _AREA.match(area):
                raise ValueError(f"{area!r} is not a two-letter state or marine area code (TX, OK, GM)")
        return value

    @field_validator("lanes")
    @classmethod
    def _lanes(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for lane, codes in value.items():
            bad = [code for code in codes if not _UGC.match(code)]
            if not lane.strip() or bad:
                raise ValueError(f"lane {lane!r}: {bad or 'a name'} is not a UGC county or zone code (TXC113)")
        return value
