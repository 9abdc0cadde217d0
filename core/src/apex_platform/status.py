"""`apex-platform status`, `GET /v1/status` and the console: one document that says whether
the platform is healthy and, if not, why.

It is gathered in one process from what that process can reach: the readiness checks of
`/readyz` (Temporal, the inbox, each store's `health()`), the stack of `APEX_HOME/stack.json`,
the state of every source's pollers (the functions of `sources list`), the inbox backlog, the
dead-letter queue, the pollers Temporal sees on each task queue, and the workers' metrics.
A circuit breaker lives in the memory of the worker that trips it, so its state is read
where the worker publishes it: `apex_saga_breaker_state` (and each source's last write) on
this process's own registry (in `apex-platform dev` the worker shares the API's process) and
on every `/metrics` URL in `APEX_STATUS_METRICS_URLS` (each worker's
`APEX_METRICS_WORKER_PORT`). The document's shape is stable (`version`), documented in
docs/operations.md ("Status and console").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import Field
from pydantic_settings import BaseSettings

from apex_platform.capabilities import single_process
from apex_platform.settings import apex_config, load

if TYPE_CHECKING:
    from rich.console import Console
    from temporalio.client import Client

    from apex_platform.runtime import Runtime

log = logging.getLogger(__name__)

#: the document's shape; raised only when a field changes meaning or goes away
DOCUMENT_VERSION = 1
#: exit code of `apex-platform status` when something is unhealthy (1: the command failed)
UNHEALTHY_EXIT = 2
BREAKER_STATES = {0: "closed", 1: "half_open", 2: "open"}
#: open dead letters read to count them (the document says when there are more)
MAX_LETTERS_COUNTED = 1000


class StatusSettings(BaseSettings):
    """Where `status` reads the workers' breakers and last writes."""

    model_config = apex_config("APEX_STATUS_")

    metrics_urls: str = Field(
        default="",
        description="Comma-separated /metrics URLs of the workers (their APEX_METRICS_WORKER_PORT), "
        "read for open circuit breakers and each source's last write; this process's own metrics are always read",
    )
    timeout_seconds: float = Field(default=5.0, gt=0, description="How long each part of the status may take")

    def urls(self) -> list[str]:
        return [u.strip() for u in self.metrics_urls.split(",") if u.strip()]


# -- the workers' metrics -------------------------------------------------------------------


def metric_readings(families: Any, endpoint: str) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Breakers (`apex_saga_breaker_state`) and last writes per source from metric families
    (`prometheus_client`'s, parsed or collected)."""
    breakers: list[dict[str, Any]] = []
    last_write: dict[str, float] = {}
    for family in families:
        if family.name == "apex_saga_breaker_state":
            for sample in family.samples:
                state = BREAKER_STATES.get(int(sample.value), "unknown")
                breakers.append(
                    {"sink": sample.labels["sink"], "op": sample.labels["op"], "state": state, "endpoint": endpoint}
                )
        elif family.name == "apex_source_last_write_timestamp_seconds":
            for sample in family.samples:
                src = sample.labels["source"]
                last_write[src] = max(last_write.get(src, 0.0), float(sample.value))
    return breakers, last_write


async def read_metrics(urls: list[str], seconds: float) -> dict[str, Any]:
    """This process's registry and every URL's `/metrics`: breakers, last writes, and which
    endpoints answered."""
    import httpx
    from prometheus_client import REGISTRY
    from prometheus_client.parser import text_string_to_metric_families

    breakers, last_write = metric_readings(REGISTRY.collect(), "self")
    endpoints: list[dict[str, Any]] = []

    async def one(client: httpx.AsyncClient, url: str) -> None:
        try:
            resp = await client.get(url)
            resp.raise_for_status()
            found, writes = metric_readings(text_string_to_metric_families(resp.text), url)
        except Exception as exc:  # noqa: BLE001 - a worker that does not answer is reported, not fatal
            endpoints.append({"url": url, "ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]})
            return
        endpoints.append({"url": url, "ok": True, "error": None})
        breakers.extend(found)
        for src, ts in writes.items():
            last_write[src] = max(last_write.get(src, 0.0), ts)

    if urls:
        async with httpx.AsyncClient(timeout=seconds) as client:
            await asyncio.gather(*(one(client, u) for u in urls))
    endpoints.sort(key=lambda e: str(e["url"]))
    breakers.sort(key=lambda b: (b["sink"], b["op"], b["endpoint"]))
    return {"breakers": breakers, "last_write": last_write, "endpoints": endpoints}


# -- Temporal: pollers per task queue, sources' pollers -----------------------------------


async def queue_workers(client: Client, queues: list[str], seconds: float) -> list[dict[str, Any]]:
    """Per task queue: the workers Temporal has seen polling it lately (workflow and activity
    pollers, by identity)."""
    from temporalio.api.enums.v1 import TaskQueueKind, TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

    out = []
    for queue in queues:
        item: dict[str, Any] = {"queue": queue}
        identities: set[str] = set()
        seen: list[dict[str, Any]] = []
        for kind, qtype in (
            ("workflow", TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW),
            ("activity", TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY),
        ):
            resp = await client.workflow_service.describe_task_queue(
                DescribeTaskQueueRequest(
                    namespace=client.namespace,
                    task_queue=TaskQueue(name=queue, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL),
                    task_queue_type=qtype,
                ),
                timeout=timedelta(seconds=seconds),
            )
            item[f"{kind}_pollers"] = len(resp.pollers)
            identities.update(p.identity for p in resp.pollers)
            for p in resp.pollers:
                last = (
                    p.last_access_time.ToDatetime(UTC).isoformat(timespec="seconds")
                    if p.HasField("last_access_time")
                    else None
                )
                seen.append({"identity": p.identity, "type": kind, "last_access": last})
        item["identities"] = sorted(identities)
        # Temporal keeps a poller listed for a few minutes after its last poll: a worker
        # that just stopped is still here, with an older last access
        item["pollers"] = sorted(seen, key=lambda x: (x["type"], x["identity"]))
        out.append(item)
    return out


async def source_states(runtime: Runtime, client: Client | None, last_write: dict[str, float]) -> list[dict[str, Any]]:
    """Installed sources as `sources list --json` shows them (pollers, streams and
    reconcilers per account: running, cursor, last success), and the last write a worker
    reported for each."""
    from apex_platform.contracts import PollSource
    from apex_platform.pollers import poller_state
    from apex_platform.reconcile import ReconcileSource, reconciler_state

    prefix = runtime.temporal.task_queue_prefix
    out = []
    for name, src in sorted(runtime.registry.sources.items()):
        ts = last_write.get(name)
        item: dict[str, Any] = {
            "name": name,
            "mode": src.mode,
            "priority": src.priority,
            "last_write": datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds") if ts else None,
        }
        if isinstance(src, PollSource):
            item["accounts"] = [
                await poller_state(client, src, acct, prefix) if client else {"account": acct}
                for acct in src.accounts()
            ]
        if isinstance(src, ReconcileSource):
            item["reconcile"] = [
                await reconciler_state(client, name, acct, prefix) if client else {"account": acct}
                for acct in src.reconcile_accounts()
            ]
        out.append(item)
    return out


# -- the document ---------------------------------------------------------------------------


def stack_document(home: Any) -> dict[str, Any] | None:
    """The embedded stack of APEX_HOME (stack.json), passwords redacted; None without one."""
    from apex_platform.stack import read_stack
    from apex_platform.stack.credentials import redact

    info = read_stack(home)
    if info is None:
        return None
    return {
        "home": info["home"],
        "pid": info.get("pid"),
        "started_at": info.get("started_at"),
        "temporal": info["temporal"]["address"],
        "postgres": redact(info["postgres"]["dsn"]),
        "redis": redact(info["redis"]["url"]),
        "qdrant": info.get("qdrant", {}).get("path"),
        "api": info["api"]["url"],
    }


async def dead_letter_counts(runtime: Runtime) -> dict[str, Any]:
    """Open dead letters: quarantines (records a store refused for good) and failed
    compensations, with the number of records each kind holds."""
    from apex_platform import operations

    letters = await operations.dead_letter_queue(runtime).list_dead_letters(status="open", limit=MAX_LETTERS_COUNTED)
    quarantines = [x for x in letters if x.batch_id.endswith(":quarantine")]
    failed = [x for x in letters if not x.batch_id.endswith(":quarantine")]
    return {
        "open": len(letters),
        "quarantine_letters": len(quarantines),
        "quarantined_records": sum(len(x.records) for x in quarantines),
        "failed_compensations": len(failed),
        "truncated": len(letters) >= MAX_LETTERS_COUNTED,
        "error": None,
    }


async def _part(what: str, job: Any, seconds: float, errors: dict[str, str]) -> Any:
    try:
        return await asyncio.wait_for(job, timeout=seconds)
    except Exception as exc:  # noqa: BLE001 - one part failing is itself the status
        errors[what] = f"{type(exc).__name__}: {exc}"[:300]
        return None


async def collect(
    runtime: Runtime,
    *,
    settings: StatusSettings | None = None,
    open_errors: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The status document of everything `runtime` reaches. `open_errors`: sinks this
    process failed to open (their check is that error)."""
    from apex_platform.api.controllers import readiness_checks
    from apex_platform.temporal.client import task_queue

    settings = settings or load(StatusSettings)
    timeout = settings.timeout_seconds
    errors: dict[str, str] = {}
    checks = await readiness_checks(runtime, unopened="skipped: one process only, owned by the worker")
    for name, error in (open_errors or {}).items():
        checks[f"sink:{name}"] = f"error: could not open: {error}"[:300]
    client = None
    if checks.get("temporal") == "ok":
        client = await runtime.connect(lazy=True)

    stack = None
    try:
        stack = stack_document(runtime.core.home)
    except Exception as exc:  # noqa: BLE001 - an untrusted stack.json is reported
        errors["stack"] = f"{type(exc).__name__}: {exc}"[:300]
    scraped = await read_metrics(settings.urls(), timeout)
    sources = await _part("sources", source_states(runtime, client, scraped["last_write"]), 4 * timeout, errors)
    inbox_rows = await _part("inbox", runtime.inbox.status(), timeout, errors)
    letters = await _part("dead_letters", dead_letter_counts(runtime), timeout, errors)
    priorities = sorted({src.priority for src in runtime.registry.sources.values()})
    queues = [task_queue(p, runtime.temporal) for p in priorities]
    workers = None
    if client is not None:
        workers = await _part("workers", queue_workers(client, queues, timeout), 2 * timeout, errors)

    problems: list[str] = []
    for name, value in sorted(checks.items()):
        if value != "ok" and not value.startswith("skipped"):
            problems.append(f"{name}: {value}")
    for what, error in sorted(errors.items()):
        if checks.get(what, "ok") == "ok":  # a failed check says it already
            problems.append(f"{what}: {error}")
    for endpoint in scraped["endpoints"]:
        if not endpoint["ok"]:
            problems.append(f"metrics {endpoint['url']}: {endpoint['error']}")
    for b in scraped["breakers"]:
        if b["state"] != "closed":
            problems.append(f"breaker {b['sink']}/{b['op']} is {b['state']} ({b['endpoint']})")
    for row in inbox_rows or []:
        if row["stuck"]:
            problems.append(f"inbox: {row['stuck']} stuck deliveries of {row['source']}")
    if letters and letters["open"]:
        problems.append(
            f"dead letters: {letters['open']} open ({letters['quarantined_records']} quarantined records, "
            f"{letters['failed_compensations']} failed compensations)"
        )
    for w in workers or []:
        if not (w["workflow_pollers"] and w["activity_pollers"]):
            problems.append(f"workers: no worker polls {w['queue']}")

    return {
        "version": DOCUMENT_VERSION,
        "healthy": not problems,
        "problems": problems,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "stack": stack,
        "checks": dict(sorted(checks.items())),
        "sources": sources,
        "inbox": [
            {
                "source": r["source"],
                "backlog": r["backlog"],
                "oldest_pending_seconds": r["oldest_pending_seconds"],
                "stuck": r["stuck"],
                "rate_per_minute": r["rate_per_minute"],
            }
            for r in inbox_rows or []
        ],
        "breakers": scraped["breakers"],
        "metrics_endpoints": scraped["endpoints"],
        "dead_letters": letters or {"error": errors.get("dead_letters")},
        "workers": workers,
        "errors": errors,
    }


async def collect_local(plugins: str | None = None, settings: StatusSettings | None = None) -> dict[str, Any]:
    """Open what this process may open (every sink but the single-process ones, each on its
    own so one down store does not hide the others), collect, close."""
    from apex_platform.runtime import Runtime

    settings = settings or load(StatusSettings)
    runtime = Runtime.build(plugins)
    opened: list[Any] = []
    open_errors: dict[str, str] = {}
    for name, sink in runtime.registry.sinks.items():
        if single_process(sink):
            continue
        try:
            await asyncio.wait_for(sink.open(), timeout=settings.timeout_seconds)
            opened.append(sink)
        except Exception as exc:  # noqa: BLE001 - reported as the sink's check
            open_errors[name] = f"{type(exc).__name__}: {exc}"
    try:
        return await collect(runtime, settings=settings, open_errors=open_errors)
    finally:
        for sink in reversed(opened):
            with contextlib.suppress(Exception):
                await sink.close()
        with contextlib.suppress(Exception):
            await runtime.inbox.close()


# -- the screen -----------------------------------------------------------------------------


def render(doc: dict[str, Any], console: Console) -> None:
    """The document as one screen of rich tables."""
    from rich.markup import escape
    from rich.table import Table

    verdict = "[green]healthy[/]" if doc["healthy"] else "[red]UNHEALTHY[/]"
    stack = doc.get("stack")
    where = f"embedded stack in {stack['home']} (since {stack['started_at']})" if stack else "no embedded stack"
    console.print(f"Apex status: {verdict} — {where} — {doc['generated_at']}")
    for problem in doc["problems"]:
        console.print(f"  [red]•[/] {escape(problem)}", highlight=False)

    checks = Table(title="Stack and stores")
    checks.add_column("check")
    checks.add_column("state", overflow="fold")
    for name, value in doc["checks"].items():
        checks.add_row(name, "[green]ok[/]" if value == "ok" else escape(value))
    console.print(checks)

    sources = Table(title="Sources")
    for col in ("name", "mode", "priority", "last write", "account", "running", "cursor", "last success"):
        sources.add_column(col)
    for s in doc.get("sources") or []:
        accounts = (s.get("accounts") or []) + [dict(a, reconcile=True) for a in s.get("reconcile") or []] or [{}]
        for acct in accounts:
            sources.add_row(
                s["name"],
                "reconcile" if acct.get("reconcile") else s["mode"],
                s["priority"],
                s.get("last_write") or "-",
                acct.get("account", "-"),
                "yes" if acct.get("running") else ("no" if "running" in acct else "-"),
                escape(str(acct.get("cursor") or "-")[:30]),
                str(acct.get("last_success") or "-"),
            )
    console.print(sources)

    inbox = Table(title="Inbox backlog")
    for col in ("source", "backlog", "oldest pending", "stuck", "per minute"):
        inbox.add_column(col)
    for r in doc.get("inbox") or []:
        age = r["oldest_pending_seconds"]
        inbox.add_row(
            r["source"],
            str(r["backlog"]),
            "-" if age is None else f"{age:.0f}s",
            str(r["stuck"]),
            str(r["rate_per_minute"]),
        )
    console.print(inbox)

    ops = Table(title="Breakers, dead letters, workers")
    ops.add_column("what")
    ops.add_column("state", overflow="fold")
    for b in doc.get("breakers") or []:
        ops.add_row(f"breaker {b['sink']}/{b['op']}", f"{b['state']} ({b['endpoint']})")
    if not doc.get("breakers"):
        ops.add_row("breakers", "none reported (set APEX_STATUS_METRICS_URLS to the workers' /metrics)")
    letters = doc.get("dead_letters") or {}
    if letters.get("error") is None and "open" in letters:
        ops.add_row(
            "dead letters",
            f"{letters['open']} open: {letters['quarantined_records']} quarantined records, "
            f"{letters['failed_compensations']} failed compensations",
        )
    for w in doc.get("workers") or []:
        ops.add_row(
            f"queue {w['queue']}",
            f"{w['workflow_pollers']} workflow / {w['activity_pollers']} activity pollers: "
            + escape(", ".join(w["identities"]) or "no worker"),
        )
    console.print(ops)
