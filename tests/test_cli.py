"""The `apex-platform` command line, run as a user runs it: a real child process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest
from support.procs import CLI

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


@pytest.mark.parametrize("command", [[], ["plugins"], ["plugins", "list"], ["worker"], ["api"], ["dev"], ["demo"]])
def test_help_everywhere(command: list[str]) -> None:
    out = run(*command, "--help")
    assert out.returncode == 0, out.stderr
    assert "Usage" in out.stdout


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


def test_unknown_plugin_is_reported_not_fatal() -> None:
    out = run("plugins", "list", "--json", "--plugins", "frontapp,nosuch")
    assert out.returncode == 0
    assert any("nosuch" in p for p in json.loads(out.stdout)["problems"])


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
