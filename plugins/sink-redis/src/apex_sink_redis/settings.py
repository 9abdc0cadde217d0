"""Settings of the Redis sink (`APEX_REDIS_*`) and where its URL comes from."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field
from pydantic_settings import BaseSettings

from apex_platform.errors import SettingsError
from apex_platform.settings import Credential, apex_config, core_settings


class RedisSinkSettings(BaseSettings):
    """Where and how the sink keeps records, locks and the commit ledger.

    Every field reads `APEX_REDIS_<FIELD>`.
    """

    model_config = apex_config("APEX_REDIS_")

    url: Credential | None = Field(
        default=None,
        description=(
            "redis://[user:password@]host:6379/0, rediss://… (TLS) or unix:///path.sock?db=0; unset: the "
            "embedded stack's server from APEX_HOME/stack.json; neither: open() fails naming this variable"
        ),
    )
    coordinator_url: Credential | None = Field(
        default=None,
        description="Separate server for record locks and the commit ledger; unset: the same as url",
    )
    prefix: str = Field(
        default="apex",
        min_length=1,
        max_length=64,
        pattern=r"^[^\s:]+$",
        description="Namespace of every key the sink writes (no spaces or colons)",
    )
    ttl_seconds: int | None = Field(
        default=7 * 24 * 3600,
        ge=0,
        description="Expiry of each cached record, refreshed on every write; None or 0: no expiry",
    )
    lock_ttl_seconds: float = Field(
        default=120.0,
        gt=0,
        description=(
            "Expiry of a record lock when lock() is given no ttl_seconds (the saga passes its own, "
            "APEX_SAGA_LOCK_TTL_SECONDS); a held lock is renewed every third of it"
        ),
    )
    lock_wait_seconds: float = Field(
        default=60.0, ge=0, description="How long lock() waits for keys held by another writer"
    )
    ledger_ttl_seconds: int = Field(
        default=24 * 3600,
        ge=1,
        description=(
            "How long the commit ledger remembers a committed write (it saves re-writes within retries; "
            "the inbox, not the ledger, is the 30-day dedupe horizon of deliveries)"
        ),
    )
    connect_timeout_seconds: float = Field(default=5.0, gt=0, description="Seconds to wait for a connection")
    socket_timeout_seconds: float = Field(default=30.0, gt=0, description="Seconds a command may take")
    health_timeout_seconds: float = Field(default=2.0, gt=0, description="Seconds health() waits for PING")

    @property
    def record_ttl_ms(self) -> int:
        """The record expiry in milliseconds; 0 means none."""
        return (self.ttl_seconds or 0) * 1000


def resolve_url(settings: RedisSinkSettings) -> tuple[str, bool]:
    """The URL to connect to and whether it came from the embedded stack's stack.json.

    APEX_REDIS_URL first, else `["redis"]["url"]` of the running stack under APEX_HOME.
    """
    if settings.url is not None:
        return settings.url.get_secret_value(), False
    from apex_platform.stack import read_stack  # the stack's servers are not needed to read its file

    home = core_settings().home
    stack = read_stack(home)
    if stack is None:
        raise SettingsError(
            "the redis sink has no server: set APEX_REDIS_URL (e.g. redis://:password@host:6379/0) "
            f"or start `apex-platform dev` (no running embedded stack found in {home}/stack.json)"
        )
    url = stack.get("redis", {}).get("url") if isinstance(stack.get("redis"), dict) else None
    if not isinstance(url, str) or not url:
        raise SettingsError(f"{home}/stack.json has no redis.url; set APEX_REDIS_URL or restart `apex-platform dev`")
    return url, True


_QUERY_PASSWORD = re.compile(r"(password=)([^&]*)", re.IGNORECASE)


def redact(url: str) -> str:
    """The URL without its password, fit for error messages and logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{host}" if ":" in userinfo else f"{userinfo}@{host}"
    query = _QUERY_PASSWORD.sub(r"\1***", parts.query)
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))
