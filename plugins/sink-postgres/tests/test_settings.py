"""Settings, DSN resolution, registration without configuration, health."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path

import asyncpg
import pytest
from pydantic import SecretStr, ValidationError

from apex_platform.errors import SettingsError, SinkError
from apex_platform.models import Record
from apex_platform.plugins import build_registry
from apex_platform.stack.ports import free_port
from apex_platform.testing.stack_file import write_stack_file
from apex_sink_postgres import PostgresSink, PostgresSinkSettings, plugin
from apex_sink_postgres.settings import redact


@pytest.fixture
def apex_home(apex_isolated_home: Callable[..., Path]) -> Path:
    """An empty APEX_HOME, and no APEX_POSTGRES_* in the environment."""
    return apex_isolated_home("APEX_POSTGRES_", chdir=True)


def test_defaults_and_environment(apex_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = PostgresSinkSettings()
    assert defaults.dsn is None
    assert (defaults.schema, defaults.pool_min, defaults.pool_max, defaults.embedding_dim) == ("apex", 1, 10, 384)
    monkeypatch.setenv("APEX_POSTGRES_DSN", "postgresql://u:secret@db:5432/apex")
    monkeypatch.setenv("APEX_POSTGRES_SCHEMA", "memory")
    monkeypatch.setenv("APEX_POSTGRES_EMBEDDING_DIM", "1536")
    loaded = PostgresSinkSettings()
    assert loaded.dsn is not None
    assert loaded.dsn.get_secret_value().endswith("@db:5432/apex")
    assert "secret" not in repr(loaded)
    assert (loaded.schema, loaded.embedding_dim) == ("memory", 1536)


@pytest.mark.parametrize("bad", [{"schema": "Robert'); DROP"}, {"schema": "1abc"}, {"pool_min": 5, "pool_max": 2}])
def test_invalid_settings_are_refused(apex_home: Path, bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        PostgresSinkSettings(**bad)  # type: ignore[arg-type]


def test_registration_needs_no_configuration(apex_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APEX_POSTGRES_POOL_MAX", "not a number")  # broken, but only open() reads it
    registry = build_registry(modules=[plugin], use_entry_points=False)
    assert registry.problems == []
    assert isinstance(registry.sinks["postgres"], PostgresSink)


def test_entry_point_is_declared() -> None:
    found = {ep.name: ep.value for ep in entry_points(group="apex.plugins")}
    assert found.get("postgres") == "apex_sink_postgres.plugin"


async def test_missing_dsn_says_what_to_do(apex_home: Path) -> None:
    sink = PostgresSink(PostgresSinkSettings())
    with pytest.raises(SettingsError) as caught:
        await sink.open()
    assert "APEX_POSTGRES_DSN" in str(caught.value)
    assert "apex-platform dev" in str(caught.value)


async def test_broken_environment_fails_at_open_with_the_variable(
    apex_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APEX_POSTGRES_POOL_MAX", "lots")
    with pytest.raises(SettingsError, match="APEX_POSTGRES_POOL_MAX"):
        await PostgresSink().open()


async def test_dsn_from_the_embedded_stack(apex_home: Path, postgres_dsn: str) -> None:
    write_stack_file(apex_home, postgres={"dsn": postgres_dsn})
    async with PostgresSink(PostgresSinkSettings(schema="t_from_stack")) as sink:
        await sink.health()
        assert await sink.count() == 0


async def test_stale_stack_file_hints_at_the_dev_stack(apex_home: Path) -> None:
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/apex"
    write_stack_file(apex_home, postgres={"dsn": dead})
    with pytest.raises(SinkError, match=r"stack\.json: is `apex-platform dev` running\?"):
        await PostgresSink(PostgresSinkSettings(connect_timeout=2)).open()


async def test_unreadable_stack_file_names_the_file(apex_home: Path) -> None:
    write_stack_file(apex_home, redis={})
    with pytest.raises(SettingsError, match=r"stack\.json"):
        await PostgresSink(PostgresSinkSettings()).open()


async def test_health_fails_cleanly_when_unreachable(apex_home: Path) -> None:
    port = free_port()  # nothing listens there
    settings = PostgresSinkSettings(
        dsn=SecretStr(f"postgresql://apex:hunter2@127.0.0.1:{port}/apex"), health_timeout=1, connect_timeout=1
    )
    sink = PostgresSink(settings)
    started = time.monotonic()
    with pytest.raises(SinkError) as caught:
        await sink.health()
    assert time.monotonic() - started < 5
    assert f"127.0.0.1:{port}" in str(caught.value)
    assert "hunter2" not in str(caught.value)
    with pytest.raises(SinkError, match="cannot open") as opened:
        await sink.open()
    assert "hunter2" not in str(opened.value)


async def test_health_without_configuration_is_a_sink_error(apex_home: Path) -> None:
    with pytest.raises(SinkError, match="APEX_POSTGRES_DSN"):
        await PostgresSink(PostgresSinkSettings()).health()


async def test_health_of_an_open_sink(sink: PostgresSink) -> None:
    await sink.health()


async def test_health_after_the_pool_lost_its_server(
    record: Callable[..., Record], sink: PostgresSink, postgres_dsn: str
) -> None:
    async with sink.database.acquire() as pooled:
        pid = pooled.get_server_pid()
    admin = await asyncpg.connect(postgres_dsn)
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        for _ in range(100):  # pg_terminate_backend only signals; wait until it is gone
            if not await admin.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid):
                break
            await asyncio.sleep(0.05)
    finally:
        await admin.close()
    await sink.health()  # the dropped pooled connection is replaced, not reported as an outage
    await sink.write([record("after-restart", 1)])


def test_redact_hides_passwords() -> None:
    assert redact("postgresql://u:pw@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert redact("postgresql://u@h/db") == "postgresql://u@h/db"
    assert "pw" not in redact("host=h password=pw dbname=db")
    assert "pw" not in redact("postgresql://h/db?password=pw&sslmode=require")
