"""The embedded stack trusts no other local user (issue 11, item 2), against the real binaries.

PostgreSQL takes password logins only, Redis answers nothing before AUTH, the passwords
live in 0600 files, stack.json is 0600, no server inherits our environment (secrets
would be readable in /proc/<pid>/environ), and a non-loopback APEX_STACK_HOST is
refused unless APEX_STACK_ALLOW_REMOTE says otherwise.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import psutil
import pytest
import redis

from apex_platform.stack import (
    EmbeddedStack,
    PostgresServer,
    RedisServer,
    StackError,
    StackSettings,
    TemporalDevServer,
    free_port,
)
from apex_platform.stack.credentials import redact, scram_sha256_verifier
from apex_platform.stack.processes import CHILD_ENV_KEEP, ServerProcess
from apex_platform.testing.pytest_plugin import postgres_data_dir

pytestmark = pytest.mark.timeout(180)

MARKER = "apex-marker-secret-7f3c9e"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def pg_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with postgres_data_dir(tmp_path_factory, "apex-sec-pg") as folder:
        yield folder


def environ_of(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return {}  # a short-lived child (a probe's backend) that is gone already
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {key.decode(errors="replace"): value.decode(errors="replace") for key, value in pairs}


def server_processes(server: ServerProcess) -> list[psutil.Process]:
    """The server's main process and everything it started (PostgreSQL's backends, ...)."""
    assert server.pid is not None
    main = psutil.Process(server.pid)
    return [main, *main.children(recursive=True)]


# -- no child inherits our environment ----------------------------------------------------


class RedisKeepingItsEnviron(RedisServer):
    """Redis writes its process title over its environment block, which would hide what it got."""

    def command(self) -> list[str]:
        return [*super().command(), "--set-proc-title", "no"]


@pytest.mark.parametrize("kind", ["temporal", "postgres", "redis"])
def test_no_server_sees_a_secret_of_the_parent_environment(
    kind: str, pg_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APEX_ADMIN_TOKEN", MARKER)
    monkeypatch.setenv("APEX_FRONTAPP_SIGNING_SECRET", MARKER)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", MARKER)
    servers: dict[str, ServerProcess] = {
        "temporal": TemporalDevServer(pg_root / "temporal", port=free_port(), ui_port=None),
        "postgres": PostgresServer(pg_root / "postgres", port=free_port()),
        "redis": RedisKeepingItsEnviron(pg_root / "redis", port=free_port()),
    }
    server = servers[kind]
    try:
        server.start()
        processes = server_processes(server)
        for process in processes:  # PostgreSQL's backends overwrite theirs with their titles
            env = environ_of(process.pid)
            assert MARKER not in "\0".join(f"{k}={v}" for k, v in env.items()), (process.name(), env)
            # nor do the passwords show on the command line, which every local user can read
            password = getattr(server, "password", None)
            if password and env:
                assert password not in " ".join(process.cmdline())
        env = environ_of(processes[0].pid)  # as it was exec'd
        assert set(env) <= {*CHILD_ENV_KEEP, "HOME"}, env
        assert env["HOME"] == str(server.data_dir)
        if isinstance(server, PostgresServer):  # what a program the server runs gets
            assert MARKER not in asyncio.run(postgres_program_environment(server))
    finally:
        server.stop()


async def postgres_program_environment(server: PostgresServer) -> str:
    connection = await asyncpg.connect(server.dsn, timeout=10)
    try:
        await connection.execute("create temporary table seen (line text)")
        await connection.execute("copy seen from program 'env'")
        lines = [row["line"] for row in await connection.fetch("select line from seen")]
    finally:
        await connection.close()
    assert any(line.startswith("PATH=") for line in lines), lines
    return "\n".join(lines)


# -- PostgreSQL: password logins only -----------------------------------------------------


async def test_postgres_refuses_logins_without_the_generated_password(apex_postgres_server: PostgresServer) -> None:
    server = apex_postgres_server
    password = server.password
    assert password
    assert len(password) >= 40
    assert mode(server.password_file) == 0o600
    assert f":{password}@" in server.dsn
    hba = (server.pgdata / "pg_hba.conf").read_text()
    assert "trust" not in hba.replace("# Written", "")
    base = f"postgresql://{server.user}@{server.host}:{server.port}/{server.database}"
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(base, timeout=10)  # no password at all
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(base, password="not-the-password", timeout=10)
    connection = await asyncpg.connect(base, password=password, timeout=10)
    try:
        assert await connection.fetchval("select current_user") == server.user
        stored = await connection.fetchval("select rolpassword from pg_authid where rolname = $1", server.user)
        assert stored.startswith("SCRAM-SHA-256$")  # the password itself is not stored
    finally:
        await connection.close()


async def test_a_cluster_that_trusted_every_login_is_secured_at_its_next_start(pg_root: Path) -> None:
    """A cluster made by an earlier Apex (`trust`, no password file) asks for a password once restarted."""
    server = PostgresServer(pg_root / "postgres", port=free_port())
    try:
        server.start()
        server.stop()
        owner = server.pgdata.stat()
        hba = server.pgdata / "pg_hba.conf"
        hba.write_text("host all all all trust\n")
        os.chown(hba, owner.st_uid, owner.st_gid)
        old_password = server.password
        server.password_file.unlink()
        server.start()
        new_password = server.password
        assert new_password
        assert new_password != old_password
        base = f"postgresql://{server.user}@{server.host}:{server.port}/{server.database}"
        with pytest.raises(asyncpg.InvalidPasswordError):
            await asyncpg.connect(base, timeout=10)
        with pytest.raises(asyncpg.InvalidPasswordError):
            await asyncpg.connect(base, password=old_password, timeout=10)
        connection = await asyncpg.connect(server.dsn, timeout=10)
        await connection.close()
    finally:
        server.stop()


def test_scram_verifier_reproduces_the_rfc_7677_exchange() -> None:
    """The verifier's keys produce RFC 7677's server signature and accept its client proof."""
    import base64
    import hashlib
    import hmac

    verifier = scram_sha256_verifier("pencil", salt=base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ=="), iterations=4096)
    head, keys = verifier.rsplit("$", 1)
    assert head == "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ=="
    stored_key, server_key = (base64.b64decode(k) for k in keys.split(":"))
    nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    auth = f"n=user,r=rOprNGfwEbeRWgbNEkqO,r={nonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r={nonce}".encode()
    signature = base64.b64encode(hmac.new(server_key, auth, "sha256").digest()).decode()
    assert signature == "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    proof = base64.b64decode("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
    client_key = bytes(a ^ b for a, b in zip(proof, hmac.new(stored_key, auth, "sha256").digest(), strict=True))
    assert hashlib.sha256(client_key).digest() == stored_key


# -- Redis: AUTH first, loopback, protected mode ------------------------------------------


def test_redis_refuses_unauthenticated_commands(apex_redis_server: RedisServer) -> None:
    server = apex_redis_server
    password = server.password
    assert password
    assert len(password) >= 40
    assert mode(server.password_file) == 0o600
    assert mode(server.config_file) == 0o600
    assert mode(server.storage_dir) == 0o700
    with redis.Redis(host=server.host, port=server.port, protocol=2, socket_timeout=5) as anonymous:
        with pytest.raises(redis.AuthenticationError):
            anonymous.ping()
        with pytest.raises(redis.AuthenticationError):
            anonymous.get("apex:anything")
    with (
        redis.Redis(host=server.host, port=server.port, password="wrong", socket_timeout=5) as wrong,
        pytest.raises(redis.AuthenticationError),
    ):
        wrong.ping()
    with redis.Redis.from_url(server.url, socket_timeout=5) as client:
        assert client.ping()
        assert client.config_get("protected-mode") == {"protected-mode": "yes"}
        assert client.config_get("bind") == {"bind": "127.0.0.1"}


# -- files and the host ----------------------------------------------------------------


def test_private_files_and_folders(apex_postgres_server: PostgresServer, apex_redis_server: RedisServer) -> None:
    for server in (apex_postgres_server, apex_redis_server):
        assert mode(server.password_file) == 0o600
        assert mode(server.log_path) == 0o600
        assert mode(server.log_path.parent) == 0o700
        assert mode(server.data_dir) & 0o077 in (0, 0o001)  # 0o001: traversal by PostgreSQL's user as root


def test_stack_json_holds_the_credentials_and_only_its_owner_can_read_it(pg_root: Path) -> None:
    home = pg_root / "apex-home"
    settings = StackSettings(
        temporal_port=free_port(),
        temporal_ui_port=0,
        postgres_port=free_port(),
        redis_port=free_port(),
        api_port=free_port(),
        startup_timeout=90,
    )
    stack = EmbeddedStack(home, settings)
    try:
        info = stack.start()
        stack_file = home / "stack.json"
        assert mode(stack_file) == 0o600
        assert json.loads(stack_file.read_text()) == info
        assert info["postgres"]["password_file"] == str(stack.postgres.password_file)
        assert info["redis"]["password_file"] == str(stack.redis.password_file)
        assert stack.postgres.password
        assert stack.postgres.password in info["postgres"]["dsn"]
        assert stack.redis.password
        assert stack.redis.password in info["redis"]["url"]
        assert mode(home) & 0o077 in (0, 0o001)  # a new home is 0700 (0701 as root: PostgreSQL's user passes)
    finally:
        stack.stop()


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "::", "db.internal"])
def test_a_non_loopback_stack_host_is_refused(host: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APEX_STACK_HOST", host)
    monkeypatch.delenv("APEX_STACK_ALLOW_REMOTE", raising=False)
    with pytest.raises(StackError, match="APEX_STACK_ALLOW_REMOTE") as caught:
        EmbeddedStack(tmp_path / "home")
    assert host in str(caught.value)
    for make in (TemporalDevServer, PostgresServer, RedisServer):
        with pytest.raises(StackError, match="not a loopback address"):
            make(tmp_path / "x", host=host)
    assert not (tmp_path / "home").exists()


def test_a_non_loopback_stack_host_is_taken_with_a_warning_when_allowed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("APEX_STACK_HOST", "198.51.100.7")
    monkeypatch.setenv("APEX_STACK_ALLOW_REMOTE", "1")
    with caplog.at_level(logging.WARNING, logger="apex_platform.stack.ports"):
        stack = EmbeddedStack(tmp_path / "home")
    assert stack.postgres.host == stack.redis.host == stack.temporal.host == "198.51.100.7"
    assert "other machines can reach them" in caplog.text
    for host in ("127.0.0.1", "127.0.0.2", "::1", "localhost"):
        RedisServer(tmp_path / "y", host=host)  # loopback needs no flag


def test_the_cli_refuses_a_non_loopback_stack_host_in_one_line(tmp_path: Path) -> None:
    cli = Path(sys.executable).parent / "apex-platform"
    env = {**os.environ, "APEX_STACK_HOST": "0.0.0.0", "APEX_HOME": str(tmp_path / "home")}
    env.pop("APEX_STACK_ALLOW_REMOTE", None)
    out = subprocess.run([str(cli), "dev"], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "APEX_STACK_ALLOW_REMOTE" in out.stderr
    assert "Traceback" not in out.stderr


def test_printed_addresses_hide_the_password() -> None:
    assert redact("postgresql://postgres:s3cr3t@127.0.0.1:5433/apex") == "postgresql://postgres:***@127.0.0.1:5433/apex"
    assert redact("redis://:s3cr3t@127.0.0.1:6380/0") == "redis://:***@127.0.0.1:6380/0"
    assert redact("redis://127.0.0.1:6380/0") == "redis://127.0.0.1:6380/0"
