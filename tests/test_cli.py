"""The `apex-platform` command line, run as a user runs it: a real child process."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import typer.core
from support.procs import CLI
from typer.testing import CliRunner

from apex_platform.cli import app
from apex_platform.cli_docs import walk
from apex_platform.stack.ports import free_port

pytestmark = pytest.mark.timeout(300)


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, *args], env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout
    )


def test_version() -> None:
    out = run("version")
    assert out.returncode == 0
    assert out.stdout.startswith("apex-platform 0.")


#: every command and group of the Typer app, found by walking its command tree
COMMANDS = {" ".join(path): cmd for path, cmd, _ctx in walk(app)}
LEAVES = sorted(name for name, cmd in COMMANDS.items() if name and not isinstance(cmd, typer.core.TyperGroup))
#: leaf commands without --plugins, and why: they load no plugin
NO_PLUGINS = {
    "version": "prints the version only",
    "inbox status": "the inbox database alone",
    "inbox list": "the inbox database alone",
    "inbox replay": "the inbox database alone",
    "inbox gc": "the inbox database and the blob store alone",
    "new connector": "writes a new distribution's files from templates/",
    "new sink": "writes a new distribution's files from templates/",
    "new enricher": "writes a new distribution's files from templates/",
}
#: leaf commands without --json, and why: they print no data
NO_JSON = {
    "worker": "a server: logs only",
    "api": "a server: logs only",
    "dev": "a server: the stack's addresses, then logs",
    "demo": "a run of the whole stack for people; its verdict is the exit code",
    "new connector": "writes files, prints where",
    "new sink": "writes files, prints where",
    "new enricher": "writes files, prints where",
}


def test_the_walk_finds_every_command() -> None:
    assert {"", "version", "plugins", "plugins list", "sources sync", "dlq replay", "inbox gc"} <= set(COMMANDS)
    assert len(LEAVES) >= 22


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_and_option_has_help(name: str) -> None:
    cmd = COMMANDS[name]
    assert (cmd.help or "").strip(), f"`apex-platform {name}` has no help text (its docstring)"
    missing = [param.name for param in cmd.params if not (getattr(param, "help", None) or "").strip()]
    assert not missing, f"`apex-platform {name}`: no help for {missing}"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_runs_help(name: str) -> None:
    out = CliRunner().invoke(app, [*name.split(), "--help"])
    assert out.exit_code == 0, out.output
    assert "Usage" in out.output
    assert f"apex-platform {name}".strip() in out.output


@pytest.mark.parametrize("name", LEAVES)
def test_one_grammar_plugins_and_json(name: str) -> None:
    options = {opt for param in COMMANDS[name].params for opt in getattr(param, "opts", [])}
    if name not in NO_PLUGINS:
        assert "--plugins" in options, f"`apex-platform {name}` loads plugins: give it --plugins (PluginsOpt)"
    if name not in NO_JSON:
        assert "--json" in options, f"`apex-platform {name}` prints data: give it --json (JsonOpt)"


def test_help_as_a_user_runs_it() -> None:
    out = run("--help")
    assert out.returncode == 0, out.stderr
    assert "Usage" in out.stdout


def test_version_json() -> None:
    out = run("version", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["version"].startswith("0.")


def test_plugins_list_shows_installed_distributions_with_versions() -> None:
    out = run("plugins", "list", "--json", env={"APEX_PLUGINS": "all"})
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    sources = {s["name"]: s for s in doc["sources"]}
    sinks = {s["name"]: s for s in doc["sinks"]}
    assert sources["frontapp"]["distribution"] == "apex-connector-frontapp"
    assert (sources["frontapp"]["mode"], sources["frontapp"]["priority"]) == ("webhook", "P0")
    assert sinks["postgres"]["distribution"] == "apex-sink-postgres"
    assert sources["frontapp"]["version"]
    assert sinks["postgres"]["version"]
    table = run("plugins", "list", env={"APEX_PLUGINS": "frontapp,postgres"})
    assert "apex-connector-frontapp" in table.stdout
    assert "apex-sink-postgres" in table.stdout


def test_unknown_plugin_is_reported_not_fatal_and_exits_1() -> None:
    """The list is complete (frontapp is in it) and the problem named; the exit code says so."""
    out = run("plugins", "list", "--json", "--plugins", "frontapp,nosuch")
    assert out.returncode == 1, out.stderr
    doc = json.loads(out.stdout)
    assert any("nosuch" in p for p in doc["problems"])
    assert [s["name"] for s in doc["sources"]] == ["frontapp"]
    text = run("plugins", "list", "--plugins", "frontapp,nosuch")
    assert text.returncode == 1
    assert "apex-connector-frontapp" in text.stdout
    assert "nosuch" in text.stderr


def test_errors_with_json_are_one_json_object_on_stderr() -> None:
    out = run("sources", "start", "frontapp", "--plugins", "frontapp", "--json")
    assert out.returncode == 1
    assert out.stdout == ""
    assert json.loads(out.stderr.strip().splitlines()[-1]) == {
        "error": "source 'frontapp' (webhook) has no poller or stream to run"
    }
    usage = run("dlq", "replay", "--json")  # neither an id nor --all: a usage error
    assert usage.returncode == 2
    assert usage.stdout == ""
    assert "--all" in json.loads(usage.stderr)["error"]


def test_bad_queue_is_a_clear_usage_error() -> None:
    out = run("worker", "--queues", "p9")
    assert out.returncode == 2
    assert "--queues" in out.stderr
    assert "p9" in out.stderr
    assert "Traceback" not in out.stderr


def test_invalid_setting_is_one_line() -> None:
    out = run("api", env={"APEX_MAX_BODY_BYTES": "lots"})
    assert out.returncode == 1
    assert "APEX_MAX_BODY_BYTES" in out.stderr
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) <= 2


def test_dev_with_a_busy_port_names_the_setting(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = run(
            "dev",
            "--home",
            str(tmp_path / "home"),
            env={
                "APEX_TEMPORAL_PORT": str(port),
                "APEX_TEMPORAL_UI_PORT": str(free_port()),
                "APEX_POSTGRES_PORT": str(free_port()),
                "APEX_REDIS_PORT": str(free_port()),
                "APEX_API_PORT": str(free_port()),
            },
        )
    assert out.returncode == 1
    assert "APEX_TEMPORAL_PORT" in out.stderr
    assert str(port) in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "home" / "stack.json").exists()


@pytest.mark.e2e
def test_demo_lands_everything_and_exits_zero(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {
        "APEX_TEMPORAL_PORT": str(free_port()),
        "APEX_TEMPORAL_UI_PORT": str(free_port()),
        "APEX_POSTGRES_PORT": str(free_port()),
        "APEX_REDIS_PORT": str(free_port()),
        "APEX_API_PORT": str(free_port()),
        "APEX_PLUGINS": "all",
    }
    out = run("demo", "--home", str(home), env=env, timeout=280)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    assert "every record landed in every store" in out.stdout
    assert "What landed where" in out.stdout
    assert not (home / "stack.json").exists()  # the stack stopped


@pytest.mark.e2e
def test_demo_exits_non_zero_when_something_does_not_land(tmp_path: Path) -> None:
    """Front's events with no store installed: nothing can land, the demo says so and fails."""
    env = {
        "APEX_TEMPORAL_PORT": str(free_port()),
        "APEX_TEMPORAL_UI_PORT": str(free_port()),
        "APEX_POSTGRES_PORT": str(free_port()),
        "APEX_REDIS_PORT": str(free_port()),
        "APEX_API_PORT": str(free_port()),
    }
    out = run("demo", "--home", str(tmp_path / "home"), "--plugins", "frontapp", "--timeout", "8", env=env, timeout=200)
    assert out.returncode == 1, out.stdout[-3000:]
    assert "some records did not land" in out.stdout


def test_sources_list_names_every_installed_source_with_mode_and_priority() -> None:
    out = run(
        "sources", "list", "--json", env={"APEX_PLUGINS": "all", "APEX_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}"}
    )
    assert out.returncode == 0, out.stderr
    items = {i["name"]: i for i in json.loads(out.stdout)}
    assert {"frontapp", "turvo", "llm", "samsara", "plaid", "sonar", "crm", "financial", "edi"} <= set(items)
    assert (items["plaid"]["mode"], items["plaid"]["priority"]) == ("poll", "P1")
    assert (items["samsara"]["mode"], items["llm"]["mode"], items["edi"]["mode"]) == ("stream", "push", "batch")
    assert "not reachable" in out.stderr  # Temporal down: installed sources only, said so


def test_sources_start_on_a_webhook_source_is_a_clear_error() -> None:
    out = run("sources", "start", "frontapp", env={"APEX_PLUGINS": "frontapp"})
    assert out.returncode == 1
    assert "frontapp" in out.stderr
    assert "no poller or stream" in out.stderr
    assert "Traceback" not in out.stderr


def _letter(batch_id: str, record_id: str) -> Any:
    from apex_platform.contracts import DeadLetter
    from apex_platform.models import Record

    record = Record(
        source="trk",
        kind="trk.shipment",
        id=record_id,
        version=1,
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
        title=f"Shipment {record_id}",
    )
    return DeadLetter(id=None, batch_id=batch_id, records=[record], succeeded=[], failed=["postgres"], error="down")


def test_dlq_commands_print_one_json_document(tmp_path: Path, apex_postgres_server: Any) -> None:
    """Against a real PostgreSQL dead-letter table, in this process (no stack running):
    `--plugins postgres` picks the sink, `--json` gives one document, errors one JSON object."""
    from apex_sink_postgres import PostgresSink
    from apex_sink_postgres.settings import PostgresSinkSettings

    schema = f"cli{uuid.uuid4().hex[:10]}"
    env = {
        "APEX_HOME": str(tmp_path / "home"),  # no stack here: the commands run in-process
        "APEX_POSTGRES_DSN": apex_postgres_server.dsn,
        "APEX_POSTGRES_SCHEMA": schema,
        "APEX_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
        "APEX_PLUGINS": "nothing-by-default",  # --plugins must be what selects the sink
    }

    async def add() -> list[int]:
        sink = PostgresSink(PostgresSinkSettings(dsn=apex_postgres_server.dsn, schema=schema))
        await sink.open()
        try:
            return [await sink.add_dead_letter(_letter(f"b{i}", f"r{i}")) for i in (1, 2)]
        finally:
            await sink.close()

    first, second = asyncio.run(add())
    listed = run("dlq", "list", "--plugins", "postgres", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert [d["id"] for d in json.loads(listed.stdout)] == [first, second]

    shown = run("dlq", "show", str(first), "--plugins", "postgres", "--json", env=env)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["id"] == first

    discarded = run("dlq", "discard", str(second), "--plugins", "postgres", "--json", env=env)
    assert discarded.returncode == 0, discarded.stderr
    assert json.loads(discarded.stdout) == {"id": second, "status": "discarded"}

    replayed = run("dlq", "replay", "--all", "--plugins", "postgres", "--json", env=env)
    assert replayed.returncode == 0, replayed.stderr
    doc = json.loads(replayed.stdout)
    assert doc["failed"] == []
    assert [(r["id"], r["status"], r["written"]) for r in doc["replayed"]] == [(first, "replayed", 1)]

    again = run("dlq", "replay", str(second), "--plugins", "postgres", "--json", env=env)
    assert again.returncode == 1  # discarded, not open: the document says so, and the exit code
    assert json.loads(again.stdout)["failed"] == [
        {"id": second, "error": f"dead letter {second} is discarded, not open"}
    ]

    missing = run("dlq", "discard", "999999", "--plugins", "postgres", "--json", env=env)
    assert missing.returncode == 1
    assert missing.stdout == ""
    assert json.loads(missing.stderr.strip().splitlines()[-1]) == {"error": "no dead letter 999999"}


def test_sources_start_and_stop_print_one_json_document(apex_temporal_server: Any) -> None:
    """A poller started and stopped on the real Temporal dev server (no worker needed to
    start a workflow or signal it): each prints a list with the workflow id."""
    prefix = f"cli{uuid.uuid4().hex[:8]}"
    env = {
        "APEX_HOME": "/nonexistent-apex-home",
        "APEX_TEMPORAL_ADDRESS": apex_temporal_server.address,
        "APEX_TEMPORAL_TASK_QUEUE_PREFIX": prefix,
        "APEX_PAYLOAD_ENCRYPTION": "off",
    }
    started = run("sources", "start", "sonar", "--account", "VCRPM.USA", "--plugins", "sonar", "--json", env=env)
    assert started.returncode == 0, started.stderr
    (one,) = json.loads(started.stdout)
    assert one == {
        "source": "sonar",
        "account": "VCRPM.USA",
        "action": "start",
        "workflow_id": f"{prefix}:poll:sonar:VCRPM.USA",
    }
    stopped = run("sources", "stop", "sonar", "--account", "VCRPM.USA", "--plugins", "sonar", "--json", env=env)
    assert stopped.returncode == 0, stopped.stderr
    assert json.loads(stopped.stdout) == [{**one, "action": "stop"}]
    text = run("sources", "stop", "sonar", "--account", "VCRPM.USA", "--plugins", "sonar", env=env)
    assert text.stdout.strip() == f"sonar/VCRPM.USA: stop requested ({one['workflow_id']})"

    async def terminate() -> None:
        from temporalio.client import Client

        client = await Client.connect(apex_temporal_server.address)
        await client.get_workflow_handle(one["workflow_id"]).terminate("test over")

    asyncio.run(terminate())
