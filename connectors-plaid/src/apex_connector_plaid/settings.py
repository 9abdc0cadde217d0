"""Settings of the Plaid connector, read from `APEX_PLAID_*` environment variables."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode

from apex_connector_plaid.verification import DEFAULT_MAX_STALE_SECONDS
from apex_platform.settings import Credential, apex_config

PRODUCTION_URL = "https://production.plaid.com"
SANDBOX_URL = "https://sandbox.plaid.com"
#: Plaid's API hosts; `development` was retired by Plaid in 2024 but is kept for old set-ups.
ENVIRONMENTS = {
    "production": PRODUCTION_URL,
    "sandbox": SANDBOX_URL,
    "development": "https://development.plaid.com",
}
DEFAULT_POLL_INTERVAL_SECONDS = 3600.0
#: Plaid keeps a loop's final cursor for at least a year, and promises nothing for the
#: cursors inside a loop: a loop that waited longer than this is read again from its start
DEFAULT_LOOP_CURSOR_MAX_AGE_SECONDS = 3600.0
#: Plaid retries a webhook not answered 2xx within 10 s for up to 24 hours: identical
#: bodies within one window this long are one event (see `webhooks`)
DEFAULT_WEBHOOK_REPEAT_WINDOW_SECONDS = 86400.0


class PlaidSettings(BaseSettings):
    model_config = apex_config("APEX_PLAID_")

    client_id: str | None = Field(default=None, description="Plaid client_id (Dashboard > Developers > Keys)")
    secret: Credential | None = Field(
        default=None, description="Plaid secret of the environment that base_url points at (sandbox or production)"
    )
    base_url: str = Field(
        default=PRODUCTION_URL,
        description="Plaid API host: https://production.plaid.com or https://sandbox.plaid.com",
    )
    access_tokens: dict[str, Credential] = Field(
        default_factory=dict,
        description='Access token per Item, as JSON: {"<item_id>": "access-production-…"}',
    )
    items: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="More Item ids (comma-separated) whose access tokens come from token_provider",
    )
    token_provider: str | None = Field(
        default=None,
        description="'package.module:function' called with an item_id; returns its access token (vault look-up)",
    )
    page_size: int = Field(default=500, ge=1, le=500, description="`count` of each /transactions/sync call")
    poll_interval_seconds: float = Field(
        default=DEFAULT_POLL_INTERVAL_SECONDS,
        gt=0,
        description="Seconds between syncs of an Item; SYNC_UPDATES_AVAILABLE webhooks start one at once",
    )
    loop_cursor_max_age_seconds: float = Field(
        default=DEFAULT_LOOP_CURSOR_MAX_AGE_SECONDS,
        gt=0,
        description="A sync loop whose next page waited longer than this (after errors) restarts from its first cursor",
    )
    timeout_seconds: float = Field(default=30.0, gt=0, description="HTTP timeout of a /transactions/sync call")
    rate_limit_backoff_seconds: float = Field(
        default=60.0, gt=0, description="Wait after a 429 that carries no Retry-After header"
    )
    webhook_max_age_seconds: int = Field(
        default=300, ge=1, le=3600, description="Reject Plaid-Verification tokens whose iat is older than this"
    )
    webhook_clock_skew_seconds: int = Field(
        default=60, ge=0, le=600, description="Accept an iat this far in the future (clock differences)"
    )
    webhook_repeat_window_seconds: float = Field(
        default=DEFAULT_WEBHOOK_REPEAT_WINDOW_SECONDS,
        ge=60,
        le=30 * 86400,
        description=(
            "The same webhook body twice within one window of this length is one event (Plaid's retries); "
            "in a later window it is a new event. Default: Plaid's retry period, 24 hours"
        ),
    )
    key_fetch_timeout_seconds: float = Field(
        default=3.0, gt=0, le=30, description="HTTP timeout of /webhook_verification_key/get"
    )
    key_cache_seconds: float = Field(
        default=3600.0, gt=0, description="How long a fetched verification key is trusted before it is fetched again"
    )
    key_max_stale_seconds: float = Field(
        default=DEFAULT_MAX_STALE_SECONDS,
        ge=0,
        description=(
            "How long past key_cache_seconds a cached verification key keeps verifying while Plaid's key "
            "endpoint cannot be asked (down, timing out, 5xx, 429); past it webhooks get 503 until Plaid answers"
        ),
    )
    key_fetches_per_minute: int = Field(
        default=10,
        ge=1,
        le=600,
        description=(
            "At most this many /webhook_verification_key/get calls a minute for key ids not known to be valid; "
            "past it a webhook with a fresh kid is refused (401) without asking Plaid"
        ),
    )

    @field_validator("items", mode="before")
    @classmethod
    def _split_items(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        value = value.strip()
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL such as https://sandbox.plaid.com")
        return value.rstrip("/")
