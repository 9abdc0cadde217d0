"""Apex benchmarks: the intake path against baselines measured in the same run.

    nox -s bench                      # everything at scale 1 (under 15 minutes on 2 cores)
    nox -s bench -- --scale 0.1       # a quick look
    python benchmarks/run.py --render-only   # docs/benchmarks.md again from results/latest.json

Everything is real and started here on free ports: a Temporal dev server, PostgreSQL
(+pgvector), Redis (+FalkorDB), Qdrant in local mode under the run's temp folder; the API
and the worker are `apex-platform api` / `apex-platform worker` child processes; the load
comes from `loadgen.py`, another child process.

1. Edge acceptance: signed Samsara RouteStopArrival deliveries (~4.7 KB, a fresh eventId
   each) at 1, 10 and 100 closed-loop senders, no worker running: accepted/s and
   time-to-202. Baselines: `GET /healthz` of the same API at the same concurrency, and a
   bare `client.start_workflow` loop against the same Temporal server.
2. Backlog drain: what step 1 accepted, drained by one worker started afterwards, until
   the inbox says every delivery is delivered; then every record is looked up in every
   store. Once with samsara + postgres, redis, graph, qdrant + the entities and
   embeddings enrichers, once with PostgreSQL as the only store (same enrichers).
3. P0 latency: sequential Front deliveries on the idle full stack, 202 → the inbox row's
   `delivered_at` (committed after the saga wrote every store), and again while the
   full-stack backlog of step 2 drains. Baseline: a bare one-activity workflow, start →
   result.

Figures are printed, written to benchmarks/results/latest.json and rendered into
docs/benchmarks.md. Targets are reported, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import dataclasses
import hashlib
import hmac
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from loadgen import cpu_seconds, summary
from report import render_markdown, render_tables
from rich.console import Console
from temporalio.client import Client

from apex_platform.models import RecordKey
from apex_platform.stack import PostgresServer, RedisServer, TemporalDevServer, free_port
from apex_platform.temporal.encryption import new_key_entry

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "latest.json"
DOCS = ROOT / "docs" / "benchmarks.md"
CLI = str(Path(sys.executable).parent / "apex-platform")

SAMSARA_SECRET = base64.b64encode(b"apex-benchmark-samsara-webhook-secret").decode()
FRONT_SECRET = "apex-benchmark-front-signing-secret"
PAYLOAD_KEYS = new_key_entry("bench")  # measured as deployed: Temporal payloads encrypted
FULL_PLUGINS = "samsara,frontapp,postgres,redis,graph,qdrant,entities,embeddings"
PG_PLUGINS = "samsara,postgres,entities,embeddings"
CONCURRENCY = (1, 10, 100)
FRONT_NUMBERS = itertools.count(1)  # conversation and message numbers of the Front deliveries

console = Console(width=None if sys.stdout.isatty() else 200)  # wide tables in logs too


@dataclass(frozen=True)
class Sizes:
    """How much each scenario sends; `--scale` multiplies every figure (at least 10)."""

    accept: dict[int, int]  # senders -> deliveries (and as many GET /healthz)
    starts: dict[int, int]  # concurrent starts -> start_workflow calls
    pg_backlog: int
    p0: int
    roundtrips: int

    @classmethod
    def scaled(cls, scale: float) -> Sizes:
        def n(x: int) -> int:
            return max(10, round(x * scale))

        return cls(
            accept={1: n(1000), 10: n(4000), 100: n(8000)},
            starts={1: n(300), 10: n(1000), 100: n(2000)},
            pg_backlog=n(8000),
            p0=n(50),
            roundtrips=n(50),
        )


# -- the servers and the Apex processes ------------------------------------------------


@dataclass
class Stack:
    """Temporal, PostgreSQL and Redis on free ports under `base`."""

    base: Path
    temporal: TemporalDevServer = field(init=False)
    postgres: PostgresServer = field(init=False)
    redis: RedisServer = field(init=False)

    def __post_init__(self) -> None:
        self.temporal = TemporalDevServer(self.base / "temporal", port=free_port(), ui_port=None)
        self.postgres = PostgresServer(self.base / "postgres", port=free_port())
        self.redis = RedisServer(self.base / "redis", port=free_port())

    def start(self) -> None:
        for server in (self.temporal, self.postgres, self.redis):
            server.start()

    def stop(self) -> None:
        for server in (self.redis, self.postgres, self.temporal):
            try:
                server.stop()
            except Exception as exc:
                console.print(f"[yellow]{server!r} did not stop cleanly: {exc}")

    @property
    def redis_hostport(self) -> str:
        return self.redis.url.removeprefix("redis://").split("/", 1)[0]


class Deployment:
    """One API and (at times) one worker with a namespace of their own: task queues, inbox
    schema, sink schema, Redis prefix, graph name and Qdrant folder."""

    def __init__(self, name: str, stack: Stack, plugins: str) -> None:
        self.name = name
        self.stack = stack
        self.plugins = plugins
        self.dir = stack.base / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.inbox_schema = f"inbox_{name}"
        self.sink_schema = f"sink_{name}"
        self.qdrant_path = self.dir / "qdrant"
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("APEX_")}  # only what is set here
        self.env = {
            **inherited,
            "APEX_HOME": str(self.dir / "home"),
            "APEX_PLUGINS": plugins,
            "APEX_LOG_LEVEL": "WARNING",
            "APEX_API_PORT": str(self.port),
            "APEX_TEMPORAL_ADDRESS": stack.temporal.address,
            "APEX_TEMPORAL_TASK_QUEUE_PREFIX": name,
            "APEX_TEMPORAL_GRACEFUL_SHUTDOWN_SECONDS": "10",
            "APEX_INBOX_SCHEMA": self.inbox_schema,
            "APEX_POSTGRES_DSN": stack.postgres.dsn,
            "APEX_POSTGRES_SCHEMA": self.sink_schema,
            "APEX_REDIS_URL": stack.redis.url,
            "APEX_REDIS_PREFIX": name,
            "APEX_GRAPH_URI": f"falkordb://{stack.redis_hostport}",
            "APEX_GRAPH_NAME": name,
            "APEX_QDRANT_PATH": str(self.qdrant_path),
            "APEX_SAMSARA_WEBHOOK_SECRET": SAMSARA_SECRET,
            "APEX_FRONTAPP_SIGNING_SECRET": FRONT_SECRET,
            "APEX_PAYLOAD_KEYS": PAYLOAD_KEYS,
        }
        self.api: subprocess.Popen[bytes] | None = None
        self.worker: subprocess.Popen[bytes] | None = None

    @property
    def sinks(self) -> list[str]:
        return [p for p in self.plugins.split(",") if p in ("postgres", "redis", "graph", "qdrant")]

    def _spawn(self, role: str) -> subprocess.Popen[bytes]:
        with (self.dir / f"{role}.log").open("ab") as log:
            return subprocess.Popen(
                [CLI, role], env=self.env, cwd=self.dir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def log_tail(self, role: str) -> str:
        path = self.dir / f"{role}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    async def start_api(self) -> None:
        self.api = self._spawn("api")
        deadline = time.monotonic() + 90
        async with httpx.AsyncClient(timeout=2) as http:
            while time.monotonic() < deadline:
                if self.api.poll() is not None:
                    raise RuntimeError(f"the API exited:\n{self.log_tail('api')}")
                try:
                    if (await http.get(f"{self.url}/healthz")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)
        raise TimeoutError(f"the API did not answer within 90 s:\n{self.log_tail('api')}")

    def start_worker(self) -> None:
        self.worker = self._spawn("worker")

    @staticmethod
    def _stop(proc: subprocess.Popen[bytes] | None) -> None:
        """SIGTERM (the process drains and exits), SIGKILL of its group after 40 s."""
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(40)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)

    def stop_worker(self) -> None:
        self._stop(self.worker)

    def stop(self) -> None:
        self._stop(self.worker)
        self._stop(self.api)

    def drain_id(self, source: str) -> str:
        return f"{self.name}:drain:{source}"


async def loadgen(*args: str, env: Mapping[str, str] | None = None, timeout: float = 900) -> dict[str, Any]:
    """Run loadgen.py in its own process and return the JSON it prints."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(HERE / "loadgen.py"),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"loadgen {' '.join(args)} failed ({proc.returncode}):\n{err.decode()[-3000:]}")
    doc: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return doc


# -- the inbox, as the benchmark reads it ------------------------------------------------


async def inbox_state(pg: asyncpg.Pool, dep: Deployment, source: str) -> dict[str, Any]:
    row = await pg.fetchrow(
        f"""SELECT count(*) FILTER (WHERE status = 'pending') AS pending,
                   count(*) FILTER (WHERE status = 'delivered') AS delivered,
                   coalesce(sum(records), 0) AS records,
                   min(received_at) AS first_received, max(received_at) AS last_received,
                   max(delivered_at) AS last_delivered
            FROM {dep.inbox_schema}.deliveries WHERE source = $1""",
        source,
    )
    assert row is not None
    return dict(row)


async def wait_pending_zero(pg: asyncpg.Pool, dep: Deployment, source: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last_report = time.monotonic()
    while True:
        state = await inbox_state(pg, dep, source)
        if state["pending"] == 0:
            return state
        if dep.worker is not None and dep.worker.poll() is not None:
            raise RuntimeError(f"the worker exited:\n{dep.log_tail('worker')}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{state['pending']} {source} deliveries still pending after {timeout:.0f} s")
        if time.monotonic() - last_report > 10:
            console.print(f"    … {state['delivered']} delivered, {state['pending']} pending")
            last_report = time.monotonic()
        await asyncio.sleep(0.2)


async def drain_started(temporal: Client, dep: Deployment, source: str, timeout: float = 120) -> datetime:
    """When the worker started the source's drain loop (the workflow's start time)."""
    handle = temporal.get_workflow_handle(dep.drain_id(source))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if dep.worker is not None and dep.worker.poll() is not None:
            raise RuntimeError(f"the worker exited:\n{dep.log_tail('worker')}")
        try:
            desc = await handle.describe()
            return desc.start_time
        except Exception:
            await asyncio.sleep(0.05)
    raise TimeoutError(f"the drain of {source} did not start within {timeout:.0f} s:\n{dep.log_tail('worker')}")


async def record_keys(pg: asyncpg.Pool, dep: Deployment, source: str) -> list[RecordKey]:
    rows = await pg.fetch(
        f"SELECT DISTINCT record_id FROM {dep.inbox_schema}.lineage WHERE source = $1 ORDER BY record_id",
        source,
    )
    return [RecordKey(source, r["record_id"]) for r in rows]


def probe_sinks(dep: Deployment, names: Sequence[str]) -> dict[str, Any]:
    """This process's own clients of the deployment's stores (Qdrant only once the worker,
    which holds its local folder, has stopped)."""
    out: dict[str, Any] = {}
    stack = dep.stack
    for name in names:
        if name == "postgres":
            from apex_sink_postgres import PostgresSink, PostgresSinkSettings

            out[name] = PostgresSink(PostgresSinkSettings(dsn=stack.postgres.dsn, schema=dep.sink_schema))
        elif name == "redis":
            from apex_sink_redis import RedisSink, RedisSinkSettings

            out[name] = RedisSink(RedisSinkSettings(url=stack.redis.url, prefix=dep.name))
        elif name == "graph":
            from apex_sink_graph import GraphSink, GraphSinkSettings

            out[name] = GraphSink(GraphSinkSettings(uri=f"falkordb://{stack.redis_hostport}", name=dep.name))
        elif name == "qdrant":
            from apex_sink_qdrant import QdrantSink, QdrantSinkSettings

            out[name] = QdrantSink(QdrantSinkSettings(path=dep.qdrant_path))
    return out


async def verify_stores(dep: Deployment, keys: Sequence[RecordKey]) -> dict[str, dict[str, int]]:
    """How many of `keys` each store of the deployment holds (read back through the sinks)."""
    found: dict[str, dict[str, int]] = {}
    for name, sink in probe_sinks(dep, dep.sinks).items():
        await sink.open()
        try:
            hits = 0
            for i in range(0, len(keys), 500):
                hits += len(await sink.read(list(keys[i : i + 500])))
        finally:
            await sink.close()
        found[name] = {"expected": len(keys), "found": hits}
    return found


# -- the scenarios -----------------------------------------------------------------------


async def inbox_transactions(pg: asyncpg.Pool, dep: Deployment, after_seq: int) -> dict[str, int]:
    """Rows inserted after `after_seq` and the transactions (distinct `xmin`) that inserted them."""
    row = await pg.fetchrow(
        f"SELECT count(*) AS rows, count(DISTINCT xmin::text) AS transactions, coalesce(max(seq), $1) AS last_seq "
        f"FROM {dep.inbox_schema}.deliveries WHERE seq > $1",
        after_seq,
    )
    assert row is not None
    return dict(row)


async def edge_acceptance(pg: asyncpg.Pool, dep: Deployment, sizes: Sizes) -> list[dict[str, Any]]:
    """Per concurrency: GET /healthz, signed Samsara deliveries, bare start_workflow."""
    rows = []
    secret = {"APEX_SAMSARA_WEBHOOK_SECRET": SAMSARA_SECRET}
    assert dep.api is not None
    watch_api = ["--watch", f"api={dep.api.pid}", "--watch", f"postgres={dep.stack.postgres.pid}"]
    watch_temporal = ["--watch", f"temporal={dep.stack.temporal.pid}"]
    for c in CONCURRENCY:
        n = sizes.accept[c]
        warm = min(200, max(10, n // 10))
        console.print(f"  {c} sender(s): {n} x GET /healthz, {n} x POST /webhooks/samsara, {sizes.starts[c]} starts")
        common = ["--concurrency", str(c), "--count", str(n), "--warmup", str(warm), *watch_api]
        healthz = await loadgen("http", dep.url, "--kind", "healthz", *common)
        last_seq = (await inbox_transactions(pg, dep, 0))["last_seq"]
        accept = await loadgen("http", dep.url, "--kind", "samsara", *common, env=secret)
        accept["group_commit"] = await inbox_transactions(pg, dep, last_seq)  # warm-up included
        start = await loadgen(
            "start",
            dep.stack.temporal.address,
            "--concurrency",
            str(c),
            "--count",
            str(sizes.starts[c]),
            *watch_temporal,
        )
        rows.append({"senders": c, "healthz": healthz, "accept": accept, "start_workflow": start})
    return rows


async def backlog_drain(
    pg: asyncpg.Pool, temporal: Client, dep: Deployment, *, keep_worker: bool = False, p0_probe: bool = False
) -> dict[str, Any]:
    """Start one worker on a backlog of Samsara deliveries; time until none is pending.
    With `p0_probe`, Front deliveries go on one after the other while it drains."""
    before = await inbox_state(pg, dep, "samsara")
    backlog = before["pending"]
    console.print(f"  {backlog} deliveries pending; starting one worker ({dep.plugins})")
    spawned = datetime.now(UTC)
    dep.start_worker()
    started = await drain_started(temporal, dep, "samsara")
    assert dep.worker is not None
    watched = {
        "worker": dep.worker.pid,
        "postgres": dep.stack.postgres.pid,
        "redis": dep.stack.redis.pid,
        "temporal": dep.stack.temporal.pid,
    }
    cpu_before = {name: cpu_seconds(pid) for name, pid in watched.items() if pid}
    wall_before = time.monotonic()
    stop = asyncio.Event()
    probe = asyncio.create_task(p0_latency(pg, dep, 10**6, warmup=0, stop=stop)) if p0_probe else None
    try:
        done = await wait_pending_zero(pg, dep, "samsara", timeout=max(300.0, backlog / 10))
    finally:
        stop.set()
    wall = time.monotonic() - wall_before
    cores = {name: round((cpu_seconds(watched[name]) - t) / wall, 2) for name, t in cpu_before.items()}
    finished: datetime = done["last_delivered"]
    drain_s = (finished - started).total_seconds()
    records = int(done["records"]) - int(before["records"])
    result = {
        "plugins": dep.plugins,
        "deliveries": backlog,
        "records": records,
        "worker_start_s": round((started - spawned).total_seconds(), 2),
        "drain_s": round(drain_s, 2),
        "from_spawn_s": round((finished - spawned).total_seconds(), 2),
        "deliveries_per_s": round(backlog / drain_s, 1),
        "records_per_s": round(records / drain_s, 1),
        "cpu_cores": cores,
    }
    if probe is not None:
        result["p0_during"] = await probe
    console.print(
        f"  drained in {drain_s:.1f} s after the drain loop started: {result['deliveries_per_s']} deliveries/s, "
        f"{result['records_per_s']} records/s"
    )
    if not keep_worker:
        dep.stop_worker()
    return result


def front_delivery(n: int) -> tuple[str, bytes, dict[str, str]]:
    """A Front `inbound_received` application webhook (the shape of tests/conftest.py
    `front_event`), signed as Front signs: base64(HMAC-SHA256(secret, "<ms>:" + body))."""
    eid = f"evt_bench{n}_{uuid.uuid4().hex[:12]}"
    text = f"Where is PRO 4417-{n}? The consignee asks for an ETA."
    doc = {
        "type": "inbound_received",
        "authorization": {"id": "cmp_123"},
        "payload": {
            "_links": {"self": f"https://api2.frontapp.com/events/{eid}"},
            "id": eid,
            "type": "inbound_received",
            "emitted_at": time.time(),
            "conversation": {
                "id": f"cnv_bench{n}",
                "subject": "Load 4417 status",
                "status": "unassigned",
                "tags": [],
                "assignee": None,
            },
            "source": {"_meta": {"type": "inboxes"}, "data": [{"id": "inb_1", "name": "Dispatch"}]},
            "target": {
                "_meta": {"type": "message"},
                "data": {
                    "id": f"msg_bench{n}",
                    "type": "email",
                    "is_inbound": True,
                    "created_at": time.time(),
                    "subject": "Load 4417 status",
                    "body": f"<p>{text}</p>",
                    "text": text,
                    "author": None,
                    "recipients": [
                        {"handle": "shipper@acme.example", "role": "from", "name": "Ann Shipper"},
                        {"handle": "dispatch@carrier.example", "role": "to"},
                    ],
                },
            },
        },
    }
    body = json.dumps(doc).encode()
    ts = str(int(time.time() * 1000))
    mac = hmac.new(FRONT_SECRET.encode(), ts.encode() + b":" + body, hashlib.sha256).digest()
    headers = {
        "X-Front-Signature": base64.b64encode(mac).decode(),
        "X-Front-Request-Timestamp": ts,
        "Content-Type": "application/json",
    }
    return eid, body, headers


async def p0_latency(
    pg: asyncpg.Pool, dep: Deployment, count: int, *, warmup: int = 3, stop: asyncio.Event | None = None
) -> dict[str, Any]:
    """Sequential Front deliveries (`count`, or until `stop` is set): 202 → `delivered_at`
    of the inbox row (and → the moment this process saw it delivered, polling every 5 ms)."""
    import aiohttp

    to_delivered: list[float] = []
    to_seen: list[float] = []
    query = f"SELECT status, delivered_at FROM {dep.inbox_schema}.deliveries WHERE source = $1 AND event_id = $2"
    async with aiohttp.ClientSession(dep.url) as http:
        for i in range(count + warmup):
            if stop is not None and stop.is_set():
                break
            eid, body, headers = front_delivery(next(FRONT_NUMBERS))
            async with http.post("/webhooks/frontapp", data=body, headers=headers) as resp:
                await resp.read()
                if resp.status != 202:
                    raise RuntimeError(f"Front delivery answered {resp.status}: {await resp.text()}")
            accepted_wall = time.time()
            accepted = time.perf_counter()
            deadline = accepted + 60
            while True:
                row = await pg.fetchrow(query, "frontapp", eid)
                if row is not None and row["status"] == "delivered":
                    seen = time.perf_counter()
                    break
                if time.perf_counter() > deadline:
                    raise TimeoutError(f"Front delivery {eid} not delivered within 60 s:\n{dep.log_tail('worker')}")
                await asyncio.sleep(0.005)
            if i >= warmup:
                to_delivered.append(max(0.0, row["delivered_at"].timestamp() - accepted_wall))
                to_seen.append(seen - accepted)
            await asyncio.sleep(0.3)  # idle: the drain is back to waiting
    return {
        "to_delivered_at": summary(to_delivered, sum(to_delivered)),
        "to_seen": summary(to_seen, sum(to_seen)),
    }


# -- the run -----------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    import importlib.metadata as md
    import platform

    import psutil

    mem = psutil.virtual_memory()
    me = os.getpid()
    busy = []
    procs = list(psutil.process_iter(["pid", "ppid", "cmdline"]))
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.cpu_percent()  # the first call starts the measurement
    time.sleep(1.0)
    for p in procs:
        try:
            cpu = p.cpu_percent()
            if cpu >= 10 and p.info["pid"] != me:
                busy.append({"cpu_percent": round(cpu), "cmd": " ".join(p.info["cmdline"] or [])[:120]})
        except psutil.Error:
            continue
    packages = [
        "apex-platform",
        "temporalio",
        "litestar",
        "uvicorn",
        "uvloop",
        "asyncpg",
        "aiohttp",
        "qdrant-client",
        "FalkorDB",
        "redis",
        "pgserver",
    ]
    versions = {}
    for name in packages:
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = None
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": _cpu_model(),
        "memory_total_mib": mem.total // 2**20,
        "memory_available_mib": mem.available // 2**20,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "busy_processes": sorted(busy, key=lambda b: -b["cpu_percent"])[:5],
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
    }


@dataclass
class CpuAccount:
    """The machine's busy CPU time against this process tree's own (children reaped), to
    tell how much else ran on the machine during the benchmark."""

    wall: float = field(default_factory=time.monotonic)
    busy: float = 0.0
    own: float = 0.0
    steal: float = 0.0

    def __post_init__(self) -> None:
        self.busy, self.own, self.steal = self._now()

    @staticmethod
    def _now() -> tuple[float, float, float]:
        import psutil

        t = psutil.cpu_times()
        busy = t.user + t.nice + t.system + t.irq + t.softirq
        own = os.times()
        return busy, own.user + own.system + own.children_user + own.children_system, getattr(t, "steal", 0.0)

    def since(self) -> dict[str, float]:
        busy, own, steal = self._now()
        wall = time.monotonic() - self.wall
        return {
            "benchmark_cores": round((own - self.own) / wall, 2),
            "other_cores": round(max(0.0, (busy - self.busy) - (own - self.own)) / wall, 2),
            "steal_cores": round((steal - self.steal) / wall, 2),
        }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown"


async def server_versions(pg: asyncpg.Pool, stack: Stack) -> dict[str, str]:
    import redis.asyncio as aioredis

    out = {"postgres": str(await pg.fetchval("SHOW server_version"))}
    r = aioredis.from_url(stack.redis.url)
    try:
        out["redis"] = str((await r.info("server"))["redis_version"])
    finally:
        await r.aclose()
    from apex_platform.stack.temporal_server import temporal_executable

    done = subprocess.run([str(temporal_executable()), "--version"], capture_output=True, text=True, timeout=30)
    out["temporal_cli"] = done.stdout.strip()
    return out


async def run_all(stack: Stack, sizes: Sizes, scale: float) -> dict[str, Any]:
    pg = await asyncpg.create_pool(stack.postgres.dsn, min_size=1, max_size=2)
    temporal = await Client.connect(stack.temporal.address)
    results: dict[str, Any] = {"scale": scale, "sizes": dataclasses.asdict(sizes)}
    results["servers"] = await server_versions(pg, stack)
    full = Deployment("full", stack, FULL_PLUGINS)
    pgonly = Deployment("pgonly", stack, PG_PLUGINS)
    try:
        console.rule("1. edge acceptance (no worker running)")
        await full.start_api()
        results["edge"] = await edge_acceptance(pg, full, sizes)
        accepted = sum(r["accept"]["statuses"].get("202", 0) for r in results["edge"])
        state = await inbox_state(pg, full, "samsara")
        results["edge_check"] = {"answered_202_measured": accepted, "inbox_pending": state["pending"]}

        console.rule("2a. backlog drain, full stack")
        results["backlog_full"] = await backlog_drain(pg, temporal, full, keep_worker=True, p0_probe=True)

        console.rule("3. P0 latency, idle full stack")
        await asyncio.sleep(2)
        console.print(f"  baseline: {sizes.roundtrips} one-activity workflows, start → result")
        roundtrip = await loadgen("roundtrip", stack.temporal.address, "--count", str(sizes.roundtrips))
        console.print(f"  {sizes.p0} sequential Front deliveries")
        p0 = await p0_latency(pg, full, sizes.p0)
        results["p0"] = {**p0, "baseline_roundtrip": roundtrip}

        full.stop_worker()
        console.print("  reading every record back from every store")
        samsara_keys = await record_keys(pg, full, "samsara")
        front_keys = await record_keys(pg, full, "frontapp")
        results["backlog_full"]["stores"] = await verify_stores(full, samsara_keys)
        results["p0"]["stores"] = await verify_stores(full, front_keys)
        full.stop()

        console.rule("2b. backlog drain, PostgreSQL only")
        await pgonly.start_api()
        n = sizes.pg_backlog
        console.print(f"  accepting {n} deliveries at 100 senders")
        fill = await loadgen(
            "http",
            pgonly.url,
            "--kind",
            "samsara",
            "--concurrency",
            "100",
            "--count",
            str(n),
            env={"APEX_SAMSARA_WEBHOOK_SECRET": SAMSARA_SECRET},
        )
        results["backlog_pg"] = await backlog_drain(pg, temporal, pgonly)
        results["backlog_pg"]["fill"] = fill
        results["backlog_pg"]["stores"] = await verify_stores(pgonly, await record_keys(pg, pgonly, "samsara"))
    finally:
        full.stop()
        pgonly.stop()
        await pg.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies the size of every scenario")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (logs, data)")
    parser.add_argument(
        "--render-only", action="store_true", help=f"only render {DOCS.relative_to(ROOT)} from {RESULTS.name}"
    )
    args = parser.parse_args()
    if args.render_only:
        results = json.loads(RESULTS.read_text())
        render_tables(console, results)
        DOCS.write_text(render_markdown(results))
        console.print(f"wrote {DOCS}")
        return

    sizes = Sizes.scaled(args.scale)
    began = time.monotonic()
    base = Path(tempfile.mkdtemp(prefix="apex-bench-"))
    console.print(f"scale {args.scale}; servers and logs under {base}")
    info = machine()
    account = CpuAccount()
    stack = Stack(base)
    ok = False
    try:
        stack.start()
        results = asyncio.run(run_all(stack, sizes, args.scale))
        ok = True
    finally:
        stack.stop()
        if ok and not args.keep:
            shutil.rmtree(base, ignore_errors=True)
        elif not ok:
            console.print(f"[red]failed; logs are under {base}")
    info["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    info["cpu_during_run"] = account.since()  # every child has been reaped by now
    results = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "duration_s": round(time.monotonic() - began, 1),
        "machine": info,
        **results,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, default=str) + "\n")
    render_tables(console, results)
    DOCS.write_text(render_markdown(results))
    console.print(f"wrote {RESULTS.relative_to(ROOT)} and {DOCS.relative_to(ROOT)} in {results['duration_s']:.0f} s")
    sys.stdout.flush()
    os._exit(0)  # sidestep the Temporal SDK's occasional abort at interpreter exit


if __name__ == "__main__":
    main()
