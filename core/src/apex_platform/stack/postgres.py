"""PostgreSQL 16 with pgvector, run from the binaries of the `pgserver` wheel.

pgserver's own `PostgresServer` class is not used: it listens on a unix socket and
keeps a global lock folder, while Apex wants a TCP port per APEX_HOME and a child
process it controls like the other embedded servers.

Every login needs the generated password (SCRAM-SHA-256; no `trust`, which would make
any local user a superuser able to run programs through `COPY ... FROM PROGRAM`). It
is kept in `<data_dir>/password` (0600) and carried by `dsn`; a cluster made before
that is switched over at its next start.
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

from apex_platform.stack.credentials import (
    new_password,
    password_file,
    read_private,
    scram_sha256_verifier,
    write_private,
)
from apex_platform.stack.errors import StackError
from apex_platform.stack.ports import PortClaim, port_accepts
from apex_platform.stack.processes import CHILD_UMASK, ServerProcess, run_as, run_coroutine

SYSTEM_USER = "pgserver"
"""Unprivileged system user that runs PostgreSQL when we are root (it refuses root)."""

_granted_installs: set[Path] = set()
"""Install folders already opened to the system user in this process (walking share/ is not free)."""

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

HBA_CONF = """\
# Written by Apex at every start of the embedded PostgreSQL: password logins only.
local   all   all          scram-sha-256
host    all   all   all    scram-sha-256
"""
"""pg_hba.conf: SCRAM for every connection (unix sockets are off; the server binds loopback)."""


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
    every login needs the password of `<data_dir>/password` (SCRAM-SHA-256), and unix
    sockets are off so the only way in is the TCP port in `dsn` (socket paths have a
    107-byte limit that deep data folders exceed). When running as root the server
    runs as the `pgserver` system user, created if missing.
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
        allow_remote: bool = False,
        startup_timeout: float = 60.0,
        stop_timeout: float = 30.0,
    ) -> None:
        super().__init__(
            data_dir, host=host, allow_remote=allow_remote, startup_timeout=startup_timeout, stop_timeout=stop_timeout
        )
        for what, value in (("database", database), ("user", user)):
            if not _IDENTIFIER.match(value):
                raise StackError(f"PostgreSQL {what} name {value!r} must be a plain identifier")
        self.port = port
        self.database = database
        self.user = user

    @property
    def password_file(self) -> Path:
        """The generated password (mode 0600), made at the first start."""
        return password_file(self.data_dir)

    @property
    def password(self) -> str | None:
        """The password every login needs; None before the first start."""
        return read_private(self.password_file)

    @property
    def dsn(self) -> str:
        """`postgresql://user:password@host:port/database`, for asyncpg and libpq alike."""
        return self._dsn(self.database)

    @property
    def admin_dsn(self) -> str:
        """The maintenance database `postgres`, which exists before `database` does."""
        return self._dsn("postgres")

    def _dsn(self, database: str) -> str:
        password = self.password
        login = self.user if password is None else f"{self.user}:{password}"
        return f"postgresql://{login}@{self.host}:{self.port}/{database}"

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
        if not (self.pgdata / "PG_VERSION").is_file():
            self._initdb(install)
        self._secure_cluster(install)

    def _initdb(self, install: Path) -> None:
        # "reject" until _secure_cluster writes pg_hba.conf: initdb starts no server.
        self._run_setup(
            "initdb",
            [
                str(install / "bin" / "initdb"),
                "-D", str(self.pgdata),
                "-U", self.user,
                "--auth=reject",
                "--encoding=utf8",
                "--locale=C",
            ],
        )  # fmt: skip

    def _secure_cluster(self, install: Path) -> None:
        """Password logins only (pg_hba.conf rewritten at every start), and a password.

        A new password (first start, or a cluster of an older Apex that trusted every
        login) is set in single-user mode as its SCRAM verifier, then saved: a failure
        in between leaves no password file, and the next start sets a new one.
        """
        owner = self.pgdata.stat()
        write_private(self.pgdata / "pg_hba.conf", HBA_CONF, owner=(owner.st_uid, owner.st_gid))
        if read_private(self.password_file) is not None:
            return
        password = new_password()
        statement = f"ALTER ROLE \"{self.user}\" WITH LOGIN PASSWORD '{scram_sha256_verifier(password)}';\n"
        output = self._run_setup(
            "single-user mode", [str(install / "bin" / "postgres"), "--single", "-D", str(self.pgdata), "postgres"],
            stdin=statement,
        )  # fmt: skip
        if "ERROR:" in output or "FATAL:" in output:
            raise StackError(f"PostgreSQL could not set the password of {self.user!r}:\n{output.strip()[-4000:]}")
        write_private(self.password_file, password + "\n")

    def _run_setup(self, what: str, argv: list[str], stdin: str | None = None) -> str:
        """Run a PostgreSQL tool on the data folder (as the system user when root); its output goes to the log."""
        result: subprocess.CompletedProcess[str] = subprocess.run(
            argv,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=self.startup_timeout,
            cwd=self.data_dir,
            env=self.environment(),
            umask=CHILD_UMASK,
            **run_as(self.system_user),
            check=False,
        )
        output = result.stdout + result.stderr
        with self.open_log() as log:
            log.write(output.encode("utf-8", errors="replace"))
        if result.returncode != 0:
            raise StackError(
                f"PostgreSQL {what} failed for {self.pgdata} (exit {result.returncode}):\n{output.strip()[-4000:]}"
            )
        return output

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
        _allow_traversal(self.pgdata)
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


def _allow_traversal(path: Path) -> None:
    """Let other users pass through (not list) every folder above `path`.

    pgserver's own helper also makes them readable, which would let any local user
    list APEX_HOME; passing through is all the system user needs.
    """
    for folder in path.parents:
        mode = stat.S_IMODE(folder.stat().st_mode)
        if mode & stat.S_IXOTH == 0:
            folder.chmod(mode | stat.S_IXOTH)


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    os.chown(root, uid, gid)
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            os.chown(os.path.join(folder, name), uid, gid, follow_symlinks=False)
