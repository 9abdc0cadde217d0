"""Settings, URI parsing, backend selection, the embedded-stack fallback and health."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import SecretStr

from apex_platform.errors import SettingsError, SinkError
from apex_platform.stack.ports import free_port
from apex_platform.testing.stack_file import write_stack_file
from apex_sink_graph import GraphSink, GraphSinkSettings, parse_uri, resolve_target
from apex_sink_graph.falkordb_backend import FalkorDBBackend
from apex_sink_graph.neo4j_backend import Neo4jBackend
from apex_sink_graph.settings import redact


@pytest.mark.parametrize(
    ("uri", "backend", "url", "graph"),
    [
        ("falkordb://db.example:6379/freight", "falkordb", "redis://db.example:6379", "freight"),
        ("falkordb://db.example:6379", "falkordb", "redis://db.example:6379", "apex"),
        ("falkordb://db.example:6379/", "falkordb", "redis://db.example:6379", "apex"),
        ("falkordbs://u:pw@db.example:6380/g%20x", "falkordb", "rediss://u:pw@db.example:6380", "g x"),
        ("falkor://db.example/g", "falkordb", "redis://db.example", "g"),
        ("redis://127.0.0.1:6380/0", "falkordb", "redis://127.0.0.1:6380/0", "apex"),
        ("rediss://:pw@cache.example:6380", "falkordb", "rediss://:pw@cache.example:6380", "apex"),
        ("neo4j://graph.example:7687", "neo4j", "neo4j://graph.example:7687", "apex"),
        ("neo4j+s://abc123.databases.neo4j.io", "neo4j", "neo4j+s://abc123.databases.neo4j.io", "apex"),
        ("bolt://localhost:7687", "neo4j", "bolt://localhost:7687", "apex"),
        ("bolt+s://graph.example:7687", "neo4j", "bolt+s://graph.example:7687", "apex"),
        ("NEO4J+SSC://graph.example", "neo4j", "neo4j+ssc://graph.example", "apex"),
    ],
)
def test_uri_selects_backend(uri: str, backend: str, url: str, graph: str) -> None:
    target = parse_uri(uri)
    assert (target.backend, target.url, target.graph) == (backend, url, graph)


@pytest.mark.parametrize("uri", ["http://x", "postgresql://x/db", "x", "neo4j://", "falkordb:///g"])
def test_unusable_uri_names_the_setting(uri: str) -> None:
    with pytest.raises(SettingsError, match="APEX_GRAPH_URI"):
        parse_uri(uri)


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APEX_GRAPH_URI", "neo4j+s://abc.databases.neo4j.io")
    monkeypatch.setenv("APEX_GRAPH_USER", "apex")
    monkeypatch.setenv("APEX_GRAPH_PASSWORD", "s3cret")
    monkeypatch.setenv("APEX_GRAPH_DATABASE", "freight")
    settings = GraphSinkSettings()
    assert "s3cret" not in repr(settings)
    target = resolve_target(settings)
    assert (target.backend, target.database) == ("neo4j", "freight")
    sink = GraphSink()
    assert isinstance(sink.backend, Neo4jBackend)
    assert sink.backend.driver_options()["auth"] == ("apex", "s3cret")
    assert "s3cret" not in sink.target.where()


def test_redact() -> None:
    assert redact("rediss://user:pw@host:6380/0") == "rediss://user:***@host:6380/0"
    assert redact("redis://:pw@host") == "redis://:***@host"
    assert redact("bolt://host:7687?password=x&a=b") == "bolt://host:7687?password=***&a=b"


@pytest.fixture
def apex_home(apex_isolated_home: Callable[..., Path]) -> Path:
    """An empty APEX_HOME, and no APEX_GRAPH_* in the environment."""
    return apex_isolated_home("APEX_GRAPH_")


def test_constructor_does_no_io_and_never_fails(apex_home: Path) -> None:
    sink = GraphSink()
    assert sink.name == "graph"
    assert "unresolved" in repr(sink)


async def test_missing_config_is_a_settings_error(apex_home: Path) -> None:
    sink = GraphSink()
    with pytest.raises(SettingsError, match="APEX_GRAPH_URI") as caught:
        await sink.open()
    assert str(apex_home / "stack.json") in str(caught.value)
    with pytest.raises(SinkError, match="not configured"):
        await sink.health()


async def test_embedded_stack_fallback(apex_home: Path, falkordb_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    redis_url = falkordb_url.replace("falkordb://", "redis://") + "/0"
    write_stack_file(apex_home, redis={"url": redis_url})
    monkeypatch.setenv("APEX_GRAPH_NAME", "stack_graph_test")
    sink = GraphSink()
    target = sink.target
    assert (target.backend, target.url, target.graph) == ("falkordb", redis_url, "stack_graph_test")
    assert "stack.json" in target.where()
    await sink.open()
    try:
        await sink.health()
    finally:
        await sink.backend.read("MATCH (n) RETURN count(n) AS n", {})
        await sink.close()


def test_stack_file_without_redis(apex_home: Path) -> None:
    write_stack_file(apex_home, postgres={"dsn": "postgresql://127.0.0.1/x"})
    with pytest.raises(SettingsError, match=r"redis\.url"):
        resolve_target(GraphSinkSettings())


async def test_health_fails_clearly_on_a_closed_port() -> None:
    port = free_port()
    sink = GraphSink(GraphSinkSettings(uri=SecretStr(f"falkordb://127.0.0.1:{port}/g"), health_timeout=1))
    assert isinstance(sink.backend, FalkorDBBackend)
    with pytest.raises(SinkError, match=rf"127\.0\.0\.1:{port}.*unhealthy"):
        await sink.health()
    with pytest.raises(SinkError, match=rf"cannot open falkordb redis://127\.0\.0\.1:{port}"):
        await sink.open()


async def test_health_of_an_open_sink(sink: GraphSink) -> None:
    await sink.health()


def test_plugin_registers_the_sink() -> None:
    from apex_sink_graph import plugin

    registered: list[object] = []
    plugin.apex_register_sinks(registered.append)
    [only] = registered
    assert isinstance(only, GraphSink)
    assert only.name == "graph"
