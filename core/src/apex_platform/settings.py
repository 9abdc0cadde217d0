"""Settings, one pydantic-settings class per concern, all under the `APEX_` prefix.

Each class reads the environment and an optional `.env` file in the working directory.
Connectors and sinks define their own classes with `APEX_<NAME>_` prefixes.
"""

from __future__ import annotations

import re
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from apex_platform.errors import SettingsError

_S = TypeVar("_S", bound=BaseSettings)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: object) -> timedelta:
    """`30d`, `12h`, `90m`, `45s`, a number of seconds, or a timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float):
        return timedelta(seconds=float(value))
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a duration: use e.g. 30d, 12h, 90m or a number of seconds")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


def apex_config(prefix: str = "APEX_") -> SettingsConfigDict:
    """The model config every Apex settings class uses (plugins too)."""
    return SettingsConfigDict(env_prefix=prefix, env_file=".env", env_file_encoding="utf-8", extra="ignore")


class CoreSettings(BaseSettings):
    model_config = apex_config()

    home: Path = Field(default=Path(".apex"), description="State folder of the embedded stack")
    plugins: str = Field(default="all", description="'all' or a comma-separated list of plugin names")
    plugin_modules: str = Field(default="", description="Extra plugin modules to load by import path, comma-separated")
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, description="Largest accepted request body")
    inline_payload_bytes: int = Field(
        default=256 * 1024,
        ge=1024,
        le=1_500_000,
        description="Larger payloads are stored as blobs and passed to workflows by reference",
    )
    blob_backend: Literal["local", "s3"] = Field(
        default="local", description="Where blobs (batch files) live: a local or shared folder, or an S3 bucket"
    )
    blob_dir: Path | None = Field(default=None, description="Blob store folder (default APEX_HOME/blobs)")
    blob_retention: timedelta = Field(
        default=timedelta(days=7),
        description="Blobs (batch files, chunks) untouched this long are garbage-collected",
    )
    blob_max_bytes: int = Field(
        default=0, ge=0, description="Refuse new blobs once the store holds this many bytes (0: no limit)"
    )
    blob_s3_bucket: str | None = Field(default=None, description="The bucket of APEX_BLOB_BACKEND=s3")
    blob_s3_prefix: str = Field(default="apex-blobs", description="Key prefix of the blobs in the bucket")
    blob_s3_endpoint_url: str | None = Field(
        default=None, description="An S3-compatible server (MinIO, Ceph, R2, ...); unset: AWS S3"
    )
    blob_s3_region: str | None = Field(default=None, description="Region of the bucket; unset: the AWS chain's")
    log_level: str = "INFO"

    @field_validator("blob_retention", mode="before")
    @classmethod
    def _duration(cls, value: object) -> timedelta:
        return parse_duration(value)

    @field_validator("blob_backend", mode="before")
    @classmethod
    def _backend(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @property
    def blob_path(self) -> Path:
        return self.blob_dir or (self.home / "blobs")


class ApiSettings(BaseSettings):
    model_config = apex_config("APEX_API_")

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)


class PushSettings(BaseSettings):
    """API keys of the push API (`POST /v1/records/{source}`): `APEX_API_KEYS=k1,k2`.
    Only their SHA-256 digests are kept in memory."""

    model_config = apex_config("APEX_")

    api_keys: SecretStr | None = None

    def digests(self) -> list[bytes]:
        import hashlib

        if self.api_keys is None:
            return []
        keys = [k.strip() for k in self.api_keys.get_secret_value().split(",") if k.strip()]
        return [hashlib.sha256(k.encode()).digest() for k in keys]


class AdminSettings(BaseSettings):
    """The bearer token of the admin endpoints (trace, dead letters). Unset: disabled.
    `apex-platform dev` generates one and keeps it in APEX_HOME/admin_token (mode 0600)."""

    model_config = apex_config("APEX_ADMIN_")

    token: SecretStr | None = None


class TemporalSettings(BaseSettings):
    model_config = apex_config("APEX_TEMPORAL_")

    address: str = "127.0.0.1:7233"
    namespace: str = "default"
    api_key: SecretStr | None = None
    tls: bool = False
    tls_server_name: str | None = None
    tls_ca_cert: Path | None = None
    tls_client_cert: Path | None = None
    tls_client_key: Path | None = None
    task_queue_prefix: str = "apex"
    activity_heartbeat_seconds: float = Field(default=30.0, gt=0)
    activity_timeout_seconds: float = Field(default=300.0, gt=0)
    graceful_shutdown_seconds: float = Field(default=30.0, ge=0)
    max_payload_bytes: int = Field(
        default=128 * 1024,
        ge=0,
        le=2 * 1024 * 1024,
        description="Largest payload Apex hands Temporal (references only); 0 turns the guard off",
    )


class PostgresSettings(BaseSettings):
    model_config = apex_config("APEX_POSTGRES_")

    dsn: SecretStr | None = Field(default=None, description="Unset: the embedded stack's server")


def load(cls: type[_S]) -> _S:
    """Instantiate a settings class, turning validation errors into one clear line."""
    try:
        return cls()
    except ValidationError as exc:
        prefix = cls.model_config.get("env_prefix", "")
        problems = "; ".join(
            f"{prefix}{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}" for err in exc.errors()
        )
        raise SettingsError(f"invalid settings: {problems}") from None


@lru_cache
def core_settings() -> CoreSettings:
    return load(CoreSettings)
