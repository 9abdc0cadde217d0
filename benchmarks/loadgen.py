"""The benchmark's load generator, run as a child process of `run.py` so that it never
shares an interpreter (or a GIL) with the process it measures. Prints one JSON document.

    python loadgen.py http URL --kind samsara|healthz --concurrency C --count N [--warmup W] [--watch NAME=PID]
    python loadgen.py start ADDRESS --concurrency C --count N [--watch NAME=PID]
    python loadgen.py workflows ADDRESS --activities 1|3 --concurrency C --count N [--watch NAME=PID]
    python loadgen.py roundtrip ADDRESS --count N

`http`: C closed-loop senders (each sends its next request when the previous one is
answered) over aiohttp; `samsara` bodies are Samsara's documented RouteStopArrival
example with a fresh eventId each, signed as Samsara signs (the secret, base64, comes
from APEX_SAMSARA_WEBHOOK_SECRET); `healthz` is `GET /healthz`.
`start`: `client.start_workflow` of a trivial workflow with C in flight (no worker polls
its task queue: only the start is measured).
`workflows`: a worker in this process with a one- or three-activity workflow (no-op
activities); N `execute_workflow` calls with C in flight: completed workflows per second.
`roundtrip`: a worker in this process with a one-activity workflow; N sequential
`execute_workflow` calls, start → result.
`--watch NAME=PID`: also report the cores that process (and its children) used during
the measured requests, next to this process's own.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import os
import statistics
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and its live children (PostgreSQL's backends)."""
    import psutil

    total = 0.0
    try:
        proc = psutil.Process(pid)
        for p in [proc, *proc.children(recursive=True)]:
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                continue
    except psutil.Error:
        return 0.0
    return total


class CpuMeter:
    """Cores used by the watched processes (and by this one) between `start` and `stop`."""

    def __init__(self, watch: dict[str, int]) -> None:
        self.watch = watch
        self.before: dict[str, float] = {}
        self.began = 0.0

    def start(self) -> None:
        self.before = {name: cpu_seconds(pid) for name, pid in self.watch.items()}
        self.before["loadgen"] = time.process_time()
        self.began = time.perf_counter()

    def stop(self) -> dict[str, float]:
        wall = time.perf_counter() - self.began
        after = {name: cpu_seconds(pid) for name, pid in self.watch.items()}
        after["loadgen"] = time.process_time()
        return {name: round((after[name] - self.before[name]) / wall, 2) for name in after}


def parse_watch(items: list[str]) -> dict[str, int]:
    """`name=pid` pairs."""
    return {name: int(pid) for name, _, pid in (item.partition("=") for item in items)}


def summary(latencies_s: list[float], elapsed_s: float, statuses: Counter[int] | None = None) -> dict[str, Any]:
    ms = [x * 1000 for x in latencies_s]
    return {
        "count": len(ms),
        "elapsed_s": round(elapsed_s, 3),
        "rate_per_s": round(len(ms) / elapsed_s, 1) if elapsed_s > 0 else 0.0,
        "p50_ms": round(percentile(ms, 50), 2),
        "p90_ms": round(percentile(ms, 90), 2),
        "p99_ms": round(percentile(ms, 99), 2),
        "max_ms": round(max(ms), 2) if ms else 0.0,
        "mean_ms": round(statistics.fmean(ms), 2) if ms else 0.0,
        "statuses": {str(k): v for k, v in sorted((statuses or Counter()).items())},
    }


async def closed_loop(
    count: int, concurrency: int, send: Callable[[int], Awaitable[int]]
) -> tuple[list[float], float, Counter[int]]:
    """`concurrency` senders share `count` requests; each waits for its answer before the next."""
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    next_index = 0

    async def sender() -> None:
        nonlocal next_index
        while next_index < count:
            i = next_index
            next_index += 1
            started = time.perf_counter()
            status = await send(i)
            latencies.append(time.perf_counter() - started)
            statuses[status] += 1

    started = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(concurrency)))
    return latencies, time.perf_counter() - started, statuses


# -- http ------------------------------------------------------------------------------


def samsara_requests(count: int, secret_b64: str) -> list[tuple[bytes, dict[str, str]]]:
    """Signed RouteStopArrival deliveries, each with its own eventId and stop (built before sending)."""
    from apex_connector_samsara import samples

    key = base64.b64decode(secret_b64)
    template = samples.route_stop_arrival()
    ts = str(int(time.time()))
    out = []
    for _ in range(count):
        # a stop of its own (its id is the eventId): a stop event is a record of its stop, so
        # every delivery lands as a record of its own (tests/support/senders.py does the same)
        template["eventId"] = template["data"]["routeStopDetails"]["id"] = str(uuid.uuid4())
        template["data"]["route"]["stops"][0]["id"] = template["eventId"]
        body = json.dumps(template, separators=(",", ":")).encode()
        digest = hmac.new(key, b"v1:" + ts.encode() + b":" + body, hashlib.sha256).hexdigest()
        headers = {"X-Samsara-Signature": f"v1={digest}", "X-Samsara-Timestamp": ts, "Content-Type": "application/json"}
        out.append((body, headers))
    return out


async def http_load(url: str, kind: str, count: int, concurrency: int, warmup: int, meter: CpuMeter) -> dict[str, Any]:
    """`url` may list several APIs, comma-separated: request i goes to API i mod n."""
    import aiohttp

    secret = os.environ.get("APEX_SAMSARA_WEBHOOK_SECRET", "")
    timeout = aiohttp.ClientTimeout(total=60)
    urls = [u for u in url.split(",") if u]
    async with contextlib.AsyncExitStack() as stack:
        sessions = [
            await stack.enter_async_context(
                aiohttp.ClientSession(
                    u, connector=aiohttp.TCPConnector(limit=concurrency, force_close=False), timeout=timeout
                )
            )
            for u in urls
        ]

        def sender(requests: list[tuple[bytes, dict[str, str]]]) -> Callable[[int], Awaitable[int]]:
            async def send(i: int) -> int:
                http = sessions[i % len(sessions)]
                if kind == "healthz":
                    async with http.get("/healthz") as resp:
                        await resp.read()
                        return resp.status
                body, headers = requests[i]
                async with http.post("/webhooks/samsara", data=body, headers=headers) as resp:
                    await resp.read()
                    return resp.status

            return send

        def build(n: int) -> list[tuple[bytes, dict[str, str]]]:
            return samsara_requests(n, secret) if kind == "samsara" else []

        if warmup:
            await closed_loop(warmup, concurrency, sender(build(warmup)))
        requests = build(count)
        meter.start()
        latencies, elapsed, statuses = await closed_loop(count, concurrency, sender(requests))
        cores = meter.stop()
    doc = summary(latencies, elapsed, statuses)
    doc.update(kind=kind, concurrency=concurrency, warmup=warmup, cpu_cores=cores, apis=len(urls))
    if kind == "samsara":
        doc["body_bytes"] = len(requests[0][0]) if requests else 0
    return doc


# -- temporal --------------------------------------------------------------------------


@activity.defn(name="bench.noop")
async def noop_activity(value: str) -> str:
    return value


@workflow.defn(name="BenchOneActivity")
class OneActivityWorkflow:
    @workflow.run
    async def run(self, value: str) -> str:
        return await workflow.execute_activity(noop_activity, value, start_to_close_timeout=timedelta(seconds=30))


@workflow.defn(name="BenchThreeActivities")
class ThreeActivityWorkflow:
    @workflow.run
    async def run(self, value: str) -> str:
        for _ in range(3):
            value = await workflow.execute_activity(noop_activity, value, start_to_close_timeout=timedelta(seconds=30))
        return value


async def workflow_load(address: str, activities: int, count: int, concurrency: int, meter: CpuMeter) -> dict[str, Any]:
    """`count` workflows of `activities` no-op activities each, `concurrency` in flight,
    a worker for them in this process: completed workflows per second, start → result."""
    client = await Client.connect(address)
    queue = f"bench-flight-{activities}-{uuid.uuid4().hex[:8]}"
    flow: Any = OneActivityWorkflow if activities == 1 else ThreeActivityWorkflow
    worker = Worker(
        client,
        task_queue=queue,
        workflows=[flow],
        activities=[noop_activity],
        workflow_runner=UnsandboxedWorkflowRunner(),
        max_concurrent_workflow_tasks=concurrency,
        max_concurrent_activities=concurrency,
    )

    async def send(i: int) -> int:
        await client.execute_workflow(flow.run, "x", id=f"{queue}-{i}", task_queue=queue)
        return 200

    async with worker:
        warm = max(1, min(concurrency, count // 10))
        await closed_loop(warm, concurrency, lambda i: send(count + i))
        meter.start()
        latencies, elapsed, statuses = await closed_loop(count, concurrency, send)
        cores = meter.stop()
    doc = summary(latencies, elapsed, statuses)
    doc.update(activities=activities, concurrency=concurrency, warmup=warm, cpu_cores=cores)
    return doc


async def start_load(address: str, count: int, concurrency: int, meter: CpuMeter) -> dict[str, Any]:
    client = await Client.connect(address)
    run = uuid.uuid4().hex[:8]

    async def send(i: int) -> int:
        await client.start_workflow("BenchNoop", id=f"bench-noop-{run}-{i}", task_queue="bench-no-worker")
        return 200

    warm = max(1, min(50, count // 10))
    await closed_loop(warm, concurrency, lambda i: send(count + i))
    meter.start()
    latencies, elapsed, statuses = await closed_loop(count, concurrency, send)
    cores = meter.stop()
    doc = summary(latencies, elapsed, statuses)
    doc.update(concurrency=concurrency, warmup=warm, cpu_cores=cores)
    return doc


async def roundtrip(address: str, count: int) -> dict[str, Any]:
    client = await Client.connect(address)
    queue = f"bench-roundtrip-{uuid.uuid4().hex[:8]}"
    worker = Worker(
        client,
        task_queue=queue,
        workflows=[OneActivityWorkflow],
        activities=[noop_activity],
        workflow_runner=UnsandboxedWorkflowRunner(),
    )
    latencies: list[float] = []
    async with worker:
        for i in range(count + 5):  # the first five warm up
            started = time.perf_counter()
            await client.execute_workflow(OneActivityWorkflow.run, "x", id=f"{queue}-{i}", task_queue=queue)
            if i >= 5:
                latencies.append(time.perf_counter() - started)
            await asyncio.sleep(0.05)
    return summary(latencies, sum(latencies))


def run(main: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    """On uvloop when it is installed (as the API's uvicorn is): less of the client's own cost."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)  # type: ignore[arg-type]
    return uvloop.run(main)  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    http = sub.add_parser("http")
    http.add_argument("url")
    http.add_argument("--kind", choices=("samsara", "healthz"), required=True)
    http.add_argument("--concurrency", type=int, required=True)
    http.add_argument("--count", type=int, required=True)
    http.add_argument("--warmup", type=int, default=0)
    http.add_argument("--watch", action="append", default=[], help="name=pid: report the cores it used")
    start = sub.add_parser("start")
    start.add_argument("address")
    start.add_argument("--concurrency", type=int, required=True)
    start.add_argument("--count", type=int, required=True)
    start.add_argument("--watch", action="append", default=[], help="name=pid: report the cores it used")
    flight = sub.add_parser("workflows")
    flight.add_argument("address")
    flight.add_argument("--activities", type=int, choices=(1, 3), required=True)
    flight.add_argument("--concurrency", type=int, required=True)
    flight.add_argument("--count", type=int, required=True)
    flight.add_argument("--watch", action="append", default=[], help="name=pid: report the cores it used")
    trip = sub.add_parser("roundtrip")
    trip.add_argument("address")
    trip.add_argument("--count", type=int, required=True)
    args = parser.parse_args()

    if args.command == "http":
        meter = CpuMeter(parse_watch(args.watch))
        doc = run(http_load(args.url, args.kind, args.count, args.concurrency, args.warmup, meter))
    elif args.command == "start":
        meter = CpuMeter(parse_watch(args.watch))
        doc = run(start_load(args.address, args.count, args.concurrency, meter))
    elif args.command == "workflows":
        meter = CpuMeter(parse_watch(args.watch))
        doc = run(workflow_load(args.address, args.activities, args.count, args.concurrency, meter))
    else:
        doc = run(roundtrip(args.address, args.count))
    sys.stdout.write(json.dumps(doc) + "\n")
    sys.stdout.flush()
    os._exit(0)  # sidestep the Temporal SDK's occasional abort at interpreter exit


if __name__ == "__main__":
    main()
