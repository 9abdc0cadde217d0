"""Settings, one pydantic-settings class per concern, all under the `APEX_` prefix.

Each class reads the environment and, when one is named, an env file: `APEX_ENV_FILE`, or
`$APEX_HOME/.env` when APEX_HOME is set in the environment. A `.env` in the working
directory is never read by itself: whoever can write the current folder (a cloned
repository, a shared folder) could otherwise point a vendor's base URL elsewhere and
collect its credentials. Connectors and sinks define their own classes with
`APEX_<NAME>_` prefixes.

Secrets use the shared types below (`Secret`, `Secrets`, `Credential`): an empty or too
short secret is refused with the variable's name, and `Secrets` holds several at once
(comma-separated or a JSON array) so that a secret can rotate without downtime.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import stat
from collections.abc import Callable
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal, TypeVar, cast

from pydantic import AfterValidator, Field, SecretStr, ValidationError, field_validator
from pydantic_core import PydanticCustomError
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


log = logging.getLogger(__name__)

ENV_FILE_VARIABLE = "APEX_ENV_FILE"


class _EnvFile(os.PathLike[str]):
    """The env file settings read, decided each time a settings class is instantiated.

    pydantic-settings turns `env_file` into a `Path` when it reads it, so this object
    names `APEX_ENV_FILE`, else `$APEX_HOME/.env` when APEX_HOME is set in the
    environment, else nothing (`os.devnull`, which is not a regular file and so is
    skipped). The file must belong to this user and be writable by nobody else.
    """

    _warned = False

    def __fspath__(self) -> str:
        explicit = os.environ.get(ENV_FILE_VARIABLE, "").strip()
        if explicit:
            return _trusted_env_file(Path(explicit).expanduser(), required=True)
        home = os.environ.get("APEX_HOME", "").strip()
        if home:
            found = _trusted_env_file(Path(home).expanduser() / ".env", required=False)
            if found != os.devnull:
                return found
        if not _EnvFile._warned and Path(".env").is_file():
            _EnvFile._warned = True
            log.warning(
                "./.env is not read (a file in the working directory could redirect vendors' URLs); "
                "set %s=.env to read it",
                ENV_FILE_VARIABLE,
            )
        return os.devnull

    def __repr__(self) -> str:
        return f"<env file: {ENV_FILE_VARIABLE} or $APEX_HOME/.env>"


def _trusted_env_file(path: Path, *, required: bool) -> str:
    """`path` if it is a regular file of this user that nobody else may write."""
    try:
        info = path.stat()
    except FileNotFoundError:
        if required:
            raise SettingsError(f"{ENV_FILE_VARIABLE}={path} does not exist") from None
        return os.devnull
    if not stat.S_ISREG(info.st_mode):
        raise SettingsError(f"{path} (the env file) is not a regular file")
    if info.st_uid != os.geteuid() or info.st_mode & 0o022:
        raise SettingsError(
            f"refusing the env file {path}: it must belong to this user and be writable by nobody else "
            f"(owner uid {info.st_uid}, mode {stat.S_IMODE(info.st_mode):o}; e.g. chmod 600 {path})"
        )
    return str(path)


#: the env file of every Apex settings class (see `_EnvFile`); typed as the `Path` that
#: pydantic-settings makes of it when settings load
ENV_FILE = cast(Path, _EnvFile())


def apex_config(prefix: str = "APEX_") -> SettingsConfigDict:
    """The model config every Apex settings class uses (plugins too)."""
    return SettingsConfigDict(
        env_prefix=prefix,
        env_file=ENV_FILE,
        env_file_encoding="utf-8",
        extra="ignore",
        # a refused value may be a secret: errors never repeat what was given
        hide_input_in_errors=True,
    )


#: the shortest secret that authenticates callers to Apex (signing secrets, tokens, API keys)
MIN_SECRET_CHARS = 16


def split_secrets(text: str) -> list[str]:
    """The secrets of one setting: a JSON array of strings, or comma-separated values."""
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            doc = json.loads(stripped)
        except json.JSONDecodeError:
            doc = None
        if not isinstance(doc, list) or not all(isinstance(item, str) for item in doc):
            raise PydanticCustomError("secret_list", "is not a JSON array of strings")
        return [item.strip() for item in doc if item.strip()]
    return [part.strip() for part in stripped.split(",") if part.strip()]


def secret_values(secret: SecretStr | None) -> list[str]:
    """Every secret a `Secrets` setting holds, in the order given (the first signs, any verifies)."""
    return [] if secret is None else split_secrets(secret.get_secret_value())


def check_secret(text: str, min_chars: int = MIN_SECRET_CHARS) -> None:
    """Refuse an empty or too short secret (the message never repeats it)."""
    if not text.strip():
        raise PydanticCustomError("secret_empty", "is set but empty: give it a value or unset it")
    if len(text.strip()) < min_chars:
        raise PydanticCustomError(
            "secret_short",
            "is too short: a secret needs at least {min_chars} characters "
            "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')",
            {"min_chars": min_chars},
        )


def _secret_rule(min_chars: int, *, several: bool) -> Callable[[SecretStr], SecretStr]:
    def check(value: SecretStr) -> SecretStr:
        text = value.get_secret_value()
        if several:
            check_secret(text, 1)
            values = split_secrets(text)
            if not values:
                raise PydanticCustomError("secret_empty", "is set but holds no secret: give it a value or unset it")
            for one in values:
                check_secret(one, min_chars)
        else:
            check_secret(text, min_chars)
        return value

    return check


#: a secret that authenticates callers to Apex: never empty, at least MIN_SECRET_CHARS characters
Secret = Annotated[SecretStr, AfterValidator(_secret_rule(MIN_SECRET_CHARS, several=False))]
#: one or several such secrets, comma-separated or a JSON array: every one is accepted, so a
#: new secret is added, the sender switched over, then the old one removed (`secret_values`)
Secrets = Annotated[SecretStr, AfterValidator(_secret_rule(MIN_SECRET_CHARS, several=True))]
#: a credential Apex presents to a vendor or a store (a password, an API key, a DSN): never
#: empty; its length is the issuer's business
Credential = Annotated[SecretStr, AfterValidator(_secret_rule(1, several=False))]


def digest(secret: str) -> bytes:
    """SHA-256 of a secret: compared in constant time, and equal lengths leak nothing."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


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
    """Where the API listens and the limits of its HTTP server (uvicorn)."""

    model_config = apex_config("APEX_API_")

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    limit_concurrency: int = Field(
        default=1024, ge=1, description="Connections and requests in flight at most; above it the server answers 503"
    )
    backlog: int = Field(default=2048, ge=1, description="Connections the kernel queues before the server accepts")
    timeout_keep_alive: int = Field(
        default=5, ge=1, le=3600, description="Seconds an idle keep-alive connection stays open"
    )
    header_timeout: float = Field(
        default=10.0, gt=0, le=3600, description="Seconds a client has to send a request line and its headers"
    )
    body_timeout: float = Field(
        default=60.0, gt=0, le=3600, description="Seconds a client has to send a request body, once its headers came"
    )
    max_header_bytes: int = Field(
        default=64 * 1024,
        ge=1024,
        le=16 * 1024 * 1024,
        description="Largest request line and headers (also h11's max incomplete event size); above it: 431",
    )


_SCOPED_KEY = re.compile(r"^([a-z0-9][a-z0-9_-]{0,63}):(.+)$", re.DOTALL)


class PushSettings(BaseSettings):
    """API keys of the push API (`POST /v1/records/{source}`), in `APEX_API_KEYS`:

    - `key1,key2`: each key may push to every push source (as before);
    - `llm:key3,crm:key3`: `source:key` entries scope a key to the sources named;
    - a JSON object `{"key4": ["llm"], "key5": "*"}`: each key and the sources it may push to.

    Several keys at once are how a key rotates. Each key needs at least
    MIN_SECRET_CHARS characters; only their SHA-256 digests are kept in memory.
    """

    model_config = apex_config("APEX_")

    api_keys: SecretStr | None = None

    @field_validator("api_keys")
    @classmethod
    def _keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            check_secret(value.get_secret_value(), 1)
            scopes = parse_push_keys(value.get_secret_value())
            if not scopes:
                raise PydanticCustomError("secret_empty", "is set but holds no key: give it a value or unset it")
            for key in scopes:
                check_secret(key)
        return value

    def scopes(self) -> dict[bytes, frozenset[str] | None]:
        """Each key's digest and the sources it may push to (None: every push source)."""
        if self.api_keys is None:
            return {}
        return {digest(key): sources for key, sources in parse_push_keys(self.api_keys.get_secret_value()).items()}

    def digests(self) -> list[bytes]:
        return list(self.scopes())

    def key_for(self, source: str) -> str | None:
        """The first configured key that may push to `source` (the demo signs with it)."""
        if self.api_keys is None:
            return None
        for key, sources in parse_push_keys(self.api_keys.get_secret_value()).items():
            if sources is None or source in sources:
                return key
        return None


def parse_push_keys(text: str) -> dict[str, frozenset[str] | None]:
    """`APEX_API_KEYS` as {key: the sources it may push to, or None for all}."""
    stripped = text.strip()
    scopes: dict[str, frozenset[str] | None] = {}
    if stripped.startswith("{"):
        try:
            doc = json.loads(stripped)
        except json.JSONDecodeError:
            doc = None
        if not isinstance(doc, dict):
            raise PydanticCustomError("push_keys", 'is not a JSON object {"<key>": ["<source>", ...] or "*"}')
        for key, allowed in doc.items():
            names = [allowed] if isinstance(allowed, str) else allowed
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise PydanticCustomError("push_keys", 'maps a key to something else than "*" or a list of sources')
            if not key.strip():
                continue
            scopes[key.strip()] = None if "*" in names else frozenset(n.strip() for n in names if n.strip())
        return scopes
    for entry in split_secrets(stripped):
        match = _SCOPED_KEY.match(entry)
        if match is None:
            scopes[entry] = None
            continue
        source, key = match.group(1), match.group(2).strip()
        if key in scopes and scopes[key] is None:
            continue  # already allowed everywhere
        scopes[key] = frozenset({*(scopes.get(key) or ()), source})
    return scopes


class AdminSettings(BaseSettings):
    """The bearer token of the admin endpoints (trace, dead letters, inbox). Unset: disabled.
    Several, comma-separated or a JSON array, during a rotation (any one is accepted).
    `apex-platform dev` generates one and keeps it in APEX_HOME/admin_token (mode 0600)."""

    model_config = apex_config("APEX_ADMIN_")

    token: Secrets | None = None

    def digests(self) -> list[bytes]:
        return [digest(token) for token in secret_values(self.token)]


class TemporalSettings(BaseSettings):
    model_config = apex_config("APEX_TEMPORAL_")

    address: str = "127.0.0.1:7233"
    namespace: str = "default"
    api_key: Credential | None = None
    tls: bool = False
    tls_server_name: str | None = None
    tls_ca_cert: Path | None = None
    tls_client_cert: Path | None = None
    tls_client_key: Path | None = None
    task_queue_prefix: str = "apex"
    activity_heartbeat_seconds: float = Field(default=30.0, gt=0)
    activity_timeout_seconds: float = Field(default=300.0, gt=0)
    graceful_shutdown_seconds: float = Field(default=30.0, ge=0)
    memory_trim_seconds: float = Field(
        default=30.0,
        ge=0,
        description=(
            "How often a worker hands freed heap memory back to the system (glibc malloc_trim; "
            "apex_platform.memory); 0 turns it off"
        ),
    )
    max_payload_bytes: int = Field(
        default=128 * 1024,
        ge=0,
        le=2 * 1024 * 1024,
        description="Largest payload Apex hands Temporal (references only); 0 turns the guard off",
    )
    drain_partitions: int = Field(
        default=1,
        ge=1,
        le=64,
        description=(
            "Drain loops per webhook / push source (APEX_TEMPORAL_DRAIN_PARTITIONS): each takes the inbox rows "
            "of its partition (a hash of the event id), so one source's backlog spreads over that many "
            "concurrent batches and workers; 1 is one loop per source. Every worker and API must agree"
        ),
    )


class PostgresSettings(BaseSettings):
    model_config = apex_config("APEX_POSTGRES_")

    dsn: Credential | None = Field(default=None, description="Unset: the embedded stack's server")


def load(cls: type[_S]) -> _S:
    """Instantiate a settings class, turning validation errors into one clear line."""
    try:
        return cls()
    except ValidationError as exc:
        prefix = cls.model_config.get("env_prefix", "")
        problems = "; ".join(
            f"{prefix}{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            for err in exc.errors(include_input=False)
        )
        raise SettingsError(f"invalid settings: {problems}") from None


@lru_cache
def core_settings() -> CoreSettings:
    return load(CoreSettings)
