"""Settings of the HubSpot CRM connector, read from `APEX_CRM_*` environment variables."""

from __future__ import annotations

import re
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode

from apex_platform.settings import Credential, apex_config

HUBSPOT_URL = "https://api.hubapi.com"
DEFAULT_OBJECTS = ("contacts", "companies", "deals")
_OBJECT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def _split(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class CrmSettings(BaseSettings):
    model_config = apex_config("APEX_CRM_")

    base_url: str = Field(default=HUBSPOT_URL, description="HubSpot API host")
    access_token: Credential | None = Field(
        default=None,
        description="Access token of a HubSpot private app (Settings > Integrations > Private apps) "
        "with the crm.objects.contacts/companies/deals.read scopes. Unset: every poll fails, naming this variable",
    )
    objects: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_OBJECTS),
        description=(
            "Object types to sync, comma-separated; each is one poller (account) with its own cursor; "
            "other types (tickets, custom objects p_…) get generic records"
        ),
    )
    contact_properties: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Contact properties to read besides the built-in ones"
    )
    company_properties: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Company properties to read besides the built-in ones"
    )
    deal_properties: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Deal properties to read besides the built-in ones"
    )
    associations: bool = Field(default=True, description="Read associations (contact/company/deal) as relations")
    poll_interval_seconds: float = Field(default=300.0, gt=0, description="Seconds between two complete syncs")
    page_size: int = Field(
        default=200,
        ge=1,
        le=200,
        description="Objects per search request (HubSpot's maximum, 200); the archived listing takes at most 100",
    )
    settle_seconds: float = Field(
        default=10.0,
        ge=0,
        le=3600,
        description="Objects modified this recently are left for the next run: HubSpot's search index lags a little",
    )
    archived_sweep_seconds: float = Field(
        default=3600.0,
        ge=0,
        description="How often a run also lists archived objects (tombstones); 0 = every run",
    )
    archived_overlap_seconds: float = Field(
        default=300.0,
        ge=0,
        description="Archived objects up to this long before the previous sweep are listed again (clock skew)",
    )
    timeout_seconds: float = Field(default=30.0, gt=0, description="HTTP timeout of one HubSpot call")
    rate_limit_backoff_seconds: float = Field(
        default=10.0, gt=0, description="Wait after a 429 that says nothing about when to come back"
    )
    search_requests_per_second: int = Field(
        default=4,
        ge=1,
        le=4,
        description="Search calls a second for the account, shared by every poller and worker process "
        "(HubSpot allows 5: a budget of N schedules at most N + 1 in any second)",
    )
    requests_per_ten_seconds: int = Field(
        default=90,
        ge=2,
        le=1000,
        description="Calls per 10 seconds for the account, shared by every poller and worker process "
        "(HubSpot allows private apps 100 to 190 by tier)",
    )
    account_time_zone: str | None = Field(
        default=None,
        description="The HubSpot account's time zone (IANA, e.g. America/New_York): its daily limit resets at "
        "midnight there. Unset: read from GET /account-info/v3/details when a DAILY 429 comes",
    )
    daily_retry_seconds: float = Field(
        default=3600.0,
        gt=0,
        le=86_400,
        description="After a DAILY 429 while the account's time zone is unknown: pause this long, then try again",
    )

    @field_validator("account_time_zone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        try:
            ZoneInfo(value.strip())
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not a time zone name such as America/New_York or US/Eastern") from None
        return value.strip()

    @field_validator("objects", "contact_properties", "company_properties", "deal_properties", mode="before")
    @classmethod
    def _split_lists(cls, value: Any) -> Any:
        return _split(value)

    @field_validator("objects")
    @classmethod
    def _object_names(cls, value: list[str]) -> list[str]:
        names = [v.lower() for v in value]
        for name in names:
            if not _OBJECT_NAME.match(name):
                raise ValueError(f"{name!r} is not a HubSpot object type name such as contacts, companies or deals")
        return list(dict.fromkeys(names))

    @field_validator("contact_properties", "company_properties", "deal_properties")
    @classmethod
    def _property_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not _OBJECT_NAME.match(name.lower()):
                raise ValueError(f"{name!r} is not a HubSpot property name")
        return value

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value
