"""The `apex-platform` command line."""

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


sources_app = typer.Typer(help="Operate sources: pollers and streams.", no_args_is_help=True)
app.add_typer(sources_app, name="sources")
AccountOpt = Annotated[str | None, typer.Option("--account", help="One account (default: every configured one)")]


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
def sources_list(
    plugins: PluginsOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """Installed sources with their mode and priority, and the state of their pollers and
    streams (running, cursor, last success) when Temporal answers."""
    from apex_platform.contracts import PollSource
    from apex_platform.pollers import poller_state
    from apex_platform.reconcile import ReconcileSource, reconciler_state

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
        sys.stdout.write(json.dumps(items, indent=2, default=str) + "\n")
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


def _poll_command(name: str, account: str | None, plugins: str | None, action: str) -> None:
    from apex_platform.pollers import accounts_of, poller_id, poller_state, start_poller

    _stack_aware_env()
    runtime = _runtime(plugins)
    source = runtime.registry.source(name)
    accounts = accounts_of(source, account)

    prefix = runtime.temporal.task_queue_prefix

    async def go() -> None:
        client = await runtime.connect()
        for acct in accounts:
            if action == "start":
                handle = await start_poller(client, source, acct, runtime.temporal)
                console.print(f"{name}/{acct}: running as {handle.id}")
            elif action == "sync":
                running = await poller_state(client, source, acct, runtime.temporal.task_queue_prefix)
                if running.get("running"):  # one reader per cursor: wake the running poller
                    await client.get_workflow_handle(poller_id(source, acct, prefix)).signal("sync_now")
                    console.print(f"{name}/{acct}: sync requested from the running poller")
                    continue
                handle = await start_poller(client, source, acct, runtime.temporal, once=True)
                state = await handle.result()
                console.print(
                    f"{name}/{acct}: synced {state.pages} pages, {state.records} records, cursor {state.cursor}"
                )
            else:
                handle = client.get_workflow_handle(poller_id(source, acct, prefix))
                await handle.signal("stop")
                console.print(f"{name}/{acct}: stop requested ({handle.id})")

    asyncio.run(go())


@sources_app.command("start")
def sources_start(name: str, account: AccountOpt = None, plugins: PluginsOpt = None) -> None:
    """Start the poller / stream of a source (each account); starting twice is harmless."""
    _poll_command(name, account, plugins, "start")


@sources_app.command("stop")
def sources_stop(name: str, account: AccountOpt = None, plugins: PluginsOpt = None) -> None:
    """Ask the poller / stream to finish its page in hand and stop."""
    _poll_command(name, account, plugins, "stop")


@sources_app.command("sync")
def sources_sync(name: str, account: AccountOpt = None, plugins: PluginsOpt = None) -> None:
    """Run one complete sync now and wait for it (pages until the vendor has no more)."""
    _poll_command(name, account, plugins, "sync")


dlq_app = typer.Typer(help="The dead-letter queue: failed compensations kept to replay.", no_args_is_help=True)
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


def _local(job: Any) -> Any:
    """Run an operation in this process: open the sinks (and Temporal if it answers)."""
    runtime = _runtime(None)

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
    if as_json:
        sys.stdout.write(json.dumps(doc, indent=2, default=str) + "\n")
    else:
        render(doc)


@app.command()
def trace(
    source: str,
    record_id: str,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """Where a record is, and which version, in every installed sink; and the workflows that
    wrote it. Goes through the running `apex-platform dev` when there is one."""
    from apex_platform import operations

    remote = _remote()
    if remote is not None:
        doc = _call_remote(remote, "GET", "/v1/trace", source=source, id=record_id)
    else:
        doc = _local(lambda rt, client: operations.trace(rt, client, source, record_id))

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
def status(
    plugins: PluginsOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output (docs/operations.md)")] = False,
) -> None:
    """One screen: stack and store health, sources (last write, pollers' cursor and last
    success), inbox backlogs, breakers, dead letters, workers per task queue. Exit code 0
    when healthy, 2 when something is not (each problem is named). Goes through the running
    `apex-platform dev` when there is one; workers elsewhere: APEX_STATUS_METRICS_URLS."""
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


def _dlq(action: str, *args: Any) -> Any:
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
    return _local(jobs[action])


@dlq_app.command("list")
def dlq_list(
    status: Annotated[
        str | None, typer.Option(help="open, resolved, replayed, rolled_back, discarded, or all")
    ] = "open",
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """Dead letters, oldest first."""
    letters = _dlq("list", None if status == "all" else status, limit)

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


@dlq_app.command("show")
def dlq_show(letter_id: int) -> None:
    """One dead letter in full (JSON): records, sinks that succeeded and failed, the error."""
    _emit(_dlq("show", letter_id), True, None)


@dlq_app.command("replay")
def dlq_replay(
    letter_id: Annotated[int | None, typer.Argument(help="The dead letter to replay")] = None,
    replay_all: Annotated[bool, typer.Option("--all", help="Replay every open dead letter")] = False,
) -> None:
    """Write a dead letter's records through the saga again (all stores or none)."""
    if (letter_id is None) == (not replay_all):
        raise typer.BadParameter("give one dead-letter ID or --all")
    ids = [letter_id] if letter_id is not None else [d["id"] for d in _dlq("list", "open", 1000)]
    failures = 0
    for one in ids:
        try:
            result = _dlq("replay", one)
            console.print(f"dead letter {one}: replayed ({result['written']} written, {result['skipped']} skipped)")
        except ApexError as exc:
            failures += 1
            err.print(f"[red]dead letter {one}:[/] {exc}")
    if not ids:
        console.print("no open dead letters")
    if failures:
        raise typer.Exit(1)


@dlq_app.command("rollback")
def dlq_rollback(
    letter_id: int,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """Undo a dead letter's batch where its compensation failed: put back the state before
    the write, only where the stores still hold that attempt's change (never a newer version)."""
    result = _dlq("rollback", letter_id)

    def render(doc: dict[str, Any]) -> None:
        done = ", ".join(f"{sink}: {n} keys" for sink, n in doc["restored"].items())
        console.print(f"dead letter {letter_id}: rolled back ({done})")

    _emit(result, as_json, render)


@dlq_app.command("discard")
def dlq_discard(letter_id: int) -> None:
    """Mark a dead letter discarded (kept for the record, never deleted)."""
    _dlq("discard", letter_id)
    console.print(f"dead letter {letter_id}: discarded")


@app.command()
def ingest(
    source: str,
    paths: Annotated[list[Path] | None, typer.Argument(help="Files or folders")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line per record created")] = False,
    watch: Annotated[Path | None, typer.Option("--watch", help="Keep ingesting files dropped into this folder")] = None,
    chunk_size: Annotated[int, typer.Option(min=1, max=5000, help="Units (e.g. X12 sets) per batch")] = 500,
) -> None:
    """Ingest files of a batch source (one workflow per file, fan-out per unit). Needs a
    running worker (`apex-platform dev` or `worker`). Warnings go to stderr; the exit code
    is non-zero only when nothing could be read."""
    from rich.markup import escape
    from rich.progress import Progress

    from apex_platform.batches import Dropped, batch_source, expand, ingest_file_outcome, record_refs, watch_inbox
    from apex_platform.safefiles import display_line, display_name

    def shown(path: Path) -> str:  # a user's file name: escaped, and never read as rich markup
        return escape(display_name(path.name))

    _stack_aware_env()
    runtime = _runtime(None)
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


inbox_app = typer.Typer(help="The durable inbox: backlog, stuck deliveries, replay.", no_args_is_help=True)
app.add_typer(inbox_app, name="inbox")
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output")]


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
    """Per source: backlog, oldest undelivered age, stuck deliveries, rate; blob store use."""
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
    limit: Annotated[int, typer.Option(min=1, max=10000)] = 100,
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
    """Re-drive deliveries: stuck ones start afresh, delivered ones go through again
    (idempotent: stores keep the newest version)."""
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
    """Collect garbage now: delivered rows past APEX_INBOX_RETENTION, bodies past
    APEX_INBOX_BODY_RETENTION, blobs unused for APEX_BLOB_RETENTION (workers do it hourly)."""

    async def job(rt: Any) -> dict[str, Any]:
        done = await rt.inbox.collect_garbage()
        done["blobs"] = await asyncio.to_thread(rt.codec.blobs.collect_garbage, rt.core.blob_retention)
        return dict(done)

    _emit(_inbox(job), as_json, lambda d: console.print(json.dumps(d)))


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
        # without standalone mode, click returns a typer.Exit's code instead of raising it
        returned = app(standalone_mode=False)
        if isinstance(returned, int):
            code = returned
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
