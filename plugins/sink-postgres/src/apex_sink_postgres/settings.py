"""Settings of the PostgreSQL sink (`APEX_POSTGRES_*`) and where its DSN comes from."""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings

from apex_platform.errors import SettingsError
from apex_platform.settings import Credential, apex_config, core_settings

#: Largest dimension pgvector's `vector` type accepts.
MAX_VECTOR_DIM = 16000

with warnings.catch_warnings():
    # `schema` is the natural name of the setting (APEX_POSTGRES_SCHEMA); it shadows
    # pydantic's deprecated `BaseModel.schema()`, which nothing here uses.
    warnings.filterwarnings("ignore", message='Field name "schema"', category=UserWarning)

    class PostgresSinkSettings(BaseSettings):
        """Where and how the sink stores records. Every field reads `APEX_POSTGRES_<FIELD>`."""

        model_config = apex_config("APEX_POSTGRES_")

        dsn: Credential | None = Field(
            default=None,
            description="postgresql:// URL; unset: the embedded stack's server from APEX_HOME/stack.json",
        )
        schema: str = Field(  # type: ignore[assignment]
            default="apex",
            pattern=r"^[a-z_][a-z0-9_]{0,62}$",
            description="Schema holding records, dead_letters and schema_migrations",
        )
        pool_min: int = Field(default=1, ge=0, description="Connections the pool keeps open")
        pool_max: int = Field(default=10, ge=1, description="Most connections the pool opens")
        embedding_dim: int = Field(
            default=384,
            ge=1,
            le=MAX_VECTOR_DIM,
            description="Dimension of records.embedding; checked against the existing column at open()",
        )
        connect_timeout: float = Field(default=10.0, gt=0, description="Seconds to wait for a connection")
        command_timeout: float = Field(default=60.0, gt=0, description="Seconds a statement may take")
        health_timeout: float = Field(default=2.0, gt=0, description="Seconds health() waits for SELECT 1")

        @model_validator(mode="after")
        def _pool_bounds(self) -> PostgresSinkSettings:
            if self.pool_min > self.pool_max:
                raise ValueError(
                    f"APEX_POSTGRES_POOL_MIN ({self.pool_min}) exceeds APEX_POSTGRES_POOL_MAX ({self.pool_max})"
                )
            return self


def stack_file() -> Path:
    """The embedded stack's state file, `<APEX_HOME>/stack.json`."""
    return core_settings().home / "stack.json"


def resolve_dsn(settings: PostgresSinkSettings) -> str:
    """The DSN to connect to: APEX_POSTGRES_DSN, else the running embedded stack's server."""
    if settings.dsn is not None:
        return settings.dsn.get_secret_value()
    from apex_platform.stack import read_stack  # believed only if ours and running (stack.trust)

    path = stack_file()
    info = read_stack(core_settings().home)
    if info is None:
        raise SettingsError(
            "the postgres sink has no database: set APEX_POSTGRES_DSN "
            f"(e.g. postgresql://user:password@host:5432/apex) or start `apex-platform dev` "
            f"(no running embedded stack found at {path})"
        )
    try:
        dsn = info["postgres"]["dsn"]
    except (KeyError, TypeError) as exc:
        raise SettingsError(
            f"cannot read the embedded stack's postgres DSN from {path} ({type(exc).__name__}: {exc}); "
            "set APEX_POSTGRES_DSN or restart `apex-platform dev`"
        ) from None
    if not isinstance(dsn, str) or not dsn:
        raise SettingsError(f"{path} has no postgres.dsn; set APEX_POSTGRES_DSN or restart `apex-platform dev`")
    return dsn


_KEYWORD_PASSWORD = re.compile(r"(password\s*=\s*)(\S+)", re.IGNORECASE)


def redact(dsn: str) -> str:
    """The DSN without its password, fit for error messages and logs."""
    if "://" not in dsn:
        return _KEYWORD_PASSWORD.sub(r"\1***", dsn)
    try:
        parts = urlsplit(dsn)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, host = netloc.rsplit("@", 1)
            user = userinfo.split(":", 1)[0]
            netloc = f"{user}:***@{host}" if ":" in userinfo else f"{user}@{host}"
        query = _KEYWORD_PASSWORD.sub(r"\1***", parts.query.replace("&", " ")).replace(" ", "&")
        return urlunsplit((parts.scheme, netloc, parts.path, query, ""))
    except ValueError:
        return "<unparsable DSN>"
