"""Fixtures: one real PostgreSQL (+pgvector) server per session, one schema per test.

The server comes from the pgserver wheel's binaries until the core testing kit's
`apex_postgres_server` fixture lands.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from pydantic import SecretStr

from apex_sink_postgres import PostgresSink, PostgresSinkSettings


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]


async def _wait_and_prepare(admin_dsn: str, dsn: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"postgres exited with {proc.returncode}:\n{_tail(log)}")
        try:
            admin = await asyncpg.connect(admin_dsn, timeout=2)
            break
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            if time.monotonic() > deadline:
                raise RuntimeError(f"postgres did not answer in 60s:\n{_tail(log)}") from None
            await asyncio.sleep(0.2)
    try:
        await admin.execute("CREATE DATABASE apex")
    finally:
        await admin.close()
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """DSN of a throw-away PostgreSQL with database `apex` and extension `vector`."""
    import pgserver
    import pgserver.utils

    bindir = Path(pgserver.__file__).parent / "pginstall" / "bin"
    base = Path(tempfile.mkdtemp(prefix="apexpg-"))  # short: unix socket paths max 107 bytes
    data, sockets, log = base / "data", base / "sock", base / "postgres.log"
    sockets.mkdir()
    user: str | None = None
    if os.geteuid() == 0:  # postgres refuses to run as root
        entry = pgserver.utils.ensure_user_exists("pgserver")
        assert entry is not None
        user = "pgserver"
        for path in (base, sockets):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    subprocess.run(
        [str(bindir / "initdb"), "-D", str(data), "--auth=trust", "-U", "postgres", "-E", "UTF8", "--locale=C"],
        check=True,
        capture_output=True,
        user=user,
    )
    port = _free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(bindir / "postgres"), "-D", str(data), "-p", str(port), "-h", "127.0.0.1", "-k", str(sockets)],
            stdout=out,
            stderr=subprocess.STDOUT,
            user=user,
        )
    dsn = f"postgresql://postgres@127.0.0.1:{port}/apex"
    try:
        asyncio.run(_wait_and_prepare(f"postgresql://postgres@127.0.0.1:{port}/postgres", dsn, proc, log))
        yield dsn
    finally:
        proc.terminate()  # SIGTERM: smart shutdown; sessions are closed by then
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(base, ignore_errors=True)


def make_settings(dsn: str, schema: str | None = None, **overrides: object) -> PostgresSinkSettings:
    return PostgresSinkSettings(
        dsn=SecretStr(dsn),
        schema=schema or f"t_{uuid.uuid4().hex[:12]}",
        **overrides,  # type: ignore[arg-type]
    )


@pytest.fixture
def settings(postgres_dsn: str) -> PostgresSinkSettings:
    """Settings with a schema of this test's own."""
    return make_settings(postgres_dsn)


@pytest.fixture
async def sink(settings: PostgresSinkSettings) -> AsyncIterator[PostgresSink]:
    async with PostgresSink(settings) as opened:
        yield opened


@pytest.fixture
async def conn(postgres_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A plain connection, to look at rows as stored."""
    connection = await asyncpg.connect(postgres_dsn)
    try:
        yield connection
    finally:
        await connection.close()
