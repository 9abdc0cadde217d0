"""The embedded servers and stack against the real binaries: start, answer, stop, restart, fail clearly.

The session fixtures of the testing kit serve the "answers" tests; tests that stop
or restart a server use their own instance so the shared ones stay up for the rest
of the suite. Only one EmbeddedStack is started (twice, to prove it resumes).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import psutil
import pytest
import redis
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client, WorkflowExecutionStatus

from apex_platform.stack import (
    APEX_SEARCH_ATTRIBUTES,
    EmbeddedStack,
    PostgresServer,
    RedisServer,
    StackError,
    StackSettings,
    TemporalDevServer,
    free_port,
    port_is_free,
    read_stack,
)
from apex_platform.stack.processes import ServerProcess
from apex_platform.testing.pytest_plugin import postgres_data_dir
from apex_platform.testing.stack_file import write_stack_file

pytestmark = pytest.mark.timeout(120)


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


def gone(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


def server_children(home: Path) -> list[psutil.Process]:
    """Our descendants that are servers working under `home` (a clean stop leaves none).

    The session fixtures' servers are our children too; the working folder tells them
    apart (each server runs in, or chdirs to, its data folder).
    """
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE and Path(child.cwd()).is_relative_to(home):
                found.append(child)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


@pytest.fixture
def pg_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Where tests put PostgreSQL data (see `postgres_data_dir` for why not tmp_path as root)."""
    with postgres_data_dir(tmp_path_factory, "apex-test-pg") as folder:
        yield folder


@pytest.fixture
def listener() -> Iterator[int]:
    """A port something else listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


# -- ports -----------------------------------------------------------------------------


def test_free_port_is_bindable() -> None:
    port = free_port()
    assert 0 < port < 65536
    assert port_is_free(port)


@pytest.mark.parametrize(
    ("make", "setting", "service"),
    [
        (lambda d, p: TemporalDevServer(d, port=p, ui_port=None), "APEX_TEMPORAL_PORT", "Temporal"),
        (lambda d, p: TemporalDevServer(d, port=free_port(), ui_port=p), "APEX_TEMPORAL_UI_PORT", "Temporal UI"),
        (lambda d, p: PostgresServer(d, port=p), "APEX_POSTGRES_PORT", "PostgreSQL"),
        (lambda d, p: RedisServer(d, port=p), "APEX_REDIS_PORT", "Redis"),
    ],
    ids=["temporal", "temporal-ui", "postgres", "redis"],
)
def test_busy_port_is_a_clear_error(tmp_path: Path, listener: int, make: Any, setting: str, service: str) -> None:
    server: ServerProcess = make(tmp_path, listener)
    with pytest.raises(StackError) as caught:
        server.start()
    message = str(caught.value)
    assert f"port {listener} for" in message
    assert service in message
    assert f"set {setting}" in message
    assert not server.is_running
    assert not (tmp_path / "logs").exists()  # nothing was launched


def test_a_server_that_exits_early_names_itself_and_shows_its_log(tmp_path: Path) -> None:
    class BrokenRedis(RedisServer):
        def command(self) -> list[str]:
            return [*super().command(), "--no-such-directive", "yes"]

    server = BrokenRedis(tmp_path, port=free_port(), startup_timeout=20)
    with pytest.raises(StackError) as caught:
        server.start()
    message = str(caught.value)
    assert message.startswith("Redis exited with code")
    assert str(server.log_path) in message
    assert "no-such-directive" in message  # the tail of its own log
    assert not server.is_running


# -- the session fixtures answer ---------------------------------------------------------


@pytest.mark.asyncio
async def test_temporal_server_answers_with_apex_search_attributes(apex_temporal_server: TemporalDevServer) -> None:
    assert apex_temporal_server.is_running
    assert apex_temporal_server.ui_url is None  # headless in tests
    client = await Client.connect(apex_temporal_server.address)
    response = await client.operator_service.list_search_attributes(ListSearchAttributesRequest(namespace="default"))
    for name, kind in APEX_SEARCH_ATTRIBUTES.items():  # e.g. "KeywordList" -> INDEXED_VALUE_TYPE_KEYWORD_LIST
        expected = IndexedValueType.Value("INDEXED_VALUE_TYPE_" + re.sub(r"(?<!^)(?=[A-Z])", "_", kind).upper())
        assert response.custom_attributes[name] == expected, name


@pytest.mark.asyncio
async def test_postgres_server_answers_with_pgvector(apex_postgres_server: PostgresServer) -> None:
    assert apex_postgres_server.dsn.endswith("/apex")
    connection = await asyncpg.connect(apex_postgres_server.dsn)
    try:
        version = await connection.fetchval("select extversion from pg_extension where extname = 'vector'")
        assert version
        await connection.execute("create temporary table probe (id int primary key, embedding vector(3))")
        await connection.execute("insert into probe values (1, $1::vector), (2, '[9,9,9]')", "[1,2,3]")
        row = await connection.fetchrow(
            "select id, embedding::text as embedding from probe order by embedding <-> '[1,2,4]' limit 1"
        )
        assert row is not None
        assert (row["id"], row["embedding"]) == (1, "[1,2,3]")
    finally:
        await connection.close()


def test_redis_server_answers_with_falkordb(apex_redis_server: RedisServer) -> None:
    with redis.Redis.from_url(apex_redis_server.url) as client:
        assert client.ping()
        result = client.execute_command("GRAPH.QUERY", "apex_probe", "RETURN 1")
        assert result[1] == [[1]]
        client.delete("apex_probe")


# -- stop and restart keep the data ------------------------------------------------------


def assert_stopped(server: ServerProcess, pid: int) -> None:
    assert not server.is_running
    assert server.pid is None
    assert gone(pid)
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)  # nothing left of its process group


@pytest.mark.timeout(60)
def test_redis_stops_and_restarts_with_its_data(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis", port=free_port())
    try:
        server.start()
        server.start()  # idempotent
        with redis.Redis.from_url(server.url) as client:
            client.set("apex:probe", "kept")
            client.execute_command("GRAPH.QUERY", "g", "CREATE (:Shipment {id: 'S1'})")
        first = server.pid
        assert first is not None
        server.restart()
        assert server.pid not in (None, first)
        assert gone(first)
        with redis.Redis.from_url(server.url) as client:
            assert client.get("apex:probe") == b"kept"
            assert client.execute_command("GRAPH.QUERY", "g", "MATCH (s:Shipment) RETURN s.id")[1] == [[b"S1"]]
        pid = server.pid
        assert pid is not None
        server.stop()
        server.stop()  # idempotent
        assert_stopped(server, pid)
    finally:
        server.stop()


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_async_wrappers_and_context_manager(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis", port=free_port())
    await server.astart()
    try:
        with redis.Redis.from_url(server.url) as client:
            assert client.ping()
    finally:
        pid = server.pid
        await server.astop()
    assert pid is not None
    assert_stopped(server, pid)
    with server as same:
        assert same is server
        assert server.is_running
        pid = server.pid
    assert pid is not None
    assert_stopped(server, pid)


@pytest.mark.asyncio
@pytest.mark.timeout(90)
async def test_postgres_stops_and_restarts_with_its_data(pg_root: Path) -> None:
    server = PostgresServer(pg_root / "postgres", port=free_port())
    try:
        server.start()
        connection = await asyncpg.connect(server.dsn)
        await connection.execute("create table kept (id int primary key, embedding vector(2))")
        await connection.execute("insert into kept values (1, '[0.5,1]')")
        await connection.close()
        pg_version = (server.pgdata / "PG_VERSION").stat().st_mtime_ns
        first = server.pid
        assert first is not None
        server.restart()
        assert gone(first)
        assert (server.pgdata / "PG_VERSION").stat().st_mtime_ns == pg_version  # no second initdb
        connection = await asyncpg.connect(server.dsn)
        assert await connection.fetchval("select embedding::text from kept where id = 1") == "[0.5,1]"
        await connection.close()
        pid = server.pid
        assert pid is not None
        server.stop()
        assert_stopped(server, pid)
    finally:
        server.stop()


@pytest.mark.asyncio
@pytest.mark.timeout(90)
async def test_temporal_stops_and_restarts_with_its_workflows(tmp_path: Path) -> None:
    server = TemporalDevServer(tmp_path / "temporal", port=free_port(), ui_port=None)
    try:
        server.start()
        client = await Client.connect(server.address)
        # No worker polls this queue: the workflow stays running, in the database file.
        await client.start_workflow("ApexProbe", id="apex:probe:1", task_queue="apex-probe-nobody")
        first = server.pid
        assert first is not None
        server.restart()
        assert gone(first)
        client = await Client.connect(server.address)
        description = await client.get_workflow_handle("apex:probe:1").describe()
        assert description.status == WorkflowExecutionStatus.RUNNING
        pid = server.pid
        assert pid is not None
        server.stop()
        assert_stopped(server, pid)
    finally:
        server.stop()


@pytest.mark.timeout(90)
def test_servers_die_with_a_hard_killed_parent(pg_root: Path) -> None:
    """PR_SET_PDEATHSIG: a `kill -9` of the owning Python process leaves no servers behind.

    PostgreSQL is included because it runs under another user when we are root, and
    the death signal must survive that switch.
    """
    script = textwrap.dedent(
        f"""
        import sys, time
        from apex_platform.stack import PostgresServer, RedisServer, free_port
        servers = [RedisServer({str(pg_root / "redis")!r}, port=free_port()),
                   PostgresServer({str(pg_root / "postgres")!r}, port=free_port())]
        for server in servers:
            server.start()
        print(" ".join(str(server.pid) for server in servers), flush=True)
        time.sleep(120)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        line = parent.stdout.readline()
        pids = [int(pid) for pid in line.split()]
        assert len(pids) == 2, line
        assert not any(gone(pid) for pid in pids)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
    wait_until(lambda: all(gone(pid) for pid in pids), 30, "the servers to follow their parent")


# -- the embedded stack ------------------------------------------------------------------


def stack_settings() -> StackSettings:
    return StackSettings(
        temporal_port=free_port(),
        temporal_ui_port=0,
        postgres_port=free_port(),
        redis_port=free_port(),
        api_port=free_port(),
        startup_timeout=90,
    )


@pytest.mark.asyncio
@pytest.mark.timeout(240)
async def test_embedded_stack_starts_describes_stops_and_resumes(pg_root: Path) -> None:
    home = pg_root / "apex-home"
    settings = stack_settings()
    stack = EmbeddedStack(home, settings)
    try:
        info = stack.start()
        assert stack.is_running
        assert len(server_children(home)) >= 3  # the check below can see them
        written = json.loads((home / "stack.json").read_text())
        assert written == info == read_stack(home)
        assert info["temporal"]["address"] == f"127.0.0.1:{settings.temporal_port}"
        assert info["temporal"]["namespace"] == "default"
        assert info["temporal"]["ui_url"] is None
        pg_password, redis_password = stack.postgres.password, stack.redis.password
        assert pg_password
        assert redis_password
        assert info["postgres"]["dsn"] == f"postgresql://postgres:{pg_password}@127.0.0.1:{settings.postgres_port}/apex"
        assert info["redis"]["url"] == f"redis://:{redis_password}@127.0.0.1:{settings.redis_port}/0"
        assert info["qdrant"]["path"] == str(home / "qdrant")
        assert info["api"]["url"] == f"http://127.0.0.1:{settings.api_port}"
        assert info["pid"] == os.getpid()
        assert (home / "temporal" / "temporal.db").is_file()
        assert (home / "postgres" / "pgdata" / "PG_VERSION").is_file()

        # A second dev run on the same home is refused, and does not disturb the first.
        with pytest.raises(StackError, match="another Apex stack is already running on APEX_HOME"):
            EmbeddedStack(home, settings).start()
        assert stack.is_running

        # Leave a trace in every store.
        client = await Client.connect(info["temporal"]["address"])
        await client.start_workflow("ApexProbe", id="apex:stack:1", task_queue="apex-probe-nobody")
        connection = await asyncpg.connect(info["postgres"]["dsn"])
        await connection.execute("create table kept (id int primary key)")
        await connection.execute("insert into kept values (7)")
        await connection.close()
        with redis.Redis.from_url(info["redis"]["url"]) as cache:
            cache.set("apex:stack", "kept")

        pids = [server.pid for server in stack.servers]
        stack.stop()
        assert not (home / "stack.json").exists()
        assert read_stack(home) is None
        assert all(pid is not None and gone(pid) for pid in pids)
        assert server_children(home) == []

        # The same home resumes the same state.
        stack = EmbeddedStack(home, settings)
        stack.start()
        client = await Client.connect(info["temporal"]["address"])
        description = await client.get_workflow_handle("apex:stack:1").describe()
        assert description.status == WorkflowExecutionStatus.RUNNING
        connection = await asyncpg.connect(info["postgres"]["dsn"])
        assert await connection.fetchval("select id from kept") == 7
        await connection.close()
        with redis.Redis.from_url(info["redis"]["url"]) as cache:
            assert cache.get("apex:stack") == b"kept"
        stack.stop()
        assert server_children(home) == []
    finally:
        stack.stop()


def test_embedded_stack_reports_every_busy_port_and_releases_its_home(tmp_path: Path, listener: int) -> None:
    settings = stack_settings().model_copy(update={"redis_port": listener, "api_port": listener})
    home = tmp_path / "apex-home"
    with pytest.raises(StackError) as caught:
        EmbeddedStack(home, settings).start()
    assert "set APEX_REDIS_PORT" in str(caught.value)
    assert "set APEX_API_PORT" in str(caught.value)
    assert not (home / "stack.json").exists()
    assert server_children(home) == []
    # The failed start released the lock: the home is usable at once.
    stack = EmbeddedStack(home, settings)
    stack._acquire_lock()
    stack._release_lock()


def test_read_stack_ignores_a_file_left_by_a_dead_process(tmp_path: Path) -> None:
    assert read_stack(tmp_path) is None
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "stack.json").write_text(json.dumps({"pid": dead.pid, "redis": {"url": "redis://x"}}))
    assert read_stack(tmp_path) is None
    # a live pid alone is not enough (pid 1 is alive too): the file must name this very process
    (tmp_path / "stack.json").write_text(json.dumps({"pid": os.getpid(), "redis": {"url": "redis://127.0.0.1:1"}}))
    assert read_stack(tmp_path) is None
    write_stack_file(tmp_path, redis={"url": "redis://127.0.0.1:1"})
    info = read_stack(tmp_path)
    assert info is not None
    assert (info["pid"], info["redis"]) == (os.getpid(), {"url": "redis://127.0.0.1:1"})


# -- the pytest plugin's hard exit ---------------------------------------------------------


@pytest.mark.timeout(90)
@pytest.mark.parametrize(("env_value", "atexit_runs"), [("1", False), ("0", True)])
def test_pytest_hard_exit_keeps_the_status_and_can_be_switched_off(
    tmp_path: Path, env_value: str, atexit_runs: bool
) -> None:
    marker = tmp_path / "atexit-ran"
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_inner.py").write_text(
        textwrap.dedent(
            f"""
            import atexit, pathlib
            atexit.register(lambda: pathlib.Path({str(marker)!r}).write_text("yes"))

            def test_fails():
                assert False
            """
        )
    )
    env = {**os.environ, "APEX_PYTEST_HARD_EXIT": env_value}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_inner.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=80,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 failed" in result.stdout  # the summary was flushed before the exit
    assert marker.exists() is atexit_runs
