"""PostgreSQL 16 with pgvector, run from the binaries of the `pgserver` wheel.

pgserver's own `PostgresServer` class is not used: it listens on a unix socket and
keeps a global lock folder, while Apex wants a TCP port per APEX_HOME and a child
process it controls like the other embedded servers.
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import stat
import subprocess
import warnings
from pathlib import Path
from typing import ClassVar

from apex_platform.stack.errors import StackError
from apex_platform.stack.ports import PortClaim, port_accepts
from apex_platform.stack.processes import ServerProcess, run_coroutine

SYSTEM_USER = "pgserver"
"""Unprivileged system user that runs PostgreSQL when we are root (it refuses root)."""

_granted_installs: set[Path] = set()
"""Install folders already opened to the system user in this process (walking share/ is not free)."""

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def postgres_install_dir() -> Path:
    """The `pginstall` folder of the pgserver wheel (bin/, lib/, share/), found without importing it."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or spec.origin is None:
        raise StackError(
            "PostgreSQL binaries not found: the pgserver wheel is not installed; "
            "install it with `pip install 'apex-platform[embedded]'`"
        )
    install = Path(spec.origin).parent / "pginstall"
    if not (install / "bin" / "postgres").is_file():
        raise StackError(f"PostgreSQL binaries not found under {install}; reinstall pgserver")
    return install


class PostgresServer(ServerProcess):
    """A PostgreSQL server on `host:port` with database `database` and the `vector` extension.

    The cluster lives in `<data_dir>/pgdata` (initdb runs once; later starts reuse it),
    authentication is `trust` for local development, and unix sockets are off so the
    only way in is the TCP port in `dsn` (socket paths have a 107-byte limit that deep
    data folders exceed). When running as root the server runs as the `pgserver`
    system user, created if missing.
    """

    service: ClassVar[str] = "PostgreSQL"
    log_name: ClassVar[str] = "postgres"
    # SIGINT is PostgreSQL's "fast" shutdown; SIGTERM ("smart") waits for every client.
    stop_signal: ClassVar[signal.Signals] = signal.SIGINT

    def __init__(
        self,
        data_dir: Path | str,
        *,
        host: str = "127.0.0.1",
        port: int = 5433,
        database: str = "apex",
        user: str = "postgres",
        startup_timeout: float = 60.0,
        stop_timeout: float = 30.0,
    ) -> None:
        super().__init__(data_dir, host=host, startup_timeout=startup_timeout, stop_timeout=stop_timeout)
        for what, value in (("database", database), ("user", user)):
            if not _IDENTIFIER.match(value):
                raise StackError(f"PostgreSQL {what} name {value!r} must be a plain identifier")
        self.port = port
        self.database = database
        self.user = user

    @property
    def dsn(self) -> str:
        """`postgresql://user@host:port/database`, for asyncpg and libpq alike."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.database}"

    @property
    def admin_dsn(self) -> str:
        """The maintenance database `postgres`, which exists before `database` does."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/postgres"

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    @property
    def system_user(self) -> str | None:
        return SYSTEM_USER if os.geteuid() == 0 else None

    def port_claims(self) -> list[PortClaim]:
        return [PortClaim(self.port, "PostgreSQL", "APEX_POSTGRES_PORT")]

    def _spawn_user(self) -> str | None:
        return self.system_user

    def _prepare_data(self) -> None:
        install = postgres_install_dir()
        if self.system_user is not None:
            self._grant_system_user(install)
        if (self.pgdata / "PG_VERSION").is_file():
            return
        initdb = [
            str(install / "bin" / "initdb"),
            "-D", str(self.pgdata),
            "-U", self.user,
            "--auth=trust",
            "--encoding=utf8",
            "--locale=C",
        ]  # fmt: skip
        result = subprocess.run(
            initdb,
            capture_output=True,
            text=True,
            timeout=self.startup_timeout,
            user=self.system_user,
            cwd=self.data_dir,
            check=False,
        )
        with self.log_path.open("a", encoding="utf-8") as log:
            log.write(result.stdout + result.stderr)
        if result.returncode != 0:
            raise StackError(
                f"PostgreSQL initdb failed for {self.pgdata} (exit {result.returncode}):\n"
                f"{(result.stderr or result.stdout).strip()[-4000:]}"
            )

    def _grant_system_user(self, install: Path) -> None:
        """Let the unprivileged user traverse to the data folder and run the binaries."""
        with warnings.catch_warnings():
            # pgserver's package import asks platformdirs for a runtime dir and warns.
            warnings.simplefilter("ignore")
            from pgserver.utils import (  # type: ignore[import-untyped,unused-ignore]
                ensure_folder_permissions,
                ensure_prefix_permissions,
                ensure_user_exists,
            )

        entry = ensure_user_exists(SYSTEM_USER)
        self.pgdata.mkdir(mode=0o700, exist_ok=True)
        ensure_prefix_permissions(self.pgdata)
        if install not in _granted_installs:
            ensure_prefix_permissions(install)
            read = stat.S_IRGRP | stat.S_IROTH
            ensure_folder_permissions(install / "bin", read | stat.S_IXGRP | stat.S_IXOTH)
            ensure_folder_permissions(install / "lib", read)
            ensure_folder_permissions(install / "share", read)
            _granted_installs.add(install)
        if entry is not None and self.pgdata.stat().st_uid != entry.pw_uid:
            _chown_tree(self.pgdata, entry.pw_uid, entry.pw_gid)

    def command(self) -> list[str]:
        return [
            str(postgres_install_dir() / "bin" / "postgres"),
            "-D", str(self.pgdata),
            "-p", str(self.port),
            "-h", self.host,
            "-k", "",  # no unix socket: TCP only
        ]  # fmt: skip

    def probe(self) -> bool:
        if not port_accepts(self.port, self.host):
            return False
        return run_coroutine(self._answers)

    async def _answers(self) -> bool:
        import asyncpg

        connection = await asyncpg.connect(self.admin_dsn, timeout=5)
        try:
            return bool(await connection.fetchval("select true"))
        finally:
            await connection.close()

    def _after_ready(self) -> None:
        run_coroutine(self._create_database)

    async def _create_database(self) -> None:
        import asyncpg

        admin = await asyncpg.connect(self.admin_dsn, timeout=10)
        try:
            exists = await admin.fetchval("select 1 from pg_database where datname = $1", self.database)
            if not exists:
                await admin.execute(f'create database "{self.database}"')
        finally:
            await admin.close()
        connection = await asyncpg.connect(self.dsn, timeout=10)
        try:
            await connection.execute("create extension if not exists vector")
        finally:
            await connection.close()


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    os.chown(root, uid, gid)
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            os.chown(os.path.join(folder, name), uid, gid, follow_symlinks=False)
