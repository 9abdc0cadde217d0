"""Settings of the Front connector, read from `APEX_FRONTAPP_*` environment variables."""

from __future__ import annotations

import json

from pydantic import Field
from pydantic_settings import BaseSettings

from apex_platform.errors import SettingsError
from apex_platform.settings import Credential, Secrets, apex_config

DEFAULT_ACCOUNT = "default"
#: Front's documented API host (each company also has `https://<company>.api.frontapp.com`)
DEFAULT_API_URL = "https://api2.frontapp.com"
#: Front's List Events answers at most 100 events a page
MAX_PAGE_SIZE = 100


class FrontSettings(BaseSettings):
    model_config = apex_config("APEX_FRONTAPP_")

    signing_secret: Secrets | None = Field(
        default=None,
        description=(
            "App secret of the Front app that owns the application webhook "
            "(Developers > your app > Basic information); several, comma-separated or a JSON array, during a "
            "rotation (any one is accepted). Unset: every delivery is rejected."
        ),
    )
    max_age_seconds: int = Field(
        default=300,
        ge=1,
        le=86_400,
        description="Replay window: deliveries whose timestamp is further than this from now are rejected",
    )
    accept_rule_webhooks: bool = Field(
        default=False,
        description=(
            "Also accept legacy rule webhooks (HMAC-SHA1 of the body with the API secret, no timestamp, "
            "so no replay protection)"
        ),
    )
    api_secret: Secrets | None = Field(
        default=None,
        description="API secret that signs rule webhooks; only read when accept_rule_webhooks is true",
    )
    rule_max_age_seconds: int = Field(
        default=3600,
        ge=0,
        le=7 * 86_400,
        description=(
            "Replay window of rule webhooks, from their signed body's emitted_at (they carry no timestamp "
            "header); 0 accepts any age, with no replay protection"
        ),
    )

    # -- reconciliation: List Events (GET /events) fills what the webhooks missed ----------

    reconcile_accounts: str = Field(
        default="",
        description=(
            "Comma-separated accounts (Front companies, one API token each) whose events are reconciled "
            "from List Events; empty (the default): reconciliation is off"
        ),
    )
    api_token: Credential | None = Field(
        default=None, description="Front API token of the account named 'default' (reads events)"
    )
    api_tokens: Credential | None = Field(
        default=None, description='JSON object {"<account>": "<API token>"}: one Front company per account'
    )
    api_url: str = Field(default=DEFAULT_API_URL, description="Front API base URL")
    reconcile_interval_seconds: float = Field(
        default=300.0, ge=1, le=86_400, description="Seconds between two reconciliation passes"
    )
    reconcile_overlap_seconds: float = Field(
        default=900.0,
        ge=0,
        le=7 * 86_400,
        description=(
            "Each pass re-lists this far behind the newest emitted_at seen (the listing is eventually "
            "consistent; events listed twice are deduplicated by the inbox)"
        ),
    )
    reconcile_lookback_seconds: float = Field(
        default=86_400.0, ge=0, le=3650 * 86_400, description="How far back the first pass of an account lists"
    )
    reconcile_page_size: int = Field(
        default=MAX_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE, description="Events per List Events page (Front: at most 100)"
    )
    reconcile_requests_per_minute: float = Field(
        default=10.0,
        gt=0,
        le=600,
        description=(
            "Pages per minute at most (Front's limit is per company, 50 to 200 rpm by plan, shared with "
            "every other client of the company)"
        ),
    )
    http_timeout_seconds: float = Field(default=30.0, gt=0, le=300, description="Timeout of one API call")
    http_attempts: int = Field(
        default=3, ge=1, le=10, description="Attempts of one API call on connection errors and 5xx"
    )

    def reconcile_account_names(self) -> list[str]:
        return list(dict.fromkeys(a.strip() for a in self.reconcile_accounts.split(",") if a.strip()))

    def token_for(self, account: str) -> str:
        """The API token of `account`; `SettingsError` naming the variable to set (never the value)."""
        if self.api_tokens is not None and self.api_tokens.get_secret_value().strip():
            try:
                tokens = json.loads(self.api_tokens.get_secret_value())
            except json.JSONDecodeError:
                raise SettingsError(
                    'APEX_FRONTAPP_API_TOKENS is not valid JSON; expected {"<account>": "<token>"}'
                ) from None
            if not isinstance(tokens, dict) or not all(isinstance(v, str) for v in tokens.values()):
                raise SettingsError(
                    'APEX_FRONTAPP_API_TOKENS must be a JSON object of strings {"<account>": "<token>"}'
                )
            token = tokens.get(account, "").strip()
            if token:
                return str(token)
        if account == DEFAULT_ACCOUNT and self.api_token is not None:
            return self.api_token.get_secret_value().strip()
        raise SettingsError(
            f"no Front API token for account {account!r}: set APEX_FRONTAPP_API_TOKENS "
            f'(JSON {{"{account}": "<token>"}})' + (" or APEX_FRONTAPP_API_TOKEN" if account == DEFAULT_ACCOUNT else "")
        )
