"""The `apex-platform` command line.

One grammar for every command (README, "Command line"):

- `--plugins all|a,b` on every command that loads plugins (default: `APEX_PLUGINS`, else all);
- `--json` on every command that prints data: one JSON document on stdout (`ingest --json`
  alone streams JSON Lines, one object per record, since `--watch` never ends); warnings and
  progress go to stderr;
- a failure is one line on stderr, `error: …`, or with `--json` one JSON object
  `{"error": "…"}` on stderr, and a non-zero exit code: 1 when the command failed or reported
  a problem (`plugins list`: a plugin that did not load), 2 for a usage error or when
  `status` finds something unhealthy.

The README's command table is generated from this app: `python -m apex_platform.cli_docs`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from apex_platform import __version__
from apex_platform.errors import ApexError
from apex_platform.scaffold import new_app

app = typer.Typer(
    name="apex-platform",
    help="Apex: durable ingestion of logistics events into graph, PostgreSQL, Qdrant and Redis.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
plugins_app = typer.Typer(help="Inspect installed plugins.", no_args_is_help=True)
app.add_typer(plugins_app, name="plugins")
app.add_typer(new_app, name="new")

console = Console()
err = Console(stderr=True)

PluginsOpt = Annotated[
    str | None,
    typer.Option(
        "--plugins",
        metavar="all|a,b",
        help="'all' or a comma-separated list of plugin names (default: APEX_PLUGINS or all)",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output: one JSON document on stdout")]

#: the command failed, or reported a problem (usage errors exit 2, as Typer makes them)
EXIT_FAILED = 1


def _logging(level: str = "INFO") -> None:
    """The platform's logging setup (API, worker, dev, demo): every record is redacted
    (query values, URL passwords, secret parameters) before any handler sees it."""
    from apex_platform.vendor_http import install_log_redaction

    install_log_redaction()
    root = logging.getLogger()
    before = list(root.handlers)
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from apex_platform import logs

    # APEX_LOG_FORMAT=json, and source/record/delivery/workflow ids on every record — on the
    # handler this setup made; handlers someone else installed (a test's, an embedding
    # application's) keep their own format
    for handler in [h for h in root.handlers if h not in before]:
        logs.install(handler)


def _runtime(plugins: str | None) -> Any:
    from apex_platform.runtime import Runtime

    return Runtime.build(plugins)


@app.command()
def version(as_json: JsonOpt = False) -> None:
    """Print the version of apex-platform."""
    _emit(
        {"name": "apex-platform", "version": __version__},
        as_json,
        lambda d: console.print(f"{d['name']} {d['version']}"),
    )


@plugins_app.command("list")
def plugins_list(plugins: PluginsOpt = None, as_json: JsonOpt = False) -> None:
    """List installed plugins, the sources, enrichers and sinks they register, and problems.

    Exit code 1 when a problem is reported (a plugin that did not load or register)."""
    from apex_platform.api.controllers import plugins_document

    doc = plugins_document(_runtime(plugins))
    if as_json:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        if doc["problems"]:
            raise typer.Exit(EXIT_FAILED)
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
    if doc["problems"]:
        raise typer.Exit(EXIT_FAILED)


@plugins_app.command("settings")
def plugins_settings(
    name: Annotated[
        str | None,
        typer.Argument(help="A plugin (entry-point name) or a source, enricher or sink name; every one when omitted"),
    ] = None,
    markdown: Annotated[bool, typer.Option("--markdown", help="A Markdown table, as the READMEs hold it")] = False,
    write: Annotated[
        Path | None,
        typer.Option(
            "--write",
            metavar="FILE",
            help="Rewrite the table between <!-- apex-settings:start/end --> in FILE (a README)",
        ),
    ] = None,
    plugins: PluginsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Every plugin's settings, from its settings_model: variable, type, default, secret, description.

    A secret's default is never shown. Exit code 1 for an unknown NAME or a plugin problem."""
    from apex_platform import plugin_settings
    from apex_platform.errors import PluginError

    registry = _runtime(plugins).registry
    rows = plugin_settings.settings_rows(registry, name)
    if name is not None and not rows:
        owners = {info.name for info in registry.plugins}
        names = {*registry.sources, *registry.enrichers, *registry.sinks, *owners}
        if name not in names:
            raise PluginError(f"no plugin named {name!r} (installed: {', '.join(sorted(names)) or 'none'})")
    table = plugin_settings.render_markdown(rows)
    if write is not None:
        before = write.read_text(encoding="utf-8")
        after = plugin_settings.replace_table(before, table, where=str(write))
        if after != before:
            write.write_text(after, encoding="utf-8")
        err.print(f"{write}: {'updated' if after != before else 'up to date'}")
    if as_json:
        _emit({"settings": rows, "problems": registry.problems}, True, None)
    elif markdown:
        sys.stdout.write(table)
    elif write is None:
        out = Table(title="Apex plugin settings")
        for col in ("plugin", "variable", "type", "default", "secret", "description"):
            out.add_column(col, overflow="fold")
        for row in rows:
            out.add_row(
                *(escape(str(row[k])) for k in ("plugin", "variable", "type", "default")),
                "yes" if row["secret"] else "",
                escape(row["description"]),
            )
        console.print(out)
    for problem in registry.problems:
        err.print(f"[yellow]problem:[/] {escape(problem)}")
    if registry.problems:
        raise typer.Exit(EXIT_FAILED)


@app.command()
def worker(
    plugins: PluginsOpt = None,
    queues: Annotated[
        str, typer.Option("--queues", metavar="p0,p1,p2", help="Task queues to poll: p0,p1,p2")
    ] = "p0,p1,p2",
) -> None:
    """Run a Temporal worker assembled from the installed plugins.

    A worker started before Temporal can be reached waits for it (retrying, each failure
    logged) rather than exit. SIGINT/SIGTERM drain every queue at once within APEX_TEMPORAL_GRACEFUL_SHUTDOWN_SECONDS
    and exit 0 (75 if in-flight work ignores its cancellation 10 s past that: Temporal
    retries it elsewhere)."""
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
    from apex_platform.api.server import api_event_loop
    from apex_platform.serve import serve
    from apex_platform.settings import ApiSettings, load

    settings = load(ApiSettings)
    runtime = _runtime(plugins)
    _logging(runtime.core.log_level)
    with asyncio.Runner(loop_factory=api_event_loop()) as runner:  # uvloop where installed
        runner.run(serve(runtime, api=True, worker=False, host=host or settings.host, port=port or settings.port))


sources_app = typer.Typer(help="Operate sources: pollers and streams.", no_args_is_help=True)
app.add_typer(sources_app, name="sources")
AccountOpt = Annotated[
    str | None, typer.Option("--account", metavar="ID", help="One account (default: every configured one)")
]
SourceArg = Annotated[str, typer.Argument(help="The source's name (`apex-platform sources list`)")]


def _stack_aware_env() -> None:
    """From a second terminal, find the running `apex-platform dev` through APEX_HOME."""
    from apex_platform.devstack import stack_environment
    from apex_platform.settings import CoreSettings, load
    from apex_platform.stack import read_stack

    info = read_stack(load(CoreSettings).home)
    if info is not None:
        for key, value in stack_environment(info).items():
            os.environ.setdefault(key, value)


async def _client(runtime: Any) -> Any:
    return await runtime.connect()


@sources_app.command("list")
def sources_list(plugins: PluginsOpt = None, as_json: JsonOpt = False) -> None:
    """Installed sources with their mode and priority, and their pollers and streams.

    The pollers' and streams' state (running, cursor, last success) when Temporal answers."""
    from apex_platform.capabilities import DeliverySource
    from apex_platform.contracts import PollSource
    from apex_platform.pollers import poller_state
    from apex_platform.reconcile import ReconcileSource, reconciler_state
    from apex_platform.temporal.worker import drain_states

    _stack_aware_env()
    runtime = _runtime(plugins)

    async def collect() -> list[dict[str, Any]]:
        client = None
        try:
            client = await asyncio.wait_for(runtime.connect(), timeout=5)
        except Exception as exc:  # noqa: BLE001 - listing works without Temporal
            err.print(f"[yellow]Temporal not reachable ({exc}); showing installed sources only[/]")
        out = []
        for name, src in sorted(runtime.registry.sources.items()):
            item: dict[str, Any] = {"name": name, "mode": src.mode, "priority": src.priority}
            if isinstance(src, DeliverySource) and client:
                # the drain loop(s) over the inbox: one, or one per partition (APEX_TEMPORAL_DRAIN_PARTITIONS)
                item["drains"] = await drain_states(client, name, runtime.temporal)
            if isinstance(src, PollSource):
                item["accounts"] = [
                    await poller_state(client, src, acct, runtime.temporal.task_queue_prefix)
                    if client
                    else {"account": acct}
                    for acct in src.accounts()
                ]
            if isinstance(src, ReconcileSource):
                # the reconciliation poller of each enabled account (off by default)
                item["reconcile"] = [
                    await reconciler_state(client, name, acct, runtime.temporal.task_queue_prefix)
                    if client
                    else {"account": acct}
                    for acct in src.reconcile_accounts()
                ]
            out.append(item)
        return out

    items = asyncio.run(collect())
    if as_json:
        _emit(items, as_json, None)
        return
    table = Table(title="Apex sources")
    for col in ("name", "mode", "priority", "account", "running", "cursor", "last success"):
        table.add_column(col)
    for item in items:
        accounts = item.get("accounts") or [{}]
        for acct in accounts:
            table.add_row(
                item["name"],
                item["mode"],
                item["priority"],
                acct.get("account", "-"),
                "yes" if acct.get("running") else ("no" if "running" in acct else "-"),
                str(acct.get("cursor") or "-")[:40],
                str(acct.get("last_success") or "-"),
            )
        for acct in item.get("reconcile") or []:
            table.add_row(
                item["name"],
                "reconcile",
                item["priority"],
                acct.get("account", "-"),
                "yes" if acct.get("running") else ("no" if "running" in acct else "-"),
                str(acct.get("cursor") or "-")[:40],
                str(acct.get("last_success") or "-"),
            )
    console.print(table)


def _poll_command(name: str, account: str | None, plugins: str | None, action: str, as_json: bool) -> None:
    """Start, stop or sync each account's poller; one line per account, or with --json one
    list of `{"source", "account", "action", "workflow_id", …}` objects."""
    from apex_platform.pollers import accounts_of, poller_id, poller_state, start_poller

    _stack_aware_env()
    runtime = _runtime(plugins)
    source = runtime.registry.source(name)
    accounts = accounts_of(source, account)

    prefix = runtime.temporal.task_queue_prefix

    async def go() -> list[dict[str, Any]]:
        client = await runtime.connect()
        done: list[dict[str, Any]] = []

        def said(acct: str, line: str, **fields: Any) -> None:
            done.append({"source": name, "account": acct, "action": action, **fields})
            if not as_json:
                console.print(f"{name}/{acct}: {line}")

        for acct in accounts:
            if action == "start":
                handle = await start_poller(client, source, acct, runtime.temporal)
                said(acct, f"running as {handle.id}", workflow_id=handle.id)
            elif action == "sync":
                running = await poller_state(client, source, acct, runtime.temporal.task_queue_prefix)
                if running.get("running"):  # one reader per cursor: wake the running poller
                    wf_id = poller_id(source, acct, prefix)
                    await client.get_workflow_handle(wf_id).signal("sync_now")
                    said(acct, "sync requested from the running poller", workflow_id=wf_id, requested=True)
                    continue
                handle = await start_poller(client, source, acct, runtime.temporal, once=True)
                state = await handle.result()
                said(
                    acct,
                    f"synced {state.pages} pages, {state.records} records, cursor {state.cursor}",
                    workflow_id=handle.id,
                    requested=False,
                    pages=state.pages,
                    records=state.records,
                    cursor=state.cursor,
                )
            else:
                handle = client.get_workflow_handle(poller_id(source, acct, prefix))
                await handle.signal("stop")
                said(acct, f"stop requested ({handle.id})", workflow_id=handle.id)
        return done

    done = asyncio.run(go())
    if as_json:
        _emit(done, True, None)


@sources_app.command("start")
def sources_start(
    name: SourceArg, account: AccountOpt = None, plugins: PluginsOpt = None, as_json: JsonOpt = False
) -> None:
    """Start the poller / stream of a source (each account).

    Workflow ids are fixed: starting twice is harmless."""
    _poll_command(name, account, plugins, "start", as_json)


@sources_app.command("stop")
def sources_stop(
    name: SourceArg, account: AccountOpt = None, plugins: PluginsOpt = None, as_json: JsonOpt = False
) -> None:
    """Ask the poller / stream to finish its page in hand and stop."""
    _poll_command(name, account, plugins, "stop", as_json)


@sources_app.command("sync")
def sources_sync(
    name: SourceArg, account: AccountOpt = None, plugins: PluginsOpt = None, as_json: JsonOpt = False
) -> None:
    """Run one complete sync now and wait for it (pages until the vendor has no more).

    With the poller running, ask it to sync at once instead."""
    _poll_command(name, account, plugins, "sync", as_json)


dlq_app = typer.Typer(
    help="The dead-letter queue: failed compensations kept to replay (through the running `apex-platform dev` "
    "when there is one).",
    no_args_is_help=True,
)
app.add_typer(dlq_app, name="dlq")


def _remote() -> tuple[str, str] | None:
    """(API url, admin token) of a running `apex-platform dev` on APEX_HOME, if any: the
    stack owns Qdrant's local folder, so store reads must go through it."""
    from apex_platform.devstack import ADMIN_TOKEN_FILE
    from apex_platform.settings import AdminSettings, CoreSettings, load, secret_values
    from apex_platform.stack import read_stack
    from apex_platform.stack.credentials import read_private

    home = load(CoreSettings).home
    info = read_stack(home)  # believed only if ours, running and on this machine (stack.trust)
    if info is None:
        return None
    configured = secret_values(load(AdminSettings).token)
    token = configured[0] if configured else read_private(Path(info["home"]) / ADMIN_TOKEN_FILE)
    if token is None:
        return None
    return info["api"]["url"], token


def _call_remote(remote: tuple[str, str], method: str, path: str, **params: Any) -> Any:
    import httpx

    url, token = remote
    try:
        resp = httpx.request(
            method, url + path, params=params or None, headers={"Authorization": f"Bearer {token}"}, timeout=120
        )
    except httpx.HTTPError as exc:
        raise ApexError(f"the running stack at {url} did not answer: {exc}") from None
    body = resp.json() if resp.headers.get("content-type", "").startswith("application/json") else {}
    if resp.status_code >= 400:
        raise ApexError(body.get("error") or body.get("detail") or f"HTTP {resp.status_code} from {url}{path}")
    return body


def _local(job: Any, plugins: str | None = None) -> Any:
    """Run an operation in this process: open the sinks (and Temporal if it answers)."""
    runtime = _runtime(plugins)

    async def go() -> Any:
        await runtime.open_sinks()
        try:
            client = None
            with contextlib.suppress(Exception):  # trace works from the stores alone
                client = await asyncio.wait_for(runtime.connect(), timeout=5)
            return await job(runtime, client)
        finally:
            await runtime.close_sinks()

    return asyncio.run(go())


def _emit(doc: Any, as_json: bool, render: Any) -> None:
    """The one way a command prints its data: `render(doc)` for people, or with --json the
    document itself, one JSON document on stdout."""
    if as_json:
        sys.stdout.write(json.dumps(doc, indent=2, default=str) + "\n")
    else:
        render(doc)


@app.command()
def trace(
    source: Annotated[str, typer.Argument(help="The record's source")],
    record_id: Annotated[str, typer.Argument(help="The record's id")],
    plugins: PluginsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Where a record is, and which version, in every installed sink, and its lineage.

    The lineage: the delivery, page or file unit and the run that wrote each version. Goes
    through the running `apex-platform dev` when there is one (then its plugins count, not
    --plugins)."""
    from apex_platform import operations

    remote = _remote()
    if remote is not None:
        doc = _call_remote(remote, "GET", "/v1/trace", source=source, id=record_id)
    else:
        doc = _local(lambda rt, client: operations.trace(rt, client, source, record_id), plugins)

    def render(d: dict[str, Any]) -> None:
        table = Table(title=f"{d['source']} / {d['id']}")
        for col in ("store", "present", "version", "note"):
            table.add_column(col)
        for name, st in d["stores"].items():
            note = st.get("error") or ("tombstone" if st.get("deleted") else st.get("kind", ""))
            table.add_row(name, "yes" if st["present"] else "no", str(st.get("version") or "-"), note or "")
        console.print(table)
        console.print("workflows: " + (", ".join(d["workflows"]) or "none found"))

    _emit(doc, as_json, render)


@app.command()
def status(plugins: PluginsOpt = None, as_json: JsonOpt = False) -> None:
    """One screen: stack and store health, sources, inbox backlogs, breakers, dead letters, workers.

    Sources with their last write, pollers' cursor and last success; workers per task
    queue. Exit code 0 when healthy, 2 when something is not (each problem is named). Goes
    through the running
    `apex-platform dev` when there is one; workers elsewhere: APEX_STATUS_METRICS_URLS. The
    --json document is described in docs/operations.md."""
    from apex_platform import status as platform_status

    _stack_aware_env()
    remote = _remote()
    if remote is not None:
        doc = _call_remote(remote, "GET", "/v1/status")
    else:
        doc = asyncio.run(platform_status.collect_local(plugins))
    _emit(doc, as_json, lambda d: platform_status.render(d, console))
    if not doc["healthy"]:
        raise typer.Exit(platform_status.UNHEALTHY_EXIT)


def _dlq(action: str, *args: Any, plugins: str | None = None) -> Any:
    from apex_platform import operations

    remote = _remote()
    if remote is not None:
        if action == "list":
            return _call_remote(remote, "GET", "/v1/dead-letters", status=args[0] or "all", limit=args[1])
        if action == "show":
            return _call_remote(remote, "GET", f"/v1/dead-letters/{args[0]}")
        return _call_remote(remote, "POST", f"/v1/dead-letters/{args[0]}/{action}")
    jobs = {
        "list": lambda rt, _c: operations.dlq_list(rt, args[0], args[1]),
        "show": lambda rt, _c: operations.dlq_show(rt, args[0]),
        "replay": lambda rt, _c: operations.dlq_replay(rt, args[0]),
        "discard": lambda rt, _c: operations.dlq_discard(rt, args[0]),
        "rollback": lambda rt, _c: operations.dlq_rollback(rt, args[0]),
    }
    return _local(jobs[action], plugins)


@dlq_app.command("list")
def dlq_list(
    status: Annotated[
        str | None, typer.Option(help="open, resolved, replayed, rolled_back, discarded, or all")
    ] = "open",
    limit: Annotated[int, typer.Option(min=1, max=1000, help="The most dead letters shown")] = 100,
    plugins: PluginsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Dead letters, oldest first."""
    letters = _dlq("list", None if status == "all" else status, limit, plugins=plugins)

    def render(items: list[dict[str, Any]]) -> None:
        table = Table(title="Dead letters")
        for col in ("id", "status", "created", "records", "failed sinks", "error"):
            table.add_column(col)
        for d in items:
            table.add_row(
                str(d["id"]),
                d["status"],
                str(d["created_at"]),
                str(d["records"]),
                ",".join(d["failed"]),
                d["error"][:80],
            )
        console.print(table)

    _emit(letters, as_json, render)


LetterArg = Annotated[int, typer.Argument(help="The dead letter's id (`apex-platform dlq list`)")]


@dlq_app.command("show")
def dlq_show(letter_id: LetterArg, plugins: PluginsOpt = None, as_json: JsonOpt = False) -> None:
    """One dead letter in full: records, sinks that succeeded and failed, the error.

    Printed as JSON with or without --json."""
    _emit(_dlq("show", letter_id, plugins=plugins), True, None)


@dlq_app.command("replay")
def dlq_replay(
    letter_id: Annotated[int | None, typer.Argument(help="The dead letter to replay")] = None,
    replay_all: Annotated[bool, typer.Option("--all", help="Replay every open dead letter")] = False,
    plugins: PluginsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Write a dead letter's records through the saga again (all stores or none).

    Exit code 1 when one did not replay. --json: `{"replayed": [{"id", "written",
    "skipped", …}], "failed": [{"id", "error"}]}`."""
    if (letter_id is None) == (not replay_all):
        raise typer.BadParameter("give one dead-letter ID or --all")
    ids = [letter_id] if letter_id is not None else [d["id"] for d in _dlq("list", "open", 1000, plugins=plugins)]
    replayed: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    for one in ids:
        try:
            result = _dlq("replay", one, plugins=plugins)
        except ApexError as exc:
            failed.append({"id": one, "error": str(exc)})
            if not as_json:
                err.print(f"[red]dead letter {one}:[/] {exc}")
            continue
        replayed.append(result)
        if not as_json:
            console.print(f"dead letter {one}: replayed ({result['written']} written, {result['skipped']} skipped)")
    if as_json:
        _emit({"replayed": replayed, "failed": failed}, True, None)
    elif not ids:
        console.print("no open dead letters")
    if failed:
        raise typer.Exit(EXIT_FAILED)


@dlq_app.command("rollback")
def dlq_rollback(letter_id: LetterArg, plugins: PluginsOpt = None, as_json: JsonOpt = False) -> None:
    """Undo a dead letter's batch where its compensation failed.

    Puts back the state before the write, only where the stores still hold that attempt's
    change (never a newer version)."""
    result = _dlq("rollback", letter_id, plugins=plugins)

    def render(doc: dict[str, Any]) -> None:
        done = ", ".join(f"{sink}: {n} keys" for sink, n in doc["restored"].items())
        console.print(f"dead letter {letter_id}: rolled back ({done})")

    _emit(result, as_json, render)


@dlq_app.command("discard")
def dlq_discard(letter_id: LetterArg, plugins: PluginsOpt = None, as_json: JsonOpt = False) -> None:
    """Mark a dead letter discarded (kept for the record, never deleted)."""
    result = _dlq("discard", letter_id, plugins=plugins)
    _emit(result, as_json, lambda d: console.print(f"dead letter {d['id']}: discarded"))


@app.command()
def ingest(
    source: Annotated[str, typer.Argument(help="The batch source (e.g. edi)")],
    paths: Annotated[list[Path] | None, typer.Argument(help="Files or folders")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="JSON Lines on stdout: one object per record created")
    ] = False,
    watch: Annotated[
        Path | None, typer.Option("--watch", metavar="DIR", help="Keep ingesting files dropped into this folder")
    ] = None,
    chunk_size: Annotated[int, typer.Option(min=1, max=5000, help="Units (e.g. X12 sets) per batch")] = 500,
    plugins: PluginsOpt = None,
) -> None:
    """Ingest files of a batch source (EDI): one workflow per file, fan-out per unit.

    Or a drop folder with --watch (`done/`, `failed/` + reason). Needs a running worker
    (`apex-platform dev` or `worker`). Warnings go to stderr; the exit code is non-zero only
    when nothing could be read."""
    from rich.markup import escape
    from rich.progress import Progress

    from apex_platform.batches import Dropped, batch_source, expand, ingest_file_outcome, record_refs, watch_inbox
    from apex_platform.safefiles import display_line, display_name

    def shown(path: Path) -> str:  # a user's file name: escaped, and never read as rich markup
        return escape(display_name(path.name))

    _stack_aware_env()
    runtime = _runtime(plugins)
    src = batch_source(runtime, source)
    if watch is None and not paths:
        raise typer.BadParameter("give files or folders, or --watch FOLDER")
    files = expand(list(paths or []))

    async def go() -> int:
        client = await runtime.connect()
        read_any = False
        with Progress(console=err, transient=True, disable=as_json or not files) as progress:
            task = progress.add_task("files", total=len(files))
            for path in files:
                sub = progress.add_task(shown(path), total=None)

                def show(done: int, total: int, sub: Any = sub) -> None:
                    progress.update(sub, completed=done, total=total or None)

                try:
                    outcome = await ingest_file_outcome(
                        runtime, client, src, path, chunk_size=chunk_size, on_progress=show
                    )
                except (ApexError, OSError) as exc:  # the message names the file; the next files go on
                    err.print(f"[red]error:[/] {escape(display_line(str(exc)))}")
                    continue
                finally:
                    progress.remove_task(sub)
                    progress.advance(task)
                result = outcome.result
                for warning in result.warnings:
                    err.print(f"[yellow]warning:[/] {shown(path)}: {escape(display_line(warning))}")
                read_any = read_any or result.failed_count < result.units
                if as_json:
                    for ref in record_refs(runtime, result):
                        sys.stdout.write(json.dumps({"source": source, "id": ref.id, "kind": ref.kind}) + "\n")
                elif outcome.outcome == "duplicate":
                    console.print(
                        f"{shown(path)}: ingested already (same content, {outcome.workflow_id}): "
                        f"{result.record_count} records, nothing written again"
                    )
                else:
                    console.print(
                        f"{shown(path)}: {result.units} units, {result.record_count} records "
                        f"({result.written} written, {result.skipped} already there), "
                        f"{result.failed_count} units failed" + (" (a retry)" if outcome.outcome == "retried" else "")
                    )
        if watch is not None:
            from apex_platform.serve import install_stop_signals

            stop = asyncio.Event()
            install_stop_signals(stop)

            def report(dropped: Dropped) -> None:
                name, where = shown(dropped.path), dropped.moved_to.parent.name
                if dropped.outcome == "failed":
                    err.print(f"[red]{name} → {where}/:[/] {escape(dropped.note or '')}")
                elif dropped.outcome == "duplicate" or dropped.result is None:
                    console.print(f"{name} → {where}/: ingested already (same content), nothing written again")
                else:
                    retried = " (a retry)" if dropped.outcome == "retried" else ""
                    console.print(f"{name} → {where}/: {dropped.result.record_count} records{retried}")

            console.print(f"watching {watch} (Ctrl-C stops)")
            await watch_inbox(runtime, client, src, watch, stop, on_result=report)
            return 0
        return 0 if read_any else 1

    code = asyncio.run(go())
    if code:
        raise typer.Exit(code)


inbox_app = typer.Typer(
    help="The durable inbox: backlog, stuck deliveries, replay (docs/intake.md).", no_args_is_help=True
)
app.add_typer(inbox_app, name="inbox")


def _inbox(job: Any) -> Any:
    """Run `job(runtime)` against the inbox database (found through APEX_HOME while
    `apex-platform dev` runs, else APEX_INBOX_DSN / APEX_POSTGRES_DSN)."""
    from apex_platform.runtime import Runtime

    _stack_aware_env()
    runtime = Runtime.build([], use_entry_points=False)

    async def go() -> Any:
        try:
            return await job(runtime)
        finally:
            await runtime.inbox.close()

    return asyncio.run(go())


@inbox_app.command("status")
def inbox_status(as_json: JsonOpt = False) -> None:
    """Per source: backlog, oldest undelivered age, stuck deliveries, rate; blob store use.

    What they mean, and what to do about a backlog: docs/intake.md."""
    from apex_platform import operations

    doc = _inbox(operations.inbox_status)

    def render(d: dict[str, Any]) -> None:
        table = Table(title="Apex inbox")
        for col in ("source", "backlog", "bytes", "oldest pending", "stuck", "per minute", "delivered"):
            table.add_column(col)
        for row in d["sources"]:
            age = row["oldest_pending_seconds"]
            table.add_row(
                row["source"],
                str(row["backlog"]),
                str(row["backlog_bytes"]),
                "-" if age is None else f"{age:.1f}s",
                str(row["stuck"]),
                str(row["rate_per_minute"]),
                str(row["delivered"]),
            )
        console.print(table)
        console.print(f"blobs: {d['blobs']['blobs']} ({d['blobs']['bytes']} bytes)")

    _emit(doc, as_json, render)


@inbox_app.command("list")
def inbox_list(
    source: Annotated[str | None, typer.Option("--source", help="One source")] = None,
    stuck: Annotated[
        bool, typer.Option("--stuck", help="Only pending deliveries that failed or wait too long")
    ] = False,
    status: Annotated[str | None, typer.Option("--status", help="pending or delivered")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10000, help="The most deliveries shown")] = 100,
    as_json: JsonOpt = False,
) -> None:
    """Deliveries in the inbox, oldest first, with attempts and the last error."""
    if status not in (None, "pending", "delivered"):
        raise typer.BadParameter("pending or delivered", param_hint="--status")
    rows = _inbox(lambda rt: rt.inbox.deliveries(source=source, stuck=stuck, status=status, limit=limit))

    def render(items: list[dict[str, Any]]) -> None:
        table = Table(title="Inbox deliveries" + (" (stuck)" if stuck else ""))
        for col in ("source", "event id", "received", "status", "attempts", "last error"):
            table.add_column(col, overflow="fold")
        for d in items:
            table.add_row(
                d["source"],
                d["event_id"],
                d["received_at"],
                d["status"],
                str(d["attempts"]),
                (d["last_error"] or "")[:100],
            )
        console.print(table)

    _emit(rows, as_json, render)


@inbox_app.command("replay")
def inbox_replay(
    event_ids: Annotated[list[str] | None, typer.Argument(help="Event ids to re-drive (with --source)")] = None,
    source: Annotated[str | None, typer.Option("--source", help="The source of the event ids")] = None,
    stuck: Annotated[bool, typer.Option("--stuck", help="Every stuck delivery (of --source, or of all)")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Re-drive deliveries: stuck ones start afresh, delivered ones go through again.

    Idempotent: stores keep the newest version."""
    if not event_ids and not stuck:
        raise typer.BadParameter("give event ids (with --source) or --stuck")
    if event_ids and source is None:
        raise typer.BadParameter("event ids need --source", param_hint="--source")
    doc = _inbox(lambda rt: rt.inbox.replay(source=source, event_ids=event_ids or [], stuck=stuck))

    def render(d: dict[str, Any]) -> None:
        console.print(f"{d['replayed']} deliveries re-driven")
        if d["body_expired"]:
            err.print(
                f"[yellow]{d['body_expired']} deliveries no longer keep their body (APEX_INBOX_BODY_RETENTION)[/]"
            )

    _emit(doc, as_json, render)


@inbox_app.command("gc")
def inbox_gc(as_json: JsonOpt = False) -> None:
    """Collect garbage now (workers do it hourly).

    Delivered rows past APEX_INBOX_RETENTION, bodies past APEX_INBOX_BODY_RETENTION, blobs
    unused for APEX_BLOB_RETENTION."""

    async def job(rt: Any) -> dict[str, Any]:
        done = await rt.inbox.collect_garbage()
        done["blobs"] = await asyncio.to_thread(rt.codec.blobs.collect_garbage, rt.core.blob_retention)
        return dict(done)

    _emit(_inbox(job), as_json, lambda d: console.print(json.dumps(d)))


HomeOpt = Annotated[
    Path | None, typer.Option("--home", metavar="DIR", help="State folder (default APEX_HOME or ./.apex)")
]


def _home(home: Path | None) -> Path:
    from apex_platform.settings import CoreSettings, load

    return home or load(CoreSettings).home


@app.command()
def dev(plugins: PluginsOpt = None, home: HomeOpt = None) -> None:
    """The embedded stack, then the worker, the API and drop-folder watchers in the foreground.

    The stack: Temporal, PostgreSQL+pgvector, Redis+FalkorDB, Qdrant local, under
    APEX_HOME. Ctrl-C stops it all."""
    from apex_platform.devstack import run_dev

    _logging(os.environ.get("APEX_LOG_LEVEL", "WARNING"))
    run_dev(_home(home), plugins)


@app.command()
def demo(
    plugins: PluginsOpt = None,
    home: HomeOpt = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for every workflow")] = 180.0,
) -> None:
    """The stack, every installed source's sample traffic, a table of what landed where.

    Starts the stack, sends the samples (webhooks over HTTP, polls and streams against fake
    vendors, files), waits for the workflows, prints what landed where and stops. Exit code
    1 if anything did not land."""
    from apex_platform.devstack import run_demo

    _logging(os.environ.get("APEX_LOG_LEVEL", "WARNING"))
    code = run_demo(_home(home), plugins, timeout)
    if code:
        raise typer.Exit(code)


def _wants_json(argv: list[str]) -> bool:
    """--json among the options (not after `--`): errors are then JSON too."""
    options = argv[: argv.index("--")] if "--" in argv else argv
    return "--json" in options


def _fail(message: str, as_json: bool) -> None:
    """A failure, as the grammar says: `error: …` on stderr, or `{"error": "…"}` with --json."""
    if as_json:
        sys.stderr.write(json.dumps({"error": message}) + "\n")
    else:
        err.print(f"[red]error:[/] {escape(message)}")


def main() -> None:
    """Entry point: one clear line on errors, and a hard exit that sidesteps the Temporal
    SDK's occasional abort during interpreter teardown (sdk-python issue 300)."""
    code = 0
    as_json = _wants_json(sys.argv[1:])
    try:
        # without standalone mode, click returns a typer.Exit's code instead of raising it
        returned = app(standalone_mode=False)
        if isinstance(returned, int):
            code = returned
    except typer.Exit as exc:
        code = exc.exit_code
    except typer.Abort:
        _fail("aborted", as_json)
        code = 130
    except KeyboardInterrupt:
        code = 130
    except ApexError as exc:
        _fail(str(exc), as_json)
        code = EXIT_FAILED
    except typer.TyperException as exc:  # usage errors: Typer's own text, or one JSON object
        show = getattr(exc, "show", None)
        if as_json or not callable(show):
            _fail(exc.format_message(), as_json)
        else:
            show()
        code = exc.exit_code
    except Exception as exc:  # noqa: BLE001 - all end as one line
        _fail(f"{type(exc).__name__}: {exc}", as_json)
        code = EXIT_FAILED
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
