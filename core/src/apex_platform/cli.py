"""The `apex-platform` command line."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from apex_platform import __version__
from apex_platform.errors import ApexError

app = typer.Typer(
    name="apex-platform",
    help="Apex: durable ingestion of logistics events into graph, PostgreSQL, Qdrant and Redis.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
plugins_app = typer.Typer(help="Inspect installed plugins.", no_args_is_help=True)
app.add_typer(plugins_app, name="plugins")

console = Console()
err = Console(stderr=True)

PluginsOpt = Annotated[
    str | None,
    typer.Option("--plugins", help="'all' or a comma-separated list of plugin names (default: APEX_PLUGINS or all)"),
]


def _logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _runtime(plugins: str | None) -> Any:
    from apex_platform.runtime import Runtime

    return Runtime.build(plugins)


@app.command()
def version() -> None:
    """Print the version of apex-platform."""
    console.print(f"apex-platform {__version__}")


@plugins_app.command("list")
def plugins_list(
    plugins: PluginsOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """List installed plugins, the sources, enrichers and sinks they register, and problems."""
    from apex_platform.api.controllers import plugins_document

    doc = plugins_document(_runtime(plugins))
    if as_json:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    table = Table(title="Apex plugins")
    for col in ("kind", "name", "mode", "priority", "distribution", "version"):
        table.add_column(col)
    for s in doc["sources"]:
        table.add_row("source", s["name"], s["mode"], s["priority"], s["distribution"] or "-", s["version"] or "-")
    for kind in ("enrichers", "sinks"):
        for e in doc[kind]:
            table.add_row(kind[:-1], e["name"], "", "", e["distribution"] or "-", e["version"] or "-")
    console.print(table)
    for problem in doc["problems"]:
        err.print(f"[yellow]problem:[/] {problem}")


@app.command()
def worker(
    plugins: PluginsOpt = None,
    queues: Annotated[str, typer.Option("--queues", help="Task queues to poll: p0,p1,p2")] = "p0,p1,p2",
) -> None:
    """Run a Temporal worker assembled from the installed plugins (SIGINT/SIGTERM drain and exit 0)."""
    from apex_platform.serve import serve
    from apex_platform.temporal.worker import parse_queues

    try:
        priorities = parse_queues(queues)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--queues") from None
    runtime = _runtime(plugins)
    _logging(runtime.core.log_level)
    asyncio.run(serve(runtime, api=False, worker=True, priorities=priorities))


@app.command()
def api(
    plugins: PluginsOpt = None,
    host: Annotated[str | None, typer.Option(help="Bind address (default APEX_API_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default APEX_API_PORT)")] = None,
) -> None:
    """Serve the HTTP API (webhooks, push API, health, metrics, OpenAPI at /schema)."""
    from apex_platform.serve import serve
    from apex_platform.settings import ApiSettings, load

    settings = load(ApiSettings)
    runtime = _runtime(plugins)
    _logging(runtime.core.log_level)
    asyncio.run(serve(runtime, api=True, worker=False, host=host or settings.host, port=port or settings.port))


HomeOpt = Annotated[Path | None, typer.Option("--home", help="State folder (default APEX_HOME or ./.apex)")]


def _home(home: Path | None) -> Path:
    from apex_platform.settings import CoreSettings, load

    return home or load(CoreSettings).home


@app.command()
def dev(plugins: PluginsOpt = None, home: HomeOpt = None) -> None:
    """Start the embedded stack (Temporal, PostgreSQL+pgvector, Redis+FalkorDB, Qdrant local)
    under APEX_HOME, then the worker and the API in the foreground. Ctrl-C stops it all."""
    from apex_platform.devstack import run_dev

    _logging(os.environ.get("APEX_LOG_LEVEL", "WARNING"))
    run_dev(_home(home), plugins)


@app.command()
def demo(
    plugins: PluginsOpt = None,
    home: HomeOpt = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for every workflow")] = 180.0,
) -> None:
    """Start the stack, send every installed source's sample traffic over HTTP, wait for
    the workflows, print what landed where, stop. Exits non-zero if anything did not land."""
    from apex_platform.devstack import run_demo

    _logging(os.environ.get("APEX_LOG_LEVEL", "WARNING"))
    code = run_demo(_home(home), plugins, timeout)
    if code:
        raise typer.Exit(code)


def main() -> None:
    """Entry point: one clear line on errors, and a hard exit that sidesteps the Temporal
    SDK's occasional abort during interpreter teardown (sdk-python issue 300)."""
    code = 0
    try:
        app(standalone_mode=False)
    except typer.Exit as exc:
        code = exc.exit_code
    except typer.Abort:
        err.print("aborted")
        code = 130
    except KeyboardInterrupt:
        code = 130
    except ApexError as exc:
        err.print(f"[red]error:[/] {exc}")
        code = 1
    except Exception as exc:  # noqa: BLE001 - usage errors land here too; all end as one line
        show = getattr(exc, "show", None)
        if callable(show) and hasattr(exc, "exit_code"):
            show()
            code = int(exc.exit_code)
        else:
            err.print(f"[red]error:[/] {type(exc).__name__}: {exc}")
            code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
