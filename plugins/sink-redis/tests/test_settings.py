"""Settings, URL resolution, registration without configuration, health."""

from __future__ import annotations

import time
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from apex_platform.errors import SettingsError, SinkError
from apex_platform.plugins import build_registry
from apex_platform.stack.ports import free_port
from apex_platform.testing.stack_file import write_stack_file
from apex_sink_redis import RedisSink, RedisSinkSettings, plugin
from apex_sink_redis.settings import redact


@pytest.fixture
def apex_home(apex_isolated_home: Callable[..., Path]) -> Path:
    """An empty APEX_HOME, and no APEX_REDIS_* in the environment."""
    return apex_isolated_home("APEX_REDIS_", chdir=True)


def test_defaults_and_environment(apex_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = RedisSinkSettings()
    assert defaults.url is None
    assert (defaults.prefix, defaults.ttl_seconds, defaults.lock_ttl_seconds) == ("apex", 7 * 24 * 3600, 120)
    assert (defaults.lock_wait_seconds, defaults.ledger_ttl_seconds) == (60, 24 * 3600)
    monkeypatch.setenv("APEX_REDIS_URL", "redis://:secret@cache:6379/2")
    monkeypatch.setenv("APEX_REDIS_PREFIX", "prod")
    monkeypatch.setenv("APEX_REDIS_TTL_SECONDS", "0")
    loaded = RedisSinkSettings()
    assert loaded.url is not None
    assert loaded.url.get_secret_value().endswith("@cache:6379/2")
    assert "secret" not in repr(loaded)
    assert (loaded.prefix, loaded.ttl_seconds, loaded.record_ttl_ms) == ("prod", 0, 0)


@pytest.mark.parametrize("bad", [{"prefix": ""}, {"prefix": "a b"}, {"prefix": "a:b"}, {"ttl_seconds": -1}])
def test_invalid_settings_are_refused(apex_home: Path, bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        RedisSinkSettings(**bad)  # type: ignore[arg-type]


def test_registration_needs_no_configuration(apex_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APEX_REDIS_LOCK_WAIT_SECONDS", "forever")  # broken, but only open() reads it
    registry = build_registry(modules=[plugin], use_entry_points=False)
    assert registry.problems == []
    assert isinstance(registry.sinks["redis"], RedisSink)


def test_entry_point_is_declared() -> None:
    found = {ep.name: ep.value for ep in entry_points(group="apex.plugins")}
    assert found.get("redis") == "apex_sink_redis.plugin"


async def test_missing_url_says_what_to_do(apex_home: Path) -> None:
    with pytest.raises(SettingsError) as caught:
        await RedisSink(RedisSinkSettings()).open()
    assert "APEX_REDIS_URL" in str(caught.value)
    assert "apex-platform dev" in str(caught.value)


async def test_broken_environment_fails_at_open_with_the_variable(
    apex_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APEX_REDIS_LOCK_WAIT_SECONDS", "forever")
    with pytest.raises(SettingsError, match="APEX_REDIS_LOCK_WAIT_SECONDS"):
        await RedisSink().open()


async def test_unusable_url_names_the_variable(apex_home: Path) -> None:
    with pytest.raises(SettingsError, match="APEX_REDIS_URL"):
        await RedisSink(RedisSinkSettings(url=SecretStr("http://cache:6379"))).open()


async def test_url_from_the_embedded_stack(apex_home: Path, redis_url: str) -> None:
    write_stack_file(apex_home, redis={"url": redis_url})
    async with RedisSink(RedisSinkSettings(prefix="t-from-stack")) as sink:
        await sink.health()
        assert await sink.committed(["nothing"]) == set()


async def test_stale_or_incomplete_stack_file(apex_home: Path) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    write_stack_file(apex_home, redis={"url": dead})
    with pytest.raises(SinkError, match=r"stack\.json: is `apex-platform dev` running\?"):
        await RedisSink(RedisSinkSettings(connect_timeout_seconds=1)).open()
    write_stack_file(apex_home, postgres={})
    with pytest.raises(SettingsError, match=r"stack\.json has no redis\.url"):
        await RedisSink(RedisSinkSettings()).open()


async def test_health_fails_cleanly_on_a_closed_port(apex_home: Path) -> None:
    port = free_port()  # nothing listens there
    settings = RedisSinkSettings(
        url=SecretStr(f"redis://apex:hunter2@127.0.0.1:{port}/0"), health_timeout_seconds=1, connect_timeout_seconds=1
    )
    sink = RedisSink(settings)
    started = time.monotonic()
    with pytest.raises(SinkError) as caught:
        await sink.health()
    assert time.monotonic() - started < 5
    assert f"127.0.0.1:{port}" in str(caught.value)
    assert "does not answer" in str(caught.value)
    assert "hunter2" not in str(caught.value)
    with pytest.raises(SinkError, match="cannot open") as opened:
        await sink.open()
    assert "hunter2" not in str(opened.value)
    assert not sink.is_open


async def test_health_without_configuration_is_a_sink_error(apex_home: Path) -> None:
    with pytest.raises(SinkError, match="APEX_REDIS_URL"):
        await RedisSink(RedisSinkSettings()).health()


async def test_health_of_an_open_sink_and_reopen(sink: RedisSink) -> None:
    await sink.health()
    await sink.open()  # idempotent
    await sink.close()
    await sink.close()
    await sink.health()  # closed: a temporary connection answers
    await sink.open()
    await sink.health()


def test_redact_hides_passwords() -> None:
    assert redact("redis://u:pw@h:6379/0") == "redis://u:***@h:6379/0"
    assert redact("redis://:pw@h:6379/0") == "redis://:***@h:6379/0"
    assert redact("rediss://h:6380/1") == "rediss://h:6380/1"
    assert "pw" not in redact("unix:///run/redis.sock?db=0&password=pw")
