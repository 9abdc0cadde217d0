"""Settings of the QuickBooks Online connector, read from `APEX_FINANCIAL_*` environment variables."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode

from apex_platform.settings import Credential, apex_config

QBO_URL = "https://quickbooks.api.intuit.com"
SANDBOX_URL = "https://sandbox-quickbooks.api.intuit.com"
INTUIT_TOKEN_URL = "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer"  # noqa: S105 - a URL
DEFAULT_ENTITIES = ("Invoice", "Payment", "Bill", "Customer", "Vendor")
_ENTITY = re.compile(r"^[A-Z][A-Za-z]{1,40}$")
_REALM = re.compile(r"^[0-9]{1,32}$")


class FinancialSettings(BaseSettings):
    model_config = apex_config("APEX_FINANCIAL_")

    base_url: str = Field(default=QBO_URL, description="QuickBooks Online API host (sandbox: " + SANDBOX_URL + ")")
    token_url: str = Field(default=INTUIT_TOKEN_URL, description="Intuit's OAuth 2 token endpoint")
    client_id: str | None = Field(default=None, description="Client ID of the Intuit app (Developer portal > Keys)")
    client_secret: Credential | None = Field(default=None, description="Client secret of the Intuit app")
    refresh_tokens: dict[str, Credential] = Field(
        default_factory=dict,
        description='Initial refresh token per company, as JSON: {"<realmId>": "<refresh token>"}. '
        "Intuit rotates them; the current one is kept in the token store",
    )
    entities: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_ENTITIES), description="CDC entities to read, comma-separated"
    )
    minor_version: int = Field(default=75, ge=1, le=999, description="`minorversion` sent with every call")
    poll_interval_seconds: float = Field(default=300.0, gt=0, description="Seconds between two runs")
    initial_lookback_days: float = Field(
        default=30.0, gt=0, le=30, description="How far back the first run reads (CDC covers 30 days at most)"
    )
    max_objects: int = Field(
        default=1000, ge=1, le=1000, description="Objects one CDC answer holds at most (Intuit: 1,000)"
    )
    token_store: Literal["postgres", "file"] = Field(
        default="postgres",
        description="Where rotated tokens are kept: postgres (shared by every worker host, the default) or file "
        "(one host only)",
    )
    token_store_dsn: Credential | None = Field(
        default=None,
        description="postgresql:// URL of the token store; unset: the inbox's database (APEX_INBOX_DSN, else "
        "APEX_POSTGRES_DSN, else the embedded stack's)",
    )
    token_store_schema: str = Field(
        default="apex_financial",
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        description="PostgreSQL schema of the token store's table",
    )
    token_store_path: Path | None = Field(
        default=None,
        description="With token_store=file: the file of the rotated refresh tokens (mode 0600); default "
        "APEX_HOME/financial/tokens.json",
    )
    token_refresh_margin_seconds: float = Field(
        default=300.0, ge=0, le=3000, description="Refresh an access token this long before it expires"
    )
    timeout_seconds: float = Field(default=30.0, gt=0, description="HTTP timeout of one call")
    rate_limit_backoff_seconds: float = Field(
        default=60.0, gt=0, description="Wait after a 429 without Retry-After (Intuit throttles per minute)"
    )

    @field_validator("entities", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("entities")
    @classmethod
    def _entity_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not _ENTITY.match(name):
                raise ValueError(f"{name!r} is not a QuickBooks entity name such as Invoice or Customer")
        if not value:
            raise ValueError("at least one entity is needed")
        return list(dict.fromkeys(value))

    @field_validator("refresh_tokens")
    @classmethod
    def _realms(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for realm in value:
            if not _REALM.match(realm):
                raise ValueError(f"{realm[:40]!r} is not a QuickBooks company id (realmId: digits)")
        return value

    @field_validator("base_url", "token_url")
    @classmethod
    def _url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value
