"""The embedded default stack that `apex-platform dev` runs under APEX_HOME.

Temporal (SQLite file), PostgreSQL with pgvector and Redis with FalkorDB, started
together, described in `APEX_HOME/stack.json` for commands run from a second
terminal, and guarded by `APEX_HOME/stack.lock` so two dev runs cannot share a home.
Qdrant runs in local mode inside the worker; the stack only reserves its folder.
stack.json carries the servers' passwords in its DSN and URL, so it is mode 0600 and
a new APEX_HOME is made 0700: the same user's commands read it, no other user can.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from apex_platform.settings import ENV_FILE
from apex_platform.stack.credentials import private_dir, write_private
from apex_platform.stack.errors import StackError
from apex_platform.stack.ports import PortClaim, ensure_ports_free
from apex_platform.stack.postgres import PostgresServer
from apex_platform.stack.processes import ServerProcess
from apex_platform.stack.redis_server import RedisServer
from apex_platform.stack.temporal_server import TemporalDevServer
from apex_platform.stack.trust import process_record, read_trusted_stack

STACK_FILE = "stack.json"
LOCK_FILE = "stack.lock"


class StackSettings(BaseSettings):
    """Ports and limits of the embedded stack.

    The port fields read the same variables as the production settings
    (APEX_TEMPORAL_PORT, APEX_POSTGRES_PORT, ...) so one name moves a port everywhere;
    the rest use the APEX_STACK_ prefix. In code, pass field names:
    `StackSettings(temporal_port=17233)`.
    """

    model_config = SettingsConfigDict(
        env_prefix="APEX_STACK_",
        env_file=ENV_FILE,
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
    )

    host: str = Field(
        default="127.0.0.1",
        description="Interface every embedded server binds; a non-loopback one needs APEX_STACK_ALLOW_REMOTE",
    )
    allow_remote: bool = Field(
        default=False,
        description="Let APEX_STACK_HOST be a non-loopback interface (other machines then reach the servers)",
    )
    temporal_port: int = Field(default=7233, ge=1, le=65535, validation_alias="APEX_TEMPORAL_PORT")
    temporal_ui_port: int = Field(
        default=8233,
        ge=0,
        le=65535,
        validation_alias="APEX_TEMPORAL_UI_PORT",
        description="Temporal Web UI port; 0 runs the dev server headless",
    )
    temporal_namespace: str = Field(default="default", validation_alias="APEX_TEMPORAL_NAMESPACE")
    postgres_port: int = Field(
        default=5433,
        ge=1,
        le=65535,
        validation_alias="APEX_POSTGRES_PORT",
        description="Not 5432, so a system PostgreSQL can keep its port",
    )
    redis_port: int = Field(
        default=6380,
        ge=1,
        le=65535,
        validation_alias="APEX_REDIS_PORT",
        description="Not 6379, so a system Redis can keep its port",
    )
    api_port: int = Field(default=8080, ge=1, le=65535, validation_alias="APEX_API_PORT")
    startup_timeout: float = Field(default=120.0, gt=0, description="Seconds each server gets to answer")


class EmbeddedStack:
    """Start, describe and stop the embedded servers of one APEX_HOME.

    `start()` blocks until every server answers and returns what it wrote to
    stack.json; a second start on the same home (after a stop, or after a crash)
    resumes the same data. Data folders: APEX_HOME/temporal, /postgres, /redis;
    logs in each folder's `logs/`. Call `start()` and `stop()` from the main thread:
    the servers are tied to the thread that spawns them.
    """

    def __init__(self, home: Path | str, settings: StackSettings | None = None) -> None:
        self.home = Path(home).expanduser().absolute()
        self.settings = settings if settings is not None else StackSettings()
        s = self.settings
        timeout = s.startup_timeout
        remote = s.allow_remote
        self.temporal = TemporalDevServer(
            self.home / "temporal",
            host=s.host,
            port=s.temporal_port,
            ui_port=s.temporal_ui_port or None,
            namespace=s.temporal_namespace,
            allow_remote=remote,
            startup_timeout=timeout,
        )
        self.postgres = PostgresServer(
            self.home / "postgres", host=s.host, port=s.postgres_port, allow_remote=remote, startup_timeout=timeout
        )
        self.redis = RedisServer(
            self.home / "redis", host=s.host, port=s.redis_port, allow_remote=remote, startup_timeout=timeout
        )
        self._started: list[ServerProcess] = []
        self._lock: IO[str] | None = None
        self._info: dict[str, Any] | None = None

    @property
    def servers(self) -> tuple[ServerProcess, ...]:
        """In start order; they stop in reverse."""
        return (self.temporal, self.postgres, self.redis)

    @property
    def stack_file(self) -> Path:
        return self.home / STACK_FILE

    @property
    def qdrant_path(self) -> Path:
        return self.home / "qdrant"

    @property
    def api_url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.api_port}"

    @property
    def is_running(self) -> bool:
        return self._info is not None and all(server.is_running for server in self.servers)

    @property
    def info(self) -> dict[str, Any] | None:
        """What stack.json holds while the stack runs, else None."""
        return self._info

    def start(self) -> dict[str, Any]:
        """Start every server (idempotent), write stack.json and return its content."""
        if self._info is not None:
            return self._info
        if not self.home.exists():
            private_dir(self.home)
        self._acquire_lock()
        try:
            # Every busy port in one message, before any work; the API is not ours to
            # start, but a clash found now beats one found after the servers are up.
            claims = [claim for server in self.servers for claim in server.port_claims()]
            claims.append(PortClaim(self.settings.api_port, "the Apex API", "APEX_API_PORT"))
            ensure_ports_free(claims, self.settings.host)
            self._run_all(lambda server: server.prepare())
            for server in self.servers:  # spawned here, on the caller's thread
                server.spawn()
                self._started.append(server)
            self._run_all(lambda server: server.wait_ready())
            self._info = self._describe()
            _write_json(self.stack_file, self._info)
        except BaseException:
            self._stop_started()
            self._release_lock()
            raise
        return self._info

    def stop(self) -> None:
        """Stop what this object started, in reverse order, remove stack.json, release the lock."""
        try:
            self._stop_started()
        finally:
            if self._info is not None:
                with contextlib.suppress(FileNotFoundError):
                    self.stack_file.unlink()
            self._info = None
            self._release_lock()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _run_all(self, action: Any) -> None:
        """Run `action(server)` for each server concurrently; raise one error naming every failure."""
        with ThreadPoolExecutor(max_workers=len(self.servers), thread_name_prefix="apex-stack") as pool:
            futures = [pool.submit(action, server) for server in self.servers]
        errors = [future.exception() for future in futures]
        failures = [error for error in errors if error is not None]
        if len(failures) == 1:
            raise failures[0]
        if failures:
            raise StackError("\n\n".join(str(error) for error in failures))

    def _stop_started(self) -> None:
        errors: list[BaseException] = []
        while self._started:
            server = self._started.pop()
            try:
                server.stop()
            except Exception as exc:  # noqa: BLE001 - stop the others, report at the end
                errors.append(exc)
        if errors:
            raise StackError("; ".join(f"{type(e).__name__}: {e}" for e in errors))

    def _describe(self) -> dict[str, Any]:
        return {
            "home": str(self.home),
            "temporal": {
                "address": self.temporal.address,
                "ui_url": self.temporal.ui_url,
                "namespace": self.temporal.namespace,
                "log": str(self.temporal.log_path),
            },
            "postgres": {
                "dsn": self.postgres.dsn,
                "password_file": str(self.postgres.password_file),
                "log": str(self.postgres.log_path),
            },
            "redis": {
                "url": self.redis.url,
                "password_file": str(self.redis.password_file),
                "log": str(self.redis.log_path),
            },
            "qdrant": {"path": str(self.qdrant_path)},
            "api": {"url": self.api_url},
            "pid": os.getpid(),
            "process": process_record(),  # how commands tell this process from a recycled pid
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }

    def _acquire_lock(self) -> None:
        if self._lock is not None:
            return
        lock = (self.home / LOCK_FILE).open("a+", encoding="utf-8")
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "unknown"
            lock.close()
            raise StackError(
                f"another Apex stack is already running on APEX_HOME={self.home} (pid {holder}); "
                "stop it (Ctrl-C in its terminal) or set APEX_HOME to another folder"
            ) from None
        lock.seek(0)
        lock.truncate()
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        self._lock = lock

    def _release_lock(self) -> None:
        # The file stays: unlinking a flock file lets a third process lock a new inode.
        if self._lock is None:
            return
        with contextlib.suppress(OSError):
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_UN)
        self._lock.close()
        self._lock = None


def read_stack(home: Path | str) -> dict[str, Any] | None:
    """The addresses of the stack running on `home`, or None if none is running.

    For commands run from a second terminal while `apex-platform dev` runs. A
    stack.json left by a process that died is ignored (its process is gone, or its pid
    now belongs to another process); one that must not be believed (another user's, one
    others may write, or one naming servers on other machines) raises `StackError`.
    See `apex_platform.stack.trust`.
    """
    return read_trusted_stack(Path(home).expanduser() / STACK_FILE)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Write atomically (a reader never sees half a file), mode 0600: it holds passwords."""
    write_private(path, json.dumps(data, indent=2) + "\n")
