"""`apex-platform dev` and `apex-platform demo`: the embedded stack with the worker and
the API in this process."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from apex_platform.contracts import DemoSource, PollSource, SampleDelivery, SourceConnector
from apex_platform.models import RecordKey
from apex_platform.runtime import Runtime
from apex_platform.serve import install_stop_signals, serve

log = logging.getLogger(__name__)
console = Console()


def stack_environment(info: dict[str, Any]) -> dict[str, str]:
    """The settings that point every component at the embedded servers of stack.json."""
    env = {
        "APEX_HOME": info["home"],
        "APEX_TEMPORAL_ADDRESS": info["temporal"]["address"],
        "APEX_TEMPORAL_NAMESPACE": info["temporal"]["namespace"],
        "APEX_POSTGRES_DSN": info["postgres"]["dsn"],
        "APEX_REDIS_URL": info["redis"]["url"],
        # no path: a path would name the graph, and the Redis db number is not a graph name
        "APEX_GRAPH_URI": "falkordb://" + info["redis"]["url"].removeprefix("redis://").split("/", 1)[0],
        "APEX_QDRANT_PATH": info["qdrant"]["path"],
    }
    env.update(dev_payload_environment(Path(info["home"])))
    return env


PAYLOAD_KEYS_FILE = "payload_keys"


def dev_payload_environment(home: Path, *, create: bool = False) -> dict[str, str]:
    """`APEX_PAYLOAD_KEYS_FILE` of this APEX_HOME's dev stack (a key made once, mode 0600),
    unless payload encryption is configured otherwise: the dev stack's Temporal history is
    encrypted like any other, and the CLI in a second terminal reads it with the same key."""
    from apex_platform.settings import load
    from apex_platform.temporal.encryption import PayloadSettings, write_key_file

    if load(PayloadSettings).configured:
        return {}
    path = home / PAYLOAD_KEYS_FILE
    if create:
        write_key_file(path, f"dev-{time.strftime('%Y%m%d')}")
    return {"APEX_PAYLOAD_KEYS_FILE": str(path)} if os.path.lexists(path) else {}


def _print_stack(info: dict[str, Any]) -> None:
    from apex_platform.stack.credentials import redact

    table = Table(title=f"Apex embedded stack in {info['home']}")
    table.add_column("service")
    table.add_column("address")
    table.add_row("API", info["api"]["url"])
    # the console signs in with the admin token, kept in APEX_HOME (0600)
    token_file = Path(info["home"]) / ADMIN_TOKEN_FILE
    table.add_row("Console", f"{info['api']['url']}/console (sign in with APEX_ADMIN_TOKEN or {token_file})")
    table.add_row("Metrics", f"{info['api']['url']}/metrics (dashboard: deploy/grafana/dashboards/apex.json)")
    table.add_row("Temporal", info["temporal"]["address"])
    table.add_row("Temporal UI", info["temporal"].get("ui_url") or "-")
    table.add_row("PostgreSQL", redact(info["postgres"]["dsn"]))  # passwords: stack.json (0600)
    table.add_row("Redis + FalkorDB", redact(info["redis"]["url"]))
    table.add_row("Qdrant (local)", info["qdrant"]["path"])
    console.print(table)


ADMIN_TOKEN_FILE = "admin_token"  # noqa: S105 - a file name, not a secret


def admin_token(home: Path) -> str:
    """The admin token of this APEX_HOME's dev stack: made once, kept with mode 0600, so
    the CLI in a second terminal can call the running stack's admin endpoints. An empty or
    too short file gets a new token (it is never "no token"); a link or another user's
    file is refused (`StackError`): its token would be known to whoever planted it."""
    from apex_platform.settings import MIN_SECRET_CHARS
    from apex_platform.stack.credentials import read_private, write_private

    path = home / ADMIN_TOKEN_FILE
    token = read_private(path)
    if token is not None and len(token) >= MIN_SECRET_CHARS and "," not in token:
        return token
    home.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    write_private(path, token)
    return token


def _start_stack(home: Path) -> tuple[Any, dict[str, Any]]:
    from apex_platform.settings import AdminSettings, load
    from apex_platform.stack import EmbeddedStack

    if "APEX_ADMIN_TOKEN" in os.environ:
        load(AdminSettings)  # an empty or too short token stops here, naming the variable
    stack = EmbeddedStack(home)
    info = stack.start()
    os.environ.update(dev_payload_environment(stack.home, create=True))
    os.environ.update(stack_environment(info))
    os.environ["APEX_API_PORT"] = info["api"]["url"].rsplit(":", 1)[1]
    os.environ.setdefault("APEX_ADMIN_TOKEN", admin_token(stack.home))
    return stack, info


def run_dev(home: Path, plugins: str | None) -> None:
    stack, info = _start_stack(home)
    try:
        _print_stack(info)
        runtime = Runtime.build(plugins)
        for problem in runtime.registry.problems:
            console.print(f"[yellow]plugin problem:[/] {problem}")
        port = int(info["api"]["url"].rsplit(":", 1)[1])
        console.print("Worker and API running. Ctrl-C stops everything.")
        asyncio.run(serve(runtime, api=True, worker=True, host="127.0.0.1", port=port, inboxes=True))
    finally:
        console.print("stopping the embedded stack…")
        stack.stop()


@dataclass
class DemoOutcome:
    source: str
    path: str
    status: int
    workflow_id: str | None = None
    records: list[RecordKey] = field(default_factory=list)
    error: str | None = None
    #: a batched delivery (accumulator): the records its connector parses from it, to await
    expected: list[RecordKey] = field(default_factory=list)
    #: a delivery that ingests nothing itself (e.g. a "sync now" trigger)
    note: str | None = None
    #: the inbox key of an accepted delivery, awaited until delivered
    event_id: str | None = None


def _demo_environment(runtime_sources: Sequence[SourceConnector]) -> list[Callable[[], None]]:
    """Secrets for signing sample traffic (`DemoEnvironmentSource`), and fake vendor
    servers for the sources that read from a vendor's API (`FakeVendorSource`)."""
    from apex_platform.capabilities import DemoEnvironmentSource, FakeVendorSource

    stops: list[Callable[[], None]] = []
    for source in runtime_sources:
        if isinstance(source, DemoEnvironmentSource):
            for key, value in source.demo_environment().items():
                os.environ.setdefault(key, value)
        if not isinstance(source, FakeVendorSource):
            continue
        fake = source.start_fake_vendor()
        stops.append(fake.stop)
        os.environ.update(fake.environment)
        console.print(f"fake {source.name} vendor API at {fake.base_url}")
    # fake vendor apps may configure logging on creation; the demo's output stays readable
    level = getattr(logging, os.environ.get("APEX_LOG_LEVEL", "WARNING").upper(), logging.WARNING)
    logging.getLogger().setLevel(level)
    for noisy in ("httpx", "litestar", "uvicorn", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    return stops


def run_demo(home: Path, plugins: str | None, timeout: float = 180.0) -> int:
    """Start the stack, send every source's sample traffic over HTTP, wait for every
    workflow, print what landed where, stop. Returns the exit code."""
    from apex_platform.plugins import build_registry

    fakes = _demo_environment(list(build_registry(plugins or os.environ.get("APEX_PLUGINS", "all")).sources.values()))
    try:
        stack, info = _start_stack(home)
    except BaseException:
        for stop in fakes:
            stop()
        raise
    try:
        _print_stack(info)
        runtime = Runtime.build(plugins)
        for problem in runtime.registry.problems:
            console.print(f"[yellow]plugin problem:[/] {problem}")
        return asyncio.run(_demo(runtime, info, timeout))
    finally:
        console.print("stopping the embedded stack…")
        stack.stop()
        for stop in fakes:
            stop()


async def _demo(runtime: Runtime, info: dict[str, Any], wait_seconds: float) -> int:
    url = info["api"]["url"]
    port = int(url.rsplit(":", 1)[1])
    stop = asyncio.Event()
    install_stop_signals(stop)
    started = asyncio.Event()
    server = asyncio.create_task(
        serve(runtime, api=True, worker=True, host="127.0.0.1", port=port, stop=stop, started=started)
    )
    try:
        await asyncio.wait_for(started.wait(), timeout=60)
        deliveries: list[tuple[str, SampleDelivery]] = []
        for name, source in sorted(runtime.registry.sources.items()):
            if isinstance(source, DemoSource):
                deliveries += [(name, d) for d in source.demo_deliveries()]
        pollers = [s for _, s in sorted(runtime.registry.sources.items()) if isinstance(s, PollSource)]
        if not deliveries and not pollers:
            console.print("[red]no installed source provides sample traffic[/]")
            return 1
        outcomes = await _send(url, deliveries, runtime) if deliveries else []
        await _wait_delivered(runtime, outcomes, wait_seconds)
        outcomes += await _sync_pollers(runtime, pollers, wait_seconds)
        outcomes += await _ingest_files(runtime, Path(info["home"]) / "demo-files", wait_seconds)
        landed = await _check_stores(runtime, outcomes)
        return 0 if landed else 1
    finally:
        stop.set()
        await server


async def _send(url: str, deliveries: list[tuple[str, SampleDelivery]], runtime: Runtime) -> list[DemoOutcome]:
    outcomes = []
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        for source, d in deliveries:
            resp = await http.request(d.method, d.path, content=d.body, headers=d.headers)
            body = resp.json() if resp.headers.get("content-type", "").startswith("application/json") else {}
            outcome = DemoOutcome(source, d.path, resp.status_code, body.get("workflow_id"))
            if resp.status_code not in (200, 202):
                outcome.error = body.get("error", resp.text[:200])
            elif body.get("status") == "sync requested":
                outcome.note = f"sync requested ({body.get('account')}); synced below"
                outcome.workflow_id = None
            elif body.get("event_id"):
                outcome.event_id = body["event_id"]
            elif resp.status_code == 200:
                outcome.note = "answered at once (handshake or ping)"
            outcomes.append(outcome)
    console.print(f"sent {len(outcomes)} deliveries over HTTP to {url}")
    return outcomes


def _demo_files(source: object, folder: Path) -> list[Path]:
    """Sample files of a batch source (`DemoFilesSource`)."""
    from apex_platform.capabilities import DemoFilesSource

    return list(source.demo_files(folder)) if isinstance(source, DemoFilesSource) else []


async def _ingest_files(runtime: Runtime, folder: Path, wait_seconds: float) -> list[DemoOutcome]:
    """Each batch source's sample files through BatchFileWorkflow, as a drop folder would."""
    from apex_platform.batches import ingest_file, record_refs
    from apex_platform.contracts import BatchSource

    client = await runtime.connect()
    outcomes: list[DemoOutcome] = []
    for name, source in sorted(runtime.registry.sources.items()):
        if not isinstance(source, BatchSource):
            continue
        for path in _demo_files(source, folder / name):
            outcome = DemoOutcome(name, f"file {path.name}", 0)
            try:
                result = await asyncio.wait_for(ingest_file(runtime, client, source, path), timeout=wait_seconds)
                outcome.records = [RecordKey(name, ref.id) for ref in record_refs(runtime, result)]
                outcome.status = result.units
                if result.failed_count:
                    outcome.error = f"{result.failed_count} units failed: {'; '.join(result.warnings[:3])}"
            except Exception as exc:  # noqa: BLE001 - shown in the table
                outcome.error = f"{type(exc).__name__}: {exc}"
            outcomes.append(outcome)
    return outcomes


async def _sync_pollers(runtime: Runtime, pollers: list[PollSource], wait_seconds: float) -> list[DemoOutcome]:
    """One complete sync of every account of every poll and stream source."""
    from apex_platform.pollers import start_poller

    client = await runtime.connect()
    outcomes: list[DemoOutcome] = []
    for source in pollers:
        for account in source.accounts():
            outcome = DemoOutcome(source.name, f"{source.mode} {account}", 0)
            try:
                handle = await start_poller(client, source, account, runtime.temporal, once=True)
                outcome.workflow_id = handle.id
                state = await asyncio.wait_for(handle.result(), timeout=wait_seconds)
                outcome.records = [RecordKey(source.name, rid) for rid in state.recent_ids]
                outcome.status = state.records
                if state.last_error:
                    outcome.error = state.last_error
            except Exception as exc:  # noqa: BLE001 - shown in the table
                outcome.error = f"{type(exc).__name__}: {exc}"
            outcomes.append(outcome)
    if pollers:
        console.print(f"synced {len(outcomes)} poll/stream accounts once")
    return outcomes


async def _wait_delivered(runtime: Runtime, outcomes: list[DemoOutcome], wait_seconds: float) -> None:
    """Wait until every accepted delivery is marked delivered in the inbox, then take the
    records it produced from the lineage (the table then checks every store)."""
    pending = [o for o in outcomes if o.event_id and not o.error]
    deadline = time.monotonic() + wait_seconds
    while pending and time.monotonic() < deadline:
        still = []
        for o in pending:
            assert o.event_id is not None
            row = await runtime.inbox.get(o.source, o.event_id)
            if row is None or row["status"] != "delivered":
                still.append(o)
                continue
            o.records = [
                RecordKey(s, rid)
                for s, rid, _v in await runtime.inbox.records_from(f"delivery:{o.source}:{o.event_id}")
            ]
            if not o.records:
                o.note = "delivered (nothing to store)"
        pending = still
        if pending:
            await asyncio.sleep(0.25)
    for o in pending:
        row = await runtime.inbox.get(o.source, o.event_id or "")
        o.error = f"not delivered within {wait_seconds:.0f}s: {(row or {}).get('last_error') or 'still pending'}"


ROWS_SHOWN_PER_DELIVERY = 4


def _mark(record: Any, agreed: bool) -> str:
    if record is None:
        return "[red]missing[/]"
    if not agreed:
        return f"[red]✗ v{record.version}[/]"
    return "deleted" if record.deleted else "[green]✓[/]"


async def _check_stores(runtime: Runtime, outcomes: list[DemoOutcome]) -> bool:
    """A record landed when every sink holds the same version of it (a tombstone counts:
    a deletion must land everywhere too)."""
    sinks = runtime.registry.sinks
    table = Table(title="What landed where")
    for col in ("source", "via", "status", "record", "version"):
        table.add_column(col, overflow="fold")
    for name in sinks:
        table.add_column(name, justify="center")
    ok = True
    keys = list(dict.fromkeys(k for o in outcomes for k in o.records))
    stored = {name: (await sink.read(keys)) if keys else {} for name, sink in sinks.items()}
    shown: set[RecordKey] = set()
    for o in outcomes:
        if o.error:
            ok = False
            table.add_row(o.source, o.path, str(o.status), f"[red]{o.error}[/]", "", *["-" for _ in sinks])
            continue
        if o.note:
            table.add_row(o.source, o.path, str(o.status), o.note, "", *["" for _ in sinks])
            continue
        if not o.records:
            ok = False
            table.add_row(o.source, o.path, str(o.status), "[red]no records[/]", "", *["-" for _ in sinks])
            continue
        fresh = [k for k in o.records if k not in shown]
        for i, key in enumerate(fresh):
            shown.add(key)
            found = [stored[name].get(key) for name in sinks]
            versions = {(r.version, r.deleted) for r in found if r is not None}
            agreed = None not in found and len(versions) == 1
            ok = ok and agreed
            if i >= ROWS_SHOWN_PER_DELIVERY and agreed:
                continue
            version = next(iter(versions))[0] if versions else None
            marks = [_mark(r, agreed) for r in found]
            table.add_row(o.source, o.path, str(o.status), key.id, str(version or "-"), *marks)
        hidden = len(fresh) - ROWS_SHOWN_PER_DELIVERY
        if hidden > 0:
            note = f"… {hidden} more (those not shown agree in every store)"
            table.add_row(o.source, o.path, str(o.status), note, "", *["" for _ in sinks])
    console.print(table)
    console.print("[green]every record landed in every store[/]" if ok else "[red]some records did not land[/]")
    return ok
