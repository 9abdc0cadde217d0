"""Settings of the Samsara connector, read from `APEX_SAMSARA_*` environment variables."""

from __future__ import annotations

import json
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings

from apex_platform.errors import SettingsError
from apex_platform.settings import Credential, Secrets, apex_config, secret_values

DEFAULT_ACCOUNT = "default"
DEFAULT_BASE_URL = "https://api.samsara.com"
#: Samsara asks feed readers to wait at least 5 s once `hasNextPage` is false.
MIN_FEED_WAIT_SECONDS = 5.0


class SamsaraSettings(BaseSettings):
    model_config = apex_config("APEX_SAMSARA_")

    webhook_secret: Secrets | None = Field(
        default=None,
        description=(
            "Secret key of the Samsara webhook, base64 as Samsara shows it. Several, comma-separated, "
            "for several webhooks (organisations) or during a rotation. Unset, or not base64: every delivery is"
            " rejected with a message naming this variable."
        ),
    )
    max_age_seconds: int = Field(
        default=300,
        ge=1,
        le=86_400,
        description="Replay window: deliveries whose X-Samsara-Timestamp is further than this from now are rejected",
    )
    api_token: Credential | None = Field(
        default=None, description="API token of the account named 'default' (Read Vehicle Statistics scope)"
    )
    api_tokens: Credential | None = Field(
        default=None,
        description='JSON object {"<account>": "<API token>"}: one Samsara organisation (token) per account',
    )
    accounts: str = Field(
        default="",
        description=(
            "Comma-separated accounts (one feed stream each). Empty: the accounts of APEX_SAMSARA_API_TOKENS, "
            "plus 'default' when APEX_SAMSARA_API_TOKEN is set"
        ),
    )
    base_url: str = Field(default=DEFAULT_BASE_URL, description="Samsara API base URL (EU: https://api.eu.samsara.com)")
    feed_types: str = Field(default="gps,engineStates", description="`types` of the vehicle stats feed")
    feed_wait_seconds: float = Field(
        default=MIN_FEED_WAIT_SECONDS,
        ge=MIN_FEED_WAIT_SECONDS,
        le=3600,
        description="Wait between feed calls once the feed is drained (hasNextPage false); at least 5 s",
    )
    http_timeout_seconds: float = Field(default=30.0, gt=0, le=300, description="Timeout of one API call")
    http_attempts: int = Field(
        default=3, ge=1, le=10, description="Attempts of one API call on connection errors and 5xx before giving up"
    )
    expired_cursor: Literal["fail", "restart"] = Field(
        default="fail",
        description=(
            "When Samsara rejects a stored feed cursor (cursors expire after 30 days): 'fail' keeps the "
            "stream stopped on an error until an operator acts; 'restart' reads on from now and records "
            "the gap as a samsara.feed_gap record"
        ),
    )

    reconcile_accounts: str = Field(
        default="",
        description=(
            "Comma-separated accounts whose route stop arrivals and departures are reconciled from the "
            "route updates feed (the token needs 'Read Routes'); empty (the default): reconciliation is off"
        ),
    )
    reconcile_interval_seconds: float = Field(
        default=60.0, ge=5, le=86_400, description="Seconds between two reconciliation passes"
    )

    def reconcile_account_names(self) -> list[str]:
        return list(dict.fromkeys(a.strip() for a in self.reconcile_accounts.split(",") if a.strip()))

    def secrets(self) -> list[str]:
        """The configured webhook secrets, as given (base64 text)."""
        return secret_values(self.webhook_secret)

    def token_map(self) -> dict[str, str]:
        """APEX_SAMSARA_API_TOKENS decoded; `SettingsError` naming the variable when it is not a JSON object."""
        if self.api_tokens is None or not self.api_tokens.get_secret_value().strip():
            return {}
        try:
            doc = json.loads(self.api_tokens.get_secret_value())
        except json.JSONDecodeError:
            # The message never repeats the value: it holds tokens.
            raise SettingsError(
                'APEX_SAMSARA_API_TOKENS is not valid JSON; expected {"<account>": "<token>"}'
            ) from None
        if not isinstance(doc, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in doc.items()):
            raise SettingsError('APEX_SAMSARA_API_TOKENS must be a JSON object of strings {"<account>": "<token>"}')
        return {k.strip(): v.strip() for k, v in doc.items() if k.strip() and v.strip()}

    def account_names(self) -> list[str]:
        explicit = [a.strip() for a in self.accounts.split(",") if a.strip()]
        if explicit:
            return list(dict.fromkeys(explicit))
        names = list(self.token_map())
        if self.api_token is not None and self.api_token.get_secret_value().strip() and DEFAULT_ACCOUNT not in names:
            names.insert(0, DEFAULT_ACCOUNT)
        return names

    def token_for(self, account: str) -> str:
        """The API token of `account`; `SettingsError` naming the variable to set."""
        token = self.token_map().get(account)
        if token:
            return token
        if account == DEFAULT_ACCOUNT and self.api_token is not None and self.api_token.get_secret_value().strip():
            return self.api_token.get_secret_value().strip()
        raise SettingsError(
            f"no Samsara API token for account {account!r}: set APEX_SAMSARA_API_TOKENS "
            f'(JSON {{"{account}": "<token>"}})' + (" or APEX_SAMSARA_API_TOKEN" if account == DEFAULT_ACCOUNT else "")
        )

    def feed_type_list(self) -> list[str]:
        return [t.strip() for t in self.feed_types.split(",") if t.strip()]
