"""Apex benchmarks: figures and ratios against baselines measured in the same run.

    nox -s bench                       # everything, default sizes
    nox -s bench -- --events 2000      # more events

What is measured (all real: Temporal dev server, PostgreSQL+pgvector, Redis+FalkorDB,
Qdrant local, the Litestar API over HTTP):

1. webhook ingestion: events/s end to end (HTTP 202 → record in every store) for a
   batched source (per-source accumulator workflow) against the same source with one
   workflow per event (the baseline), and both against the field rate of Samsara
   (1,000 events/min) — the target is ≥ 50x the field rate;
2. the saga alone: records/s written to the four stores in batches of 100 against
   batches of 1 (the baseline).

Timings are noisy on a shared 2-core machine; read the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from apex_platform.models import Entity, RecordKey

console = Console()
FIELD_RATE_PER_S = 1000 / 60  # Samsara in the field: ~1,000 events a minute


def event(i: int, run: str) -> bytes:
    t = int(time.time() * 1e6) + i
    return json.dumps({"id": f"{run}-{i}", "t": t, "vehicle": i % 50, "lat": 33.7 + i * 1e-4, "lon": -84.4}).encode()


async def wait_landed(sink: Any, keys: Sequence[RecordKey], timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = await sink.read(list(keys))
        if len(found) >= len(keys):
            return time.monotonic()
        await asyncio.sleep(0.1)
    raise TimeoutError(f"only part of {len(keys)} records landed in {timeout}s")


async def webhook_rate(url: str, source: str, n: int, sink: Any, concurrency: int) -> dict[str, float]:
    """aiohttp as the load generator: httpx tops out near 700 requests/s on this machine,
    which would measure the client rather than Apex."""
    import aiohttp

    run = f"{source}-{time.time_ns()}"
    bodies = [event(i, run) for i in range(n)]
    sem = asyncio.Semaphore(concurrency)
    started = time.monotonic()
    async with aiohttp.ClientSession(url, timeout=aiohttp.ClientTimeout(total=120)) as http:

        async def send(body: bytes) -> None:
            async with sem, http.post(f"/webhooks/{source}", data=body) as resp:
                if resp.status not in (200, 202):
                    raise RuntimeError(f"{resp.status}: {await resp.text()}")

        await asyncio.gather(*(send(b) for b in bodies))
    accepted = time.monotonic()
    keys = [RecordKey(source, f"{run}-{i}") for i in range(n)]
    landed = await wait_landed(sink, keys, timeout=max(120.0, n / 2))
    return {
        "events": n,
        "accept_s": accepted - started,
        "total_s": landed - started,
        "rate": n / (landed - started),
    }


async def saga_rate(runtime: Any, n: int, batch: int) -> float:
    from apex_platform.models import Record

    run = f"saga{time.time_ns()}"
    records = [
        Record(
            source="bench_single",
            kind="bench.saga",
            id=f"{run}-{i}",
            version=1,
            occurred_at=datetime.now(UTC),
            text=f"record {i}",
            entities=(Entity(type="Vehicle", key=str(i % 50)),),
        )
        for i in range(n)
    ]
    started = time.monotonic()
    for i in range(0, n, batch):
        await runtime.saga.write(records[i : i + batch])
    return n / (time.monotonic() - started)


async def main_async(args: argparse.Namespace) -> int:
    """The API and the worker run as separate processes, as deployed; this process only
    sends the traffic and watches PostgreSQL for the records."""
    from apex_platform.runtime import Runtime
    from apex_platform.stack import PostgresServer, RedisServer, TemporalDevServer, free_port
    from apex_sink_postgres import PostgresSink, PostgresSinkSettings

    base = Path(tempfile.mkdtemp(prefix="apex-bench-"))
    temporal = TemporalDevServer(base / "temporal", port=free_port(), ui_port=None)
    postgres = PostgresServer(base / "postgres", port=free_port())
    redis = RedisServer(base / "redis", port=free_port())
    servers = [temporal, postgres, redis]
    procs: list[subprocess.Popen[bytes]] = []
    for server in servers:
        server.start()
    try:
        redis_hostport = redis.url.removeprefix("redis://").split("/", 1)[0]
        port = free_port()
        env = {
            **os.environ,
            "APEX_HOME": str(base / "home"),
            "APEX_TEMPORAL_ADDRESS": temporal.address,
            "APEX_POSTGRES_DSN": postgres.dsn,
            "APEX_REDIS_URL": redis.url,
            "APEX_GRAPH_URI": f"falkordb://{redis_hostport}",
            "APEX_QDRANT_PATH": str(base / "qdrant"),
            "APEX_ACCUMULATOR_MAX_BATCH": str(args.batch),
            "APEX_LOG_LEVEL": "WARNING",
            "APEX_PLUGINS": args.sinks,
            "APEX_PLUGIN_MODULES": "bench_plugin",
            "APEX_API_PORT": str(port),
            "PYTHONPATH": str(Path(__file__).parent),
        }
        cli = str(Path(sys.executable).parent / "apex-platform")
        for role in ("worker", "api"):
            log = (base / f"{role}.log").open("wb")
            procs.append(subprocess.Popen([cli, role], env=env, stdout=log, stderr=subprocess.STDOUT))
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code in (200, 503):
                    break
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
        os.environ.update({k: v for k, v in env.items() if k.startswith("APEX_") and k != "APEX_QDRANT_PATH"})
        probe = PostgresSink(PostgresSinkSettings(dsn=postgres.dsn))  # type: ignore[arg-type]
        await probe.open()
        # the saga run happens here, in-process, on its own stores' client objects
        saga_runtime = Runtime.build(args.sinks.replace("qdrant", "").strip(","))
        await saga_runtime.open_sinks()
        sinks = [*saga_runtime.registry.sinks, *(["qdrant (worker only)"] if "qdrant" in args.sinks else [])]
        console.print(f"sinks: {', '.join(sinks)}; events per run: {args.events}")
        # warm up both paths (schemas, workflow caches)
        await webhook_rate(url, "bench_batched", 20, probe, args.concurrency)
        await webhook_rate(url, "bench_single", 20, probe, args.concurrency)
        single = await webhook_rate(url, "bench_single", args.baseline_events, probe, args.concurrency)
        batched = await webhook_rate(url, "bench_batched", args.events, probe, args.concurrency)
        saga1 = await saga_rate(saga_runtime, args.saga_records // 10, 1)
        saga100 = await saga_rate(saga_runtime, args.saga_records, 100)
        await saga_runtime.close_sinks()
        await probe.close()
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        for server in reversed(servers):
            server.stop()

    table = Table(title="Webhook ingestion, HTTP 202 → record in every store")
    for col in ("path", "events", "accepted in s", "all landed in s", "events/s", "x field rate (16.7/s)"):
        table.add_column(col, justify="right")
    for name, r in (("one workflow per event (baseline)", single), ("accumulator batches", batched)):
        table.add_row(
            name,
            str(r["events"]),
            f"{r['accept_s']:.1f}",
            f"{r['total_s']:.1f}",
            f"{r['rate']:.0f}",
            f"{r['rate'] / FIELD_RATE_PER_S:.1f}x",
        )
    console.print(table)
    console.print(f"batched / per-event throughput: [bold]{batched['rate'] / single['rate']:.1f}x[/]")
    saga = Table(
        title="Saga alone (in this process), records/s into "
        + ", ".join(sinks[:-1] if "qdrant" in args.sinks else sinks)
    )
    for col in ("batch size", "records/s"):
        saga.add_column(col, justify="right")
    saga.add_row("1 (baseline)", f"{saga1:.0f}")
    saga.add_row("100", f"{saga100:.0f}")
    console.print(saga)
    console.print(f"batch 100 / batch 1: [bold]{saga100 / saga1:.1f}x[/]")
    target = batched["rate"] / FIELD_RATE_PER_S
    console.print(
        f"target ≥ 50x the field rate: {'[green]met' if target >= 50 else '[yellow]not met'}[/] ({target:.1f}x)"
    )
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=6000, help="events for the batched run")
    parser.add_argument("--baseline-events", type=int, default=150, help="events for the per-event baseline")
    parser.add_argument("--batch", type=int, default=1000, help="accumulator batch size")
    parser.add_argument(
        "--concurrency", type=int, default=128, help="deliveries in flight (a vendor delivering on many connections)"
    )
    parser.add_argument("--saga-records", type=int, default=2000, help="records for the saga run")
    parser.add_argument("--sinks", default="postgres,redis,graph,qdrant", help="plugins to load (sinks)")
    args = parser.parse_args()
    code = asyncio.run(main_async(args))
    sys.stdout.flush()
    os._exit(code)  # sidestep the Temporal SDK's occasional abort at interpreter exit


if __name__ == "__main__":
    main()
