"""open / health / settings: where the store is, the collection's shape, the local-mode lock,
and what a server URL that does not answer looks like (no Qdrant server is installable here)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from pydantic import SecretStr

import apex_sink_qdrant.plugin
from apex_platform.errors import SettingsError, SinkError
from apex_platform.models import Record, RecordKey
from apex_platform.plugins import build_registry
from apex_platform.settings import load
from apex_platform.stack import free_port
from apex_platform.testing.stack_file import write_stack_file
from apex_sink_qdrant import QdrantSink, QdrantSinkSettings

RecordFactory = Callable[..., Record]
SettingsFactory = Callable[..., QdrantSinkSettings]


@pytest.fixture
def apex_home(apex_isolated_home: Callable[..., Path]) -> Path:
    """An empty APEX_HOME (core settings are cached: cleared before and after)."""
    return apex_isolated_home()


# -- settings ---------------------------------------------------------------------------


async def test_nothing_configured_constructs_and_registers_but_open_names_both_variables(apex_home: Path) -> None:
    registry = build_registry("all", modules=[apex_sink_qdrant.plugin], use_entry_points=False)
    assert registry.problems == []
    sink = registry.sinks["qdrant"]
    assert isinstance(sink, QdrantSink)
    assert not sink.is_open
    with pytest.raises(SettingsError) as info:
        await sink.open()
    assert "APEX_QDRANT_URL" in str(info.value)
    assert "APEX_QDRANT_PATH" in str(info.value)
    assert str(apex_home / "stack.json") in str(info.value)
    with pytest.raises(SinkError, match="not configured"):
        await sink.health()


async def test_path_from_the_running_embedded_stack(apex_home: Path, tmp_path: Path, record: RecordFactory) -> None:
    folder = tmp_path / "stack-qdrant"
    write_stack_file(apex_home, qdrant={"path": str(folder)})
    async with QdrantSink(QdrantSinkSettings(embedding_dim=4)) as sink:
        assert sink.location is not None
        assert sink.location.path == folder
        assert sink.location.from_stack
        await sink.write([record("a", 1)])
    assert (folder / "collection" / "apex_records").is_dir()


async def test_stack_json_of_a_dead_stack_is_ignored(apex_home: Path, tmp_path: Path) -> None:
    stack = {"pid": 2**22 + 12345, "qdrant": {"path": str(tmp_path / "old")}}  # above pid_max
    (apex_home / "stack.json").write_text(json.dumps(stack), encoding="utf-8")
    with pytest.raises(SettingsError, match="APEX_QDRANT_URL"):
        await QdrantSink(QdrantSinkSettings()).open()


async def test_url_and_path_together_are_refused(tmp_path: Path) -> None:
    sink = QdrantSink(QdrantSinkSettings(url="http://127.0.0.1:6333", path=tmp_path))
    with pytest.raises(SettingsError, match="both APEX_QDRANT_URL and APEX_QDRANT_PATH"):
        await sink.open()


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("APEX_QDRANT_PATH", str(tmp_path))
    monkeypatch.setenv("APEX_QDRANT_EMBEDDING_DIM", "1536")
    monkeypatch.setenv("APEX_QDRANT_COLLECTION", "freight")
    monkeypatch.setenv("APEX_QDRANT_DISTANCE", "Dot")
    monkeypatch.setenv("APEX_QDRANT_API_KEY", "s3cret")
    settings = QdrantSink().settings
    assert (settings.path, settings.embedding_dim, settings.collection, settings.distance) == (
        tmp_path,
        1536,
        "freight",
        "Dot",
    )
    assert settings.api_key is not None
    assert "s3cret" not in repr(settings)
    monkeypatch.setenv("APEX_QDRANT_DISTANCE", "Manhattan-ish")
    with pytest.raises(SettingsError, match="APEX_QDRANT_DISTANCE"):
        load(QdrantSinkSettings)


# -- the collection ---------------------------------------------------------------------


async def test_open_is_idempotent_and_data_survives_a_reopen(
    make_settings: SettingsFactory, record: RecordFactory
) -> None:
    sink = QdrantSink(make_settings())
    await sink.open()
    await sink.open()
    await sink.health()
    await sink.write([record("a", 1, embedding=(0.0, 0.0, 0.0, 1.0))])
    await sink.close()
    await sink.close()
    async with QdrantSink(make_settings()) as again:
        assert await again.read([RecordKey("turvo", "a")]) == {
            RecordKey("turvo", "a"): record("a", 1, embedding=(0.0, 0.0, 0.0, 1.0))
        }


async def test_embedding_dim_mismatch_is_a_settings_error_and_releases_the_folder(
    make_settings: SettingsFactory,
) -> None:
    async with QdrantSink(make_settings()):
        pass
    with pytest.raises(SettingsError) as info:
        await QdrantSink(make_settings(embedding_dim=8)).open()
    message = str(info.value)
    assert "holds 4-dimensional" in message
    assert "APEX_QDRANT_EMBEDDING_DIM is 8" in message
    assert "APEX_QDRANT_COLLECTION" in message
    with pytest.raises(SettingsError, match="APEX_QDRANT_DISTANCE is Dot"):
        await QdrantSink(make_settings(distance="Dot")).open()
    async with QdrantSink(make_settings()) as sink:  # the failed opens left no lock behind
        await sink.health()
    async with QdrantSink(make_settings(embedding_dim=8, collection="wide")) as sink:
        await sink.health()


async def test_collection_not_made_by_this_sink_is_refused(make_settings: SettingsFactory, tmp_path: Path) -> None:
    from qdrant_client import AsyncQdrantClient, models

    client = AsyncQdrantClient(path=str(tmp_path / "qdrant"))
    await client.create_collection("apex_records", vectors_config=models.VectorParams(size=4, distance="Cosine"))
    await client.close()
    with pytest.raises(SettingsError, match="without a named vector `text`"):
        await QdrantSink(make_settings()).open()


async def test_health(make_settings: SettingsFactory) -> None:
    sink = QdrantSink(make_settings())
    with pytest.raises(SinkError, match="is not open"):
        await sink.health()
    async with sink:
        await sink.health()
        await sink.client.delete_collection(sink.collection)
        with pytest.raises(SinkError, match="collection is gone"):
            await sink.health()


# -- local mode admits one process per folder -------------------------------------------

_CHILD = """
import asyncio, sys
from pathlib import Path
from apex_platform.errors import SinkError
from apex_sink_qdrant import QdrantSink, QdrantSinkSettings

async def main(path, mode):
    sink = QdrantSink(QdrantSinkSettings(path=Path(path), embedding_dim=4))
    try:
        await sink.open()
    except SinkError as exc:
        print("ERROR", exc, flush=True)
        return
    print("READY", flush=True)
    if mode == "hold":
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    await sink.close()

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def _child_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("APEX_QDRANT_")}


@pytest.fixture
async def holder(tmp_path: Path) -> AsyncIterator[Path]:
    """Another process holding `tmp_path/qdrant` open in local mode."""
    folder = tmp_path / "qdrant"
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _CHILD, str(folder), "hold",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=_child_env(),
    )  # fmt: skip
    assert child.stdout is not None
    assert child.stdin is not None
    line = await asyncio.wait_for(child.stdout.readline(), 60)
    assert line.decode().startswith("READY"), line
    try:
        yield folder
    finally:
        child.stdin.write(b"\n")
        await child.stdin.drain()
        await asyncio.wait_for(child.wait(), 60)


async def test_open_while_another_process_holds_the_folder(holder: Path, make_settings: SettingsFactory) -> None:
    sink = QdrantSink(make_settings(path=holder))
    with pytest.raises(SinkError) as info:
        await sink.open()
    message = str(info.value)
    assert f"{holder} is open in another process (apex-platform dev?)" in message
    assert "route reads through the running stack" in message.lower()
    assert "APEX_QDRANT_URL" in message
    assert not sink.is_open


async def test_a_second_client_in_the_same_process_is_refused_too(
    sink: QdrantSink, settings: QdrantSinkSettings
) -> None:
    with pytest.raises(SinkError, match="or by another client in this one"):
        await QdrantSink(settings).open()
    await sink.health()


async def test_second_process_gets_the_clear_error(sink: QdrantSink, settings: QdrantSinkSettings) -> None:
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _CHILD, str(settings.path), "try", stdout=asyncio.subprocess.PIPE, env=_child_env()
    )
    out, _ = await asyncio.wait_for(child.communicate(), 60)
    assert child.returncode == 0
    assert out.decode().startswith("ERROR qdrant sink:")
    assert "is open in another process (apex-platform dev?)" in out.decode()
    await sink.health()  # the holder is unaffected


# -- server URL: what can be checked without a Qdrant server ---------------------------


async def test_url_that_does_not_answer(make_settings: SettingsFactory) -> None:
    url = f"https://127.0.0.1:{free_port()}"
    sink = QdrantSink(QdrantSinkSettings(url=url, api_key=SecretStr("s3cret-key"), embedding_dim=4))
    with pytest.raises(SinkError) as info:
        await sink.health()
    assert f"Qdrant server {url}, collection apex_records is unhealthy (ConnectError" in str(info.value)
    with pytest.raises(SinkError) as opened:
        await sink.open()
    assert f"cannot open Qdrant server {url}" in str(opened.value)
    assert "s3cret-key" not in str(info.value) + str(opened.value)
    assert not sink.is_open


@pytest.mark.parametrize("url", ["not a url", "ftp://qdrant", "http://qdrant:99999"])
async def test_unusable_url_is_a_settings_error(url: str) -> None:
    sink = QdrantSink(QdrantSinkSettings(url=url))
    with pytest.raises(SettingsError, match="is not a usable Qdrant URL"):
        await sink.open()
    with pytest.raises(SinkError, match="not configured: APEX_QDRANT_URL="):
        await sink.health()


@pytest.fixture
async def not_qdrant() -> AsyncIterator[str]:
    """An HTTP server that answers 404 to everything: something else on Qdrant's port."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


async def test_url_that_is_not_qdrant(not_qdrant: str) -> None:
    sink = QdrantSink(QdrantSinkSettings(url=not_qdrant, embedding_dim=4, health_timeout=5))
    with pytest.raises(SinkError, match=r"is unhealthy \(UnexpectedResponse: Unexpected Response: 404"):
        await sink.health()
    with pytest.raises(SinkError, match="cannot open Qdrant server"):
        await sink.open()


@pytest.mark.parametrize(("mode", "journal"), [("normal", "wal"), ("full", "delete")])
async def test_local_durability_setting_picks_the_sqlite_journal(
    make_settings: Callable[..., QdrantSinkSettings],
    tmp_path: Path,
    record: Callable[..., Record],
    mode: str,
    journal: str,
) -> None:
    """'normal' (the default) switches local mode's SQLite to WAL; what it wrote survives a
    reopen either way."""
    import sqlite3

    folder = tmp_path / f"q-{mode}"
    sink = QdrantSink(make_settings(path=folder, local_synchronous=mode))
    await sink.open()
    await sink.write([record("a", 1)])
    await sink.close()
    (db,) = list(folder.rglob("storage.sqlite"))
    assert sqlite3.connect(db).execute("PRAGMA journal_mode").fetchone()[0] == journal
    again = QdrantSink(make_settings(path=folder, local_synchronous=mode))
    await again.open()
    assert RecordKey(record("a", 1).source, "a") in await again.read([record("a", 1).key])
    await again.close()
