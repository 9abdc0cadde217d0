"""Apex benchmarks (issue 15): each scenario beside a baseline measured in the same run.

    nox -s bench                      # everything at scale 1 (under 15 minutes on 2 cores)
    nox -s bench -- --scale 0.1       # a quick look
    python benchmarks/run.py --render-only   # docs/benchmarks.md again from results/latest.json
    python benchmarks/run.py --scale 0.01 --results /tmp/r.json --docs -   # a smoke, nothing rewritten

Everything is real and started here on free ports: a Temporal dev server, PostgreSQL
(+pgvector), Redis (+FalkorDB), Qdrant in local mode under the run's temp folder; the API
and the worker are `apex-platform api` / `apex-platform worker` child processes; the load
comes from `loadgen.py`, another child process.

1. Edge acceptance: signed Samsara RouteStopArrival deliveries (~4.7 KB, a fresh eventId
   and stop each) at 1, 10 and 100 closed-loop senders, no worker running: accepted/s and
   time-to-202. Baselines: `GET /healthz` of the same API at the same concurrency, a bare
   `client.start_workflow` loop, and one- and three-activity workflows with 64 in flight
   against the same Temporal server.
2. End to end: (a) what step 1 accepted, drained by one worker started afterwards, until
   the inbox says every delivery is delivered (samsara → postgres, redis, graph, qdrant,
   entities and embeddings enrichers); (b) the same with PostgreSQL as the only store, and
   dlt loading the same records into the same PostgreSQL; (c) the saga alone, no Temporal
   (`baselines.py saga`); (d) a stream (Samsara's vehicle stats feed) and a poller (Plaid)
   from fake vendors in another process (`vendors.py`). Every record is then looked up in
   every store.
3. P0 latency: sequential Front deliveries on the idle full stack, 202 → the inbox row's
   `delivered_at` (committed after the saga wrote every store), and again while the
   full-stack backlog of step 2 drains. Baseline: a bare one-activity workflow, start →
   result.
4. Scale-out: one backlog with one API and one worker, then with two of each and the
   source's drain in two partitions (APEX_TEMPORAL_DRAIN_PARTITIONS=2).
5. Footprint: RSS, CPU seconds per 1,000 deliveries, Temporal history and store bytes.

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
PROFILE: Path | None = None  # --profile: py-spy records every worker into this folder
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
    flights: dict[int, int]  # activities per workflow -> workflows, 64 in flight
    saga: int  # deliveries through the saga alone
    feed_vehicles: int  # Samsara feed: vehicles of `feed_points` GPS points each
    feed_points: int
    plaid: int  # transactions of the Plaid poller's Item
    scale_backlog: int  # deliveries drained by one, then by two workers

    @classmethod
    def scaled(cls, scale: float) -> Sizes:
        def n(x: int) -> int:
            return max(10, round(x * scale))

        # at scale 1 about ten minutes on an idle 2-core machine, so that `nox -s bench`
        # stays under fifteen on a busier one; --scale 2 for longer runs
        return cls(
            accept={1: n(500), 10: n(2000), 100: n(6000)},
            starts={1: n(200), 10: n(600), 100: n(1200)},
            pg_backlog=n(5000),
            p0=n(50),
            roundtrips=n(50),
            flights={1: n(600), 3: n(300)},
            saga=n(3000),
            feed_vehicles=max(2, round(20 * min(1.0, scale * 10))),
            feed_points=n(300),
            plaid=n(3000),
            scale_backlog=n(4000),
        )


FLIGHT = 64  # workflows in flight in the bare Temporal baselines


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

    def __init__(self, name: str, stack: Stack, plugins: str, *, partitions: int = 1) -> None:
        self.name = name
        self.partitions = partitions
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
            "APEX_TEMPORAL_DRAIN_PARTITIONS": str(partitions),
        }
        self.apis: list[subprocess.Popen[bytes]] = []
        self.urls: list[str] = []
        self.workers: list[subprocess.Popen[bytes]] = []
        self.profilers: list[subprocess.Popen[bytes]] = []

    @property
    def api(self) -> subprocess.Popen[bytes] | None:
        return self.apis[0] if self.apis else None

    @property
    def worker(self) -> subprocess.Popen[bytes] | None:
        return self.workers[0] if self.workers else None

    @property
    def sinks(self) -> list[str]:
        return [p for p in self.plugins.split(",") if p in ("postgres", "redis", "graph", "qdrant")]

    def _spawn(self, role: str, index: int, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
        with (self.dir / f"{role}{index}.log").open("ab") as log:
            return subprocess.Popen(
                [CLI, role], env=dict(env), cwd=self.dir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def log_tail(self, role: str) -> str:
        path = self.dir / f"{role}0.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    async def start_api(self) -> None:
        """One more API process (the first on `self.port`, the others on ports of their own)."""
        port = self.port if not self.apis else free_port()
        url = f"http://127.0.0.1:{port}"
        proc = self._spawn("api", len(self.apis), {**self.env, "APEX_API_PORT": str(port)})
        self.apis.append(proc)
        deadline = time.monotonic() + 90
        async with httpx.AsyncClient(timeout=2) as http:
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    raise RuntimeError(f"the API exited:\n{self.log_tail('api')}")
                try:
                    if (await http.get(f"{url}/healthz")).status_code == 200:
                        self.urls.append(url)
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)
        raise TimeoutError(f"the API did not answer within 90 s:\n{self.log_tail('api')}")

    def start_worker(self) -> None:
        index = len(self.workers)
        proc = self._spawn("worker", index, self.env)
        self.workers.append(proc)
        if PROFILE is not None:  # py-spy attached from outside: it writes its file when the worker exits
            PROFILE.mkdir(parents=True, exist_ok=True)
            out = PROFILE / f"{self.name}-worker{index}-{proc.pid}.txt"
            spy = str(Path(sys.executable).parent / "py-spy")
            cmd = [
                spy,
                "record",
                "--pid",
                str(proc.pid),
                "--format",
                "raw",
                "--rate",
                "97",
                "--nonblocking",
                "-o",
                str(out),
            ]
            self.profilers.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

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
        for proc in self.workers:  # all at once: they drain their activities in parallel
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.workers:
            self._stop(proc)
        self.workers.clear()
        for spy in self.profilers:
            with contextlib.suppress(subprocess.TimeoutExpired):
                spy.wait(30)
        self.profilers.clear()

    def stop(self) -> None:
        self.stop_worker()
        for proc in self.apis:
            self._stop(proc)
        self.apis.clear()
        self.urls.clear()

    def worker_alive(self) -> None:
        for proc in self.workers:
            if proc.poll() is not None:
                raise RuntimeError(f"a worker exited:\n{self.log_tail('worker')}")

    def drain_id(self, source: str) -> str:
        """The source's drain loop (the first partition's with several)."""
        return self.drain_ids(source)[0]

    def drain_ids(self, source: str) -> list[str]:
        """Every drain loop of the source: one, or one per partition (`:{k}of{P}`)."""
        if self.partitions == 1:
            return [f"{self.name}:drain:{source}"]
        return [f"{self.name}:drain:{source}:{k}of{self.partitions}" for k in range(self.partitions)]


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
        dep.worker_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{state['pending']} {source} deliveries still pending after {timeout:.0f} s")
        if time.monotonic() - last_report > 10:
            console.print(f"    … {state['delivered']} delivered, {state['pending']} pending")
            last_report = time.monotonic()
        await asyncio.sleep(0.2)


async def drain_started(temporal: Client, dep: Deployment, source: str, timeout: float = 120) -> datetime:
    """When the worker started the source's drain loop (the workflow's start time; with
    partitions, the first loop's)."""
    deadline = time.monotonic() + timeout
    starts: dict[str, datetime] = {}
    wanted = dep.drain_ids(source)
    while time.monotonic() < deadline:
        dep.worker_alive()
        for wf_id in wanted:
            if wf_id in starts:
                continue
            try:
                starts[wf_id] = (await temporal.get_workflow_handle(wf_id).describe()).start_time
            except Exception:
                await asyncio.sleep(0.05)
        if len(starts) == len(wanted):
            return min(starts.values())
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


class RssSampler:
    """The largest resident set (process and children) of each watched process, sampled
    every 0.25 s while it runs."""

    def __init__(self, pids: Mapping[str, int]) -> None:
        self.pids = dict(pids)
        self.peak: dict[str, int] = dict.fromkeys(self.pids, 0)
        self._task: asyncio.Task[None] | None = None

    def __enter__(self) -> RssSampler:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *_: object) -> None:
        if self._task is not None:
            self._task.cancel()
        self.sample()

    def sample(self) -> None:
        for name, pid in self.pids.items():
            self.peak[name] = max(self.peak[name], rss_bytes(pid))

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(0.25)

    def mib(self) -> dict[str, float]:
        return {name: round(b / 2**20, 1) for name, b in self.peak.items()}


def rss_bytes(pid: int) -> int:
    import psutil

    try:
        proc = psutil.Process(pid)
        total = proc.memory_info().rss
        for child in proc.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += child.memory_info().rss
        return int(total)
    except psutil.Error:
        return 0


async def backlog_drain(
    pg: asyncpg.Pool,
    temporal: Client,
    dep: Deployment,
    *,
    workers: int = 1,
    keep_worker: bool = False,
    p0_probe: bool = False,
) -> dict[str, Any]:
    """Start `workers` worker processes on a backlog of Samsara deliveries; time until none
    is pending. With `p0_probe`, Front deliveries go on one after the other while it drains."""
    before = await inbox_state(pg, dep, "samsara")
    backlog = before["pending"]
    console.print(f"  {backlog} deliveries pending; starting {workers} worker(s) ({dep.plugins})")
    spawned = datetime.now(UTC)
    for _ in range(workers):
        dep.start_worker()
    started = await drain_started(temporal, dep, "samsara")
    watched = {f"worker{i}" if workers > 1 else "worker": w.pid for i, w in enumerate(dep.workers)}
    watched |= {"postgres": dep.stack.postgres.pid, "redis": dep.stack.redis.pid, "temporal": dep.stack.temporal.pid}
    cpu_before = {name: cpu_seconds(pid) for name, pid in watched.items() if pid}
    wall_before = time.monotonic()
    stop = asyncio.Event()
    probe = asyncio.create_task(p0_latency(pg, dep, 10**6, warmup=0, stop=stop)) if p0_probe else None
    rss = RssSampler({name: pid for name, pid in watched.items() if name.startswith("worker") and pid})
    try:
        with rss:
            done = await wait_pending_zero(pg, dep, "samsara", timeout=max(300.0, backlog / 10))
    finally:
        stop.set()
    wall = time.monotonic() - wall_before
    cpu_s = {name: round(cpu_seconds(watched[name]) - t, 2) for name, t in cpu_before.items()}
    cores = {name: round(v / wall, 2) for name, v in cpu_s.items()}
    finished: datetime = done["last_delivered"]
    drain_s = (finished - started).total_seconds()
    records = int(done["records"]) - int(before["records"])
    result = {
        "plugins": dep.plugins,
        "workers": workers,
        "deliveries": backlog,
        "records": records,
        "worker_start_s": round((started - spawned).total_seconds(), 2),
        "drain_s": round(drain_s, 2),
        "from_spawn_s": round((finished - spawned).total_seconds(), 2),
        "deliveries_per_s": round(backlog / drain_s, 1),
        "records_per_s": round(records / drain_s, 1),
        "cpu_cores": cores,
        "cpu_s": cpu_s,
        "worker_rss_peak_mib": rss.mib(),
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


async def child_json(script: str, *args: str, env: Mapping[str, str], timeout: float = 900) -> dict[str, Any]:
    """Run one of the benchmark's scripts in its own process and return the JSON it prints."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(HERE / script),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(env),
        cwd=HERE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{script} {' '.join(args)} failed ({proc.returncode}):\n{err.decode()[-3000:]}")
    doc: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return doc


async def temporal_baselines(stack: Stack, sizes: Sizes) -> dict[str, Any]:
    """Bare Temporal: one- and three-activity workflows with FLIGHT in flight."""
    out: dict[str, Any] = {}
    for activities, count in sizes.flights.items():
        console.print(f"  {count} {activities}-activity workflows, {FLIGHT} in flight")
        out[str(activities)] = await loadgen(
            "workflows",
            stack.temporal.address,
            "--activities",
            str(activities),
            "--concurrency",
            str(FLIGHT),
            "--count",
            str(count),
            "--watch",
            f"temporal={stack.temporal.pid}",
        )
    return out


async def history_bytes(temporal: Client, workflow_id: str) -> dict[str, int]:
    """Bytes of the stored history events (payloads as stored: encrypted) of every run of a workflow."""
    total = runs = events = 0
    async for wf in temporal.list_workflows(f"WorkflowId = '{workflow_id}'"):
        history = await temporal.get_workflow_handle(wf.id, run_id=wf.run_id).fetch_history()
        total += sum(e.ByteSize() for e in history.events)
        events += len(history.events)
        runs += 1
    return {"bytes": total, "runs": runs, "events": events}


async def schema_bytes(pg: asyncpg.Pool, schema: str) -> int:
    """Tables of a schema with their indexes and TOAST."""
    value = await pg.fetchval(
        "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind = 'r'",
        schema,
    )
    return int(value)


async def redis_bytes(stack: Stack, dep: Deployment) -> dict[str, int]:
    """MEMORY USAGE of the sink's record keys and commit ledger, and of the graph's key."""
    import redis.asyncio as aioredis

    r = aioredis.from_url(stack.redis.url)
    out = {"records": 0, "ledger": 0, "graph": 0, "keys": 0}
    try:
        for part, pattern in (("records", f"{dep.name}:rec:*"), ("ledger", f"{dep.name}:done:*")):
            batch: list[bytes] = []
            async for key in r.scan_iter(match=pattern, count=1000):
                batch.append(key)
                if len(batch) >= 500:
                    out[part] += await _memory(r, batch)
                    out["keys"] += len(batch)
                    batch = []
            out[part] += await _memory(r, batch)
            out["keys"] += len(batch)
        out["graph"] = await graph_bytes(r, dep.name)
    finally:
        await r.aclose()
    return out


async def graph_bytes(r: Any, name: str) -> int:
    """FalkorDB's own estimate (GRAPH.MEMORY USAGE, whole MB: `total_graph_sz_mb`); a
    module key reports nothing to MEMORY USAGE."""
    with contextlib.suppress(Exception):
        reply = await r.execute_command("GRAPH.MEMORY", "USAGE", name)
        fields = dict(zip(reply[::2], reply[1::2], strict=False))
        for key, value in fields.items():
            if (key.decode() if isinstance(key, bytes) else str(key)) == "total_graph_sz_mb":
                return int(float(value) * 2**20)
    return int(await r.execute_command("MEMORY", "USAGE", name) or 0)


async def _memory(r: Any, keys: list[bytes]) -> int:
    if not keys:
        return 0
    pipe = r.pipeline(transaction=False)
    for key in keys:
        pipe.execute_command("MEMORY", "USAGE", key)
    return sum(int(v or 0) for v in await pipe.execute())


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


async def footprint(pg: asyncpg.Pool, temporal: Client, dep: Deployment, results: dict[str, Any]) -> dict[str, Any]:
    """Memory, CPU per 1,000 events and bytes per event of the full deployment's run."""
    edge = next(r for r in results["edge"] if r["senders"] == 100)["accept"]
    drain = results["backlog_full"]
    per_k_intake = {
        name: round(edge["cpu_cores"].get(name, 0.0) * edge["elapsed_s"] / edge["count"] * 1000, 3)
        for name in ("api", "postgres")
    }
    per_k_drain = {name: round(v / drain["deliveries"] * 1000, 3) for name, v in drain["cpu_s"].items()}
    history = {src: await history_bytes(temporal, dep.drain_id(src)) for src in ("samsara", "frontapp")}
    deliveries = await pg.fetchval(f"SELECT count(*) FROM {dep.inbox_schema}.deliveries")
    records = await pg.fetchval(f"SELECT count(*) FROM {dep.sink_schema}.records")
    stores = {
        "postgres": await schema_bytes(pg, dep.sink_schema),
        "inbox": await schema_bytes(pg, dep.inbox_schema),
        **{f"redis_{k}": v for k, v in (await redis_bytes(dep.stack, dep)).items() if k != "keys"},
        "qdrant": folder_bytes(dep.qdrant_path),
    }
    return {
        "rss_mib": results.get("rss_mib", {}),
        "cpu_s_per_1000_intake": per_k_intake,
        "cpu_s_per_1000_drain": per_k_drain,
        "history": history,
        "history_bytes_per_delivery": round(sum(h["bytes"] for h in history.values()) / max(1, int(deliveries)), 1),
        "deliveries": int(deliveries),
        "records": int(records),
        "store_bytes": stores,
        "store_bytes_per_record": {
            k: round(v / max(1, int(deliveries if k == "inbox" else records)), 1) for k, v in stores.items()
        },
    }


async def dlt_baseline(stack: Stack, deliveries: int) -> dict[str, Any]:
    console.print(f"  dlt: the records of {deliveries} deliveries, merge on (source, id), same PostgreSQL")
    work = stack.base / "dlt"
    work.mkdir(exist_ok=True)
    return await child_json(
        "baselines.py",
        "dlt",
        "--deliveries",
        str(deliveries),
        "--dsn",
        stack.postgres.dsn,
        "--dataset",
        "bench_dlt",
        "--workdir",
        str(work),
        env={**_clean_env(), "APEX_SAMSARA_WEBHOOK_SECRET": SAMSARA_SECRET, "APEX_PLUGINS": "samsara"},
    )


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("APEX_")}


async def saga_alone(stack: Stack, sizes: Sizes) -> dict[str, Any]:
    """The drain's parse, enrich and saga steps in one process, no Temporal, no inbox, into
    the four stores of a deployment of its own; then every record read back."""
    dep = Deployment("saga", stack, "samsara,postgres,redis,graph,qdrant,entities,embeddings")
    keys_file = dep.dir / "keys.json"
    console.print(f"  {sizes.saga} deliveries through parse → enrich → saga, batches of 1,000 deliveries")
    doc = await child_json(
        "baselines.py", "saga", "--deliveries", str(sizes.saga), "--keys-out", str(keys_file), env=dep.env
    )
    keys = [RecordKey(s, i) for s, i in json.loads(keys_file.read_text())]
    doc["stores"] = await verify_stores(dep, keys)
    console.print(f"  {doc['records_per_s']} records/s in all, {doc['saga_records_per_s']} records/s in the saga")
    return doc


@contextlib.asynccontextmanager
async def vendor(kind: str, *args: str, expected: Path) -> Any:
    """A fake vendor in its own process (benchmarks/vendors.py) for as long as the block runs."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(HERE / "vendors.py"),
        kind,
        *args,
        "--expected-out",
        str(expected),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=HERE,
        env=_clean_env(),
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 120)
        if not line:
            raise RuntimeError(f"the fake {kind} did not start")
        yield json.loads(line)["url"]
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def cli(dep: Deployment, *args: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        CLI, *args, env=dep.env, cwd=dep.dir, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    _, err = await asyncio.wait_for(proc.communicate(), 120)
    if proc.returncode != 0:
        raise RuntimeError(f"apex-platform {' '.join(args)} failed: {err.decode()[-2000:]}")


async def wait_stored(pg: asyncpg.Pool, dep: Deployment, keys: Sequence[RecordKey], timeout: float) -> float:
    """Seconds until the PostgreSQL sink holds every key (the saga writes every store or none)."""
    source = keys[0].source
    ids = [k.id for k in keys]
    began = time.monotonic()
    last_report = began
    while True:
        have = await pg.fetchval(
            f"SELECT count(*) FROM {dep.sink_schema}.records WHERE source = $1 AND id = ANY($2::text[])", source, ids
        )
        if have >= len(ids):
            return time.monotonic() - began
        dep.worker_alive()
        now = time.monotonic()
        if now - began > timeout:
            raise TimeoutError(f"{have}/{len(ids)} {source} records stored after {timeout:.0f} s")
        if now - last_report > 10:
            console.print(f"    … {have}/{len(ids)} {source} records stored")
            last_report = now
        await asyncio.sleep(0.2)


async def feeds(pg: asyncpg.Pool, stack: Stack, sizes: Sizes) -> dict[str, Any]:
    """The Samsara vehicle stats feed (a stream) and a Plaid Item (a poller), each from its
    fake vendor in another process, into the four stores; every record then read back."""
    from vendors import plaid_env, samsara_env

    dep = Deployment("feeds", stack, "samsara,plaid,postgres,redis,graph,qdrant,entities,embeddings")
    out: dict[str, Any] = {}
    feed_file, plaid_file = dep.dir / "feed-keys.json", dep.dir / "plaid-keys.json"
    feed_args = ("--vehicles", str(sizes.feed_vehicles), "--points", str(sizes.feed_points))
    async with (
        vendor("samsara-feed", *feed_args, expected=feed_file) as feed_url,
        vendor("plaid", "--transactions", str(sizes.plaid), expected=plaid_file) as plaid_url,
    ):
        dep.env.update(samsara_env(feed_url) | plaid_env(plaid_url))
        dep.start_worker()
        await asyncio.sleep(3)  # the worker connects and polls its queues
        assert dep.worker is not None
        out["worker_rest_mib"] = round(rss_bytes(dep.worker.pid) / 2**20, 1)
        try:
            for name, source, keys_file in (("stream", "samsara", feed_file), ("poll", "plaid", plaid_file)):
                keys = [RecordKey(s, i) for s, i in json.loads(keys_file.read_text())]
                console.print(f"  {name}: {len(keys)} {source} records at the fake vendor; apex-platform sources start")
                assert dep.worker is not None
                before = cpu_seconds(dep.worker.pid)
                began = time.monotonic()
                await cli(dep, "sources", "start", source)
                seconds = await wait_stored(pg, dep, keys, timeout=max(300.0, len(keys) / 20))
                cpu = cpu_seconds(dep.worker.pid) - before
                await cli(dep, "sources", "stop", source)
                out[name] = {
                    "source": source,
                    "records": len(keys),
                    "seconds": round(seconds, 2),
                    "from_command_s": round(time.monotonic() - began, 2),
                    "records_per_s": round(len(keys) / seconds, 1) if seconds else 0.0,
                    "worker_cores": round(cpu / seconds, 2) if seconds else 0.0,
                }
                out[name]["keys"] = keys
                console.print(f"  {name}: {out[name]['records_per_s']} records/s")
        finally:
            dep.stop()
    for name in ("stream", "poll"):
        out[name]["stores"] = await verify_stores(dep, out[name].pop("keys"))
    return out


async def delivered_by(pg: asyncpg.Pool, dep: Deployment, source: str) -> dict[str, int]:
    """Deliveries per drain loop that delivered them (the inbox rows' workflow id)."""
    rows = await pg.fetch(
        f"""SELECT workflow_id, count(*) AS n FROM {dep.inbox_schema}.deliveries
            WHERE source = $1 AND status = 'delivered' GROUP BY workflow_id ORDER BY workflow_id""",
        source,
    )
    return {str(r["workflow_id"]): int(r["n"]) for r in rows}


SCALE_PLUGINS = "samsara,postgres,redis,graph,entities,embeddings"
"""Qdrant in local mode is one process's folder: two workers need a Qdrant server, so the
scale-out pair runs on the other three stores, both halves alike."""


#: drain loops of the source in the scale-out pair's second half (two workers)
SCALE_PARTITIONS = 2


async def scale_out(pg: asyncpg.Pool, temporal: Client, stack: Stack, deliveries: int) -> dict[str, Any]:
    """The same backlog twice: one API and one worker (one drain loop), then two APIs and
    two workers with the source's drain in `SCALE_PARTITIONS` partitions."""
    out: dict[str, Any] = {}
    for n in (1, 2):
        partitions = 1 if n == 1 else SCALE_PARTITIONS
        dep = Deployment(f"scale{n}", stack, SCALE_PLUGINS, partitions=partitions)
        out[f"load_average_{n}"] = [round(x, 2) for x in os.getloadavg()]
        try:
            for _ in range(n):
                await dep.start_api()
            console.print(f"  accepting {deliveries} deliveries at 100 senders over {n} API(s)")
            watch = [a for i, api in enumerate(dep.apis) for a in ("--watch", f"api{i}={api.pid}")]
            fill = await loadgen(
                "http",
                ",".join(dep.urls),
                "--kind",
                "samsara",
                "--concurrency",
                "100",
                "--count",
                str(deliveries),
                *watch,
                env={"APEX_SAMSARA_WEBHOOK_SECRET": SAMSARA_SECRET},
            )
            result = await backlog_drain(pg, temporal, dep, workers=n)
            result["fill"] = fill
            result["drain_partitions"] = partitions
            result["by_partition"] = await delivered_by(pg, dep, "samsara")
            result["stores"] = await verify_stores(dep, await record_keys(pg, dep, "samsara"))
        finally:
            dep.stop()
        out[str(n)] = result
    one, two = out["1"]["deliveries_per_s"], out["2"]["deliveries_per_s"]
    out["ratio"] = round(two / one, 2) if one else 0.0
    console.print(f"  two workers ÷ one: {out['ratio']}x")
    return out


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


SCENARIOS = ("full", "pg", "saga", "feeds", "scale")
"""`--only` groups: full = edge, bare Temporal, 2a, P0, footprint; pg = 2b and dlt."""


async def run_all(stack: Stack, sizes: Sizes, scale: float, only: Sequence[str] = SCENARIOS) -> dict[str, Any]:
    pg = await asyncpg.create_pool(stack.postgres.dsn, min_size=1, max_size=2)
    temporal = await Client.connect(stack.temporal.address)
    results: dict[str, Any] = {"scale": scale, "sizes": dataclasses.asdict(sizes)}
    results["servers"] = await server_versions(pg, stack)
    full = Deployment("full", stack, FULL_PLUGINS)
    pgonly = Deployment("pgonly", stack, PG_PLUGINS)
    rss: dict[str, float] = {}
    results["rss_mib"] = rss
    loads: dict[str, list[float]] = {}
    results["load_average"] = loads  # 1, 5, 15 minutes, when each scenario starts

    began = time.monotonic()
    started: dict[str, float] = {}
    results["started_after_s"] = started  # when each scenario started, from the first server up

    def mark(scenario: str) -> None:
        loads[scenario] = [round(x, 2) for x in os.getloadavg()]
        started[scenario] = round(time.monotonic() - began, 1)

    try:
        if "full" in only:
            console.rule("1. edge acceptance (no worker running)")
            mark("edge")
            await full.start_api()
            assert full.api is not None
            await asyncio.sleep(1)
            rss["api_rest"] = round(rss_bytes(full.api.pid) / 2**20, 1)
            with RssSampler({"api": full.api.pid}) as api_rss:
                results["edge"] = await edge_acceptance(pg, full, sizes)
            rss["api_load_peak"] = api_rss.mib()["api"]
            accepted = sum(r["accept"]["statuses"].get("202", 0) for r in results["edge"])
            state = await inbox_state(pg, full, "samsara")
            results["edge_check"] = {"answered_202_measured": accepted, "inbox_pending": state["pending"]}

            console.rule("1b. bare Temporal: workflows with 64 in flight")
            mark("temporal")
            results["temporal"] = await temporal_baselines(stack, sizes)

            console.rule("2a. backlog drain, full stack (the high-rate webhook source end to end)")
            mark("backlog_full")
            results["backlog_full"] = await backlog_drain(pg, temporal, full, keep_worker=True, p0_probe=True)
            rss["worker_load_peak"] = results["backlog_full"]["worker_rss_peak_mib"]["worker"]

            console.rule("3. P0 latency, idle full stack")
            mark("p0")
            await asyncio.sleep(2)
            assert full.worker is not None
            rss["worker_idle_after_drain"] = round(rss_bytes(full.worker.pid) / 2**20, 1)
            console.print(f"  baseline: {sizes.roundtrips} one-activity workflows, start → result")
            roundtrip = await loadgen("roundtrip", stack.temporal.address, "--count", str(sizes.roundtrips))
            console.print(f"  {sizes.p0} sequential Front deliveries")
            p0 = await p0_latency(pg, full, sizes.p0)
            results["p0"] = {**p0, "baseline_roundtrip": roundtrip}

            console.rule("5. footprint of the full deployment")
            results["footprint"] = await footprint(pg, temporal, full, results)
            full.stop_worker()
            console.print("  reading every record back from every store")
            samsara_keys = await record_keys(pg, full, "samsara")
            front_keys = await record_keys(pg, full, "frontapp")
            results["backlog_full"]["stores"] = await verify_stores(full, samsara_keys)
            results["p0"]["stores"] = await verify_stores(full, front_keys)
            full.stop()

        if "pg" in only:
            console.rule("2b. backlog drain, PostgreSQL only; dlt on the same records")
            mark("backlog_pg")
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
            pgonly.stop()
            results["dlt"] = await dlt_baseline(stack, n)

        if "saga" in only:
            console.rule("2c. the saga alone: parse, enrich, saga into four stores, no Temporal")
            mark("saga_alone")
            results["saga_alone"] = await saga_alone(stack, sizes)

        if "feeds" in only:
            console.rule("2d. a stream (Samsara feed) and a poller (Plaid) from fake vendors, four stores")
            mark("feeds")
            results["feeds"] = await feeds(pg, stack, sizes)
            rss["worker_rest"] = results["feeds"].pop("worker_rest_mib", 0.0)

        if "scale" in only:
            console.rule("4. scale-out: one API and worker, then two of each, the same backlog")
            results["scale_out"] = await scale_out(pg, temporal, stack, sizes.scale_backlog)
    finally:
        full.stop()
        pgonly.stop()
        await pg.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies the size of every scenario")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (logs, data)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where the JSON goes")
    parser.add_argument("--docs", type=Path, default=DOCS, help="where the page goes ('-': nowhere)")
    parser.add_argument(
        "--only", default=",".join(SCENARIOS), help=f"comma-separated scenario groups of {', '.join(SCENARIOS)}"
    )
    parser.add_argument("--profile", type=Path, help="record each worker with py-spy into this folder (raw stacks)")
    parser.add_argument("--render-only", action="store_true", help="only render the page from the results JSON")
    args = parser.parse_args()
    docs: Path | None = None if str(args.docs) == "-" else args.docs
    global PROFILE
    PROFILE = args.profile
    if args.render_only:
        results = json.loads(args.results.read_text())
        render_tables(console, results)
        if docs is not None:
            docs.write_text(render_markdown(results))
            console.print(f"wrote {docs}")
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
        results = asyncio.run(run_all(stack, sizes, args.scale, args.only.split(",")))
        ok = True
    finally:
        stack.stop()
        if ok and not args.keep:
            shutil.rmtree(base, ignore_errors=True)
        elif not ok:
            console.print(f"[red]failed; logs are under {base}")
            sys.stdout.flush()
    info["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    info["cpu_during_run"] = account.since()  # every child has been reaped by now
    results = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "duration_s": round(time.monotonic() - began, 1),
        "machine": info,
        **results,
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(results, indent=2, default=str) + "\n")
    render_tables(console, results)
    if docs is not None:
        docs.write_text(render_markdown(results))
    console.print(f"wrote {args.results} and {docs or 'no page'} in {results['duration_s']:.0f} s")
    sys.stdout.flush()
    os._exit(0)  # sidestep the Temporal SDK's occasional abort at interpreter exit


if __name__ == "__main__":
    main()
