"""Settings of the SONAR connector, read from `APEX_SONAR_*` environment variables."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings

from apex_platform.settings import Credential, Secrets, apex_config


def split_list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


class SonarSettings(BaseSettings):
    model_config = apex_config("APEX_SONAR_")

    # -- ticker polling -------------------------------------------------------------------
    base_url: str = Field(default="https://api.freightwaves.com", description="SONAR API base URL")
    username: str | None = Field(default=None, description="SONAR API user")
    password: Credential | None = Field(default=None, description="Password of the SONAR API user")
    tickers: str = Field(
        default="",
        description=(
            "Comma-separated tickers to poll as INDEX.GRANULARITY (OTRI.USA, OTRI.ATL, NTI.USA, "
            "VOTRI.ATLCHI); each is one poller account"
        ),
    )
    poll_interval_seconds: float = Field(default=3600.0, gt=0, description="Seconds between complete runs")
    initial_days: int = Field(default=30, ge=1, le=3650, description="Days fetched on the first run of a ticker")
    lookback_days: int = Field(
        default=7, ge=0, le=365, description="Days before the cursor fetched again on every run, to catch revisions"
    )
    page_days: int = Field(default=31, ge=1, le=366, description="Days per data request (one page)")
    revision_field: str = Field(
        default="data_Revision,revision,dataRevision",
        description="Comma-separated fields of a data point holding a revision number, if the API sends one",
    )
    requests_per_minute: int = Field(
        default=100,
        ge=2,
        le=10_000,
        description="The account's budget, shared by every worker process (SONAR allows 100/min per account)",
    )
    burst: int = Field(default=5, ge=1, le=100, description="Requests allowed back to back within the budget")
    token_ttl_seconds: float = Field(
        default=86_400.0,
        gt=0,
        description="Re-authenticate after this long (SONAR tokens last a year; it asks for daily)",
    )
    timeout_seconds: float = Field(default=30.0, gt=0, le=300, description="Timeout of one HTTP call to the SONAR API")
    http_retries: int = Field(default=2, ge=0, le=10, description="Quick in-call retries of 5xx and network errors")
    rate_limit_backoff_seconds: float = Field(
        default=600.0,
        gt=0,
        description="After a 429 every worker pauses SONAR calls this long (SONAR blocks for about ten minutes), "
        "or longer when Retry-After says so",
    )

    # -- alert webhooks -------------------------------------------------------------------
    webhook_secret: Secrets | None = Field(
        default=None,
        description="Shared secret of alert webhooks (HMAC-SHA256); several, comma-separated or a JSON array, "
        "during a rotation. Unset: every alert is rejected",
    )
    signature_header: str = Field(
        default="X-Sonar-Signature", min_length=1, description="Header that carries the alert webhook's signature"
    )
    signature_encoding: Literal["hex", "base64"] = Field(default="hex", description="Encoding of the signature")
    require_timestamp: bool = Field(
        default=True,
        description="Refuse an empty APEX_SONAR_TIMESTAMP_HEADER: without one, alerts have no replay protection",
    )
    timestamp_header: str | None = Field(
        default="X-Sonar-Timestamp",
        description="The header with the send time (unix seconds); the signature covers '<timestamp>.<body>' "
        "and old or future deliveries are rejected. Empty only with APEX_SONAR_REQUIRE_TIMESTAMP=false",
    )
    max_age_seconds: int = Field(default=300, ge=1, le=86_400, description="Replay window with a timestamp header")

    @field_validator("base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("timestamp_header")
    @classmethod
    def _empty_is_none(cls, value: str | None, info: ValidationInfo) -> str | None:
        value = value.strip() or None if value is not None else None
        if value is None and info.data.get("require_timestamp", True):
            raise ValueError(
                "is empty: alerts would have no replay protection; set APEX_SONAR_REQUIRE_TIMESTAMP=false "
                "to accept that"
            )
        return value

    @model_validator(mode="after")
    def _pages_progress(self) -> SonarSettings:
        if self.page_days <= self.lookback_days:
            raise ValueError("page_days must be larger than lookback_days, or a run could never move forward")
        return self

    def ticker_list(self) -> list[str]:
        return list(dict.fromkeys(t.upper() for t in split_list(self.tickers)))
