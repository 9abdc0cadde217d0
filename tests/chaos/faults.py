"""The fault controller: a seeded schedule of faults over the run, each fault holding the
parts it touches (so a power cut waits for a paused PostgreSQL to be resumed, and two
faults of one part never overlap), and a probe delivery after each fault that measures
how long the system takes to land new work in every store again.

Fault kinds (see `config.FAULT_KINDS`):

- kill_worker: SIGKILL of a worker (or of the EDI watcher), restarted after 0-3 s
- kill_api: SIGKILL of an API process, restarted on its port after 0-3 s
- power_cut: every Apex process and every server SIGKILLed at once, restarted on the same
  data folders and ports after 1-3 s
- temporal_restart: the Temporal dev server killed (or stopped) and started on its SQLite file
- pause_postgres / pause_redis: SIGSTOP of every process of the server (the Redis sink's,
  or the graph's) for a log-uniform 2 s .. `max_pause`, then SIGCONT
- restart_postgres: PostgreSQL crashed (SIGKILL) or fast-stopped, then started again
- redis_data_loss: the Redis sink's server killed, its data folder emptied, started again
- flaky_sink: the `flaky` sink fails a share of its calls, fails after writing, or is slow
- vendor: a fake vendor answers 429 / 5xx (or a truncated body, a Plaid pagination
  mutation), or its proxy drops every connection for a while
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import random
import signal
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from apex_platform.models import RecordKey
from tests.chaos import topology
from tests.chaos.config import FAULT_KINDS

if TYPE_CHECKING:
    from tests.chaos.harness import Harness


@dataclass
class Fault:
    n: int
    kind: str
    at: float
    params: dict[str, Any]
    started: float | None = None
    ended: float | None = None
    detail: str = ""
    skipped: str | None = None
    #: seconds from the end of the fault until a probe sent then was in every store
    recovery: float | None = None
    probe_event: str | None = None
    error: str | None = None

    def doc(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "kind": self.kind,
            "scheduled": round(self.at, 2),
            "started": None if self.started is None else round(self.started, 2),
            "ended": None if self.ended is None else round(self.ended, 2),
            "params": self.params,
            "detail": self.detail,
            "skipped": self.skipped,
            "recovery_seconds": None if self.recovery is None else round(self.recovery, 2),
            "probe": self.probe_event,
            "error": self.error,
        }


@dataclass
class Controller:
    h: Harness
    rng: random.Random
    done: list[Fault] = field(default_factory=list)
    locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    probes: list[asyncio.Task[None]] = field(default_factory=list)
    #: when the Redis sink's server last lost its data (seconds since the run began)
    wipes: list[tuple[float, float]] = field(default_factory=list)
    #: API processes that exited on their own while starting
    early_exits: list[str] = field(default_factory=list)
    #: the same in unix seconds (the lineage's clock)
    wipe_walls: list[tuple[float, float]] = field(default_factory=list)

    def lock(self, name: str) -> asyncio.Lock:
        return self.locks.setdefault(name, asyncio.Lock())

    # -- the schedule ------------------------------------------------------------------------------

    def schedule(self, start: float, end: float) -> list[Fault]:
        """Seeded: how many of each kind (every kind at least twice), in a shuffled order at
        uniform random times, with each fault's parameters drawn now."""
        cfg, rng = self.h.cfg, self.rng
        if not cfg.weights:
            return []
        span = max(1.0, end - start)
        total = max(len(FAULT_KINDS) * 2, int(span / cfg.fault_interval))
        weight = sum(cfg.weights.get(k, 0) for k in FAULT_KINDS)
        counts = {k: max(2, round(total * cfg.weights.get(k, 0) / weight)) for k in FAULT_KINDS}
        kinds = [k for k, n in counts.items() for _ in range(n)]
        rng.shuffle(kinds)
        times = sorted(rng.uniform(start, end) for _ in kinds)
        return [Fault(i + 1, kind, t, self.params(kind)) for i, (kind, t) in enumerate(zip(kinds, times, strict=True))]

    def params(self, kind: str) -> dict[str, Any]:
        rng, cfg = self.rng, self.h.cfg

        def pause() -> float:
            return round(math.exp(rng.uniform(math.log(2.0), math.log(max(2.5, cfg.max_pause)))), 2)

        if kind == "kill_worker":
            return {
                "target": rng.choice(["worker0", "worker1", "worker0", "worker1", "edi-watcher"]),
                "down": round(rng.uniform(0, 3), 2),
            }
        if kind == "kill_api":
            return {"target": rng.choice(["api0", "api1"]), "down": round(rng.uniform(0, 3), 2)}
        if kind == "power_cut":
            return {"down": round(rng.uniform(1, 3), 2)}
        if kind == "temporal_restart":
            return {"how": rng.choice(["kill", "stop"]), "down": round(rng.uniform(0, 4), 2)}
        if kind == "pause_postgres":
            return {"seconds": pause()}
        if kind == "pause_redis":
            return {"target": rng.choice(["redis", "redis", "graph"]), "seconds": pause()}
        if kind == "restart_postgres":
            return {"how": rng.choice(["kill", "stop"]), "down": round(rng.uniform(0, 3), 2)}
        if kind == "redis_data_loss":
            return {"down": round(rng.uniform(0, 2), 2)}
        if kind == "flaky_sink":
            mode = rng.choice(["fail", "fail", "slow", "fail_after_write"])
            doc: dict[str, Any] = {
                "mode": mode,
                "seconds": round(rng.uniform(4, 30 if cfg.profile == "full" else 8), 2),
            }
            if mode == "slow":
                doc["delay"] = round(rng.uniform(0.3, 4.0), 2)
            else:
                doc["p"] = round(rng.uniform(0.2, 0.8), 2)
            return doc
        if kind == "vendor":
            name = rng.choice(sorted(self.h.vendors))
            fault = rng.choice(self.h.vendors[name].fault_kinds)
            return {
                "vendor": name,
                "fault": fault,
                "seconds": round(rng.uniform(3, 20 if cfg.profile == "full" else 6), 2),
            }
        raise ValueError(kind)

    def resources(self, fault: Fault) -> list[str]:
        everything = ["api0", "api1", "worker0", "worker1", "edi-watcher", "temporal", "postgres", "redis", "graph"]
        kind, p = fault.kind, fault.params
        if kind in ("kill_worker", "kill_api"):
            return [p["target"]]
        if kind == "power_cut":
            return everything
        if kind == "temporal_restart":
            return ["temporal"]
        if kind in ("pause_postgres", "restart_postgres"):
            return ["postgres"]
        if kind == "pause_redis":
            return [p["target"]]
        if kind == "redis_data_loss":
            return ["redis"]
        if kind == "flaky_sink":
            return ["flaky"]
        return [f"vendor:{p['vendor']}"]

    # -- running it -----------------------------------------------------------------------------------

    async def run(self, load_end: float) -> None:
        h = self.h
        warmup = 8.0 if h.cfg.profile == "smoke" else 20.0
        plan = self.schedule(h.now() + warmup, load_end - 12)
        (h.dir / "fault-schedule.json").write_text(json.dumps([f.doc() for f in plan], indent=1))
        h.note("fault schedule", faults=len(plan))
        tasks = []
        for fault in plan:
            await asyncio.sleep(max(0.0, fault.at - h.now()))
            tasks.append(asyncio.create_task(self.inject(fault, load_end)))
        await asyncio.gather(*tasks)

    async def inject(self, fault: Fault, load_end: float) -> None:
        h = self.h
        names = sorted(self.resources(fault))
        async with contextlib.AsyncExitStack() as stack:
            for name in names:
                await stack.enter_async_context(self.lock(name))
            if h.now() > load_end + 10:
                fault.skipped = "its parts were busy until the faults stopped"
                self.done.append(fault)
                return
            fault.started = h.now()
            try:
                fault.detail = await getattr(self, fault.kind)(**fault.params)
            except Exception as exc:
                fault.error = f"{type(exc).__name__}: {exc}"
                h.note("fault error", n=fault.n, kind=fault.kind, error=fault.error)
            fault.ended = h.now()
        self.done.append(fault)
        h.note("fault", n=fault.n, kind=fault.kind, took=round(fault.ended - fault.started, 1), detail=fault.detail)
        self.probes.append(asyncio.create_task(self.measure(fault)))

    async def measure(self, fault: Fault) -> None:
        """Recovery: from the fault's end until a probe sent then is in every store."""
        h = self.h
        d, sent = await h.probe()
        fault.probe_event = d.key
        key = RecordKey("frontapp", d.key)
        deadline = sent + h.cfg.probe_timeout
        from tests.chaos.verdict import present_everywhere

        while h.now() < deadline:
            if await present_everywhere(h, key):
                assert fault.ended is not None
                fault.recovery = h.now() - fault.ended
                return
            await asyncio.sleep(0.5)

    async def heal(self) -> None:
        """After the last fault: every server and process up, the flaky sink and vendors behaving."""
        h = self.h
        h.flaky_file.write_text(json.dumps({"mode": "ok"}))
        for vendor in h.vendors.values():
            if vendor.proxy is not None:
                vendor.proxy.drop(False)
        for server in h.servers.all:
            topology.resume(server)
        await h.servers.start()
        assert h.apex is not None
        for child in h.apex.all:
            if not child.running:
                h.note("restarting a process that was down at the end", name=child.name)
        await h.apex.start(*[c for c in h.apex.all if not c.running])

    # -- the faults -------------------------------------------------------------------------------------

    async def kill_worker(self, target: str, down: float) -> str:
        assert self.h.apex is not None
        child = self.h.apex.by_name(target)
        child.kill()
        await asyncio.sleep(down)
        child.start()
        return f"{target} SIGKILLed, restarted after {down}s"

    async def kill_api(self, target: str, down: float) -> str:
        assert self.h.apex is not None
        child = self.h.apex.by_name(target)
        child.kill()
        await asyncio.sleep(down)
        note = ""
        for attempt in range(3):
            child.start()
            try:
                await child.wait_http(within=180)
                break
            except topology.ChildExited as exc:  # reported: an API must start whatever else is down
                self.h.note("api exited while starting", name=target, attempt=attempt + 1, error=str(exc))
                self.early_exits.append(f"{target}: {exc}")
                note = f" (exited while starting {attempt + 1}x)"
        return f"{target} SIGKILLed, restarted after {down}s{note}"

    async def power_cut(self, down: float) -> str:
        h = self.h
        assert h.apex is not None
        began = time.monotonic()
        for child in h.apex.all:  # SIGKILL is sent to everything first, then reaped
            if child.proc is not None and child.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(child.proc.pid, signal.SIGKILL)
        for server in h.servers.all:
            pid = server.pid
            if pid is not None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
        h.apex.kill_all()
        for server in h.servers.all:
            await asyncio.to_thread(topology.kill, server)
        await asyncio.sleep(down)
        await h.servers.start()
        await h.apex.start()
        return f"everything SIGKILLed, back after {time.monotonic() - began:.1f}s"

    async def temporal_restart(self, how: str, down: float) -> str:
        s = self.h.servers.temporal
        if how == "kill":
            await asyncio.to_thread(topology.kill, s)
        else:
            await asyncio.to_thread(s.stop)
        await asyncio.sleep(down)
        await self.h.servers.start(s)
        return f"Temporal {how}, started again on its SQLite file after {down}s"

    async def pause_postgres(self, seconds: float) -> str:
        s = self.h.servers.postgres
        n = topology.pause(s)
        try:
            await asyncio.sleep(seconds)
        finally:
            topology.resume(s)
        return f"PostgreSQL ({n} processes) SIGSTOPped for {seconds}s"

    async def pause_redis(self, target: str, seconds: float) -> str:
        s = self.h.servers.cache if target == "redis" else self.h.servers.graph
        topology.pause(s)
        try:
            await asyncio.sleep(seconds)
        finally:
            topology.resume(s)
        return f"{'the Redis sink' if target == 'redis' else 'the graph'}'s Redis SIGSTOPped for {seconds}s"

    async def restart_postgres(self, how: str, down: float) -> str:
        s = self.h.servers.postgres
        if how == "kill":
            await asyncio.to_thread(topology.kill, s)
        else:
            await asyncio.to_thread(s.stop)
        await asyncio.sleep(down)
        await self.h.servers.start(s)
        return f"PostgreSQL {how}, started again after {down}s"

    async def redis_data_loss(self, down: float) -> str:
        h = self.h
        began, wall = h.now(), time.time()
        await asyncio.to_thread(topology.kill, h.servers.cache)
        h.servers.wipe_cache()
        await asyncio.sleep(down)
        await h.servers.start(h.servers.cache)
        self.wipes.append((began, h.now()))
        self.wipe_walls.append((wall, time.time()))
        return f"the Redis sink's server killed and started empty after {down}s"

    async def flaky_sink(self, mode: str, seconds: float, **extra: float) -> str:
        f = self.h.flaky_file
        f.write_text(json.dumps({"mode": mode, **extra}))
        try:
            await asyncio.sleep(seconds)
        finally:
            f.write_text(json.dumps({"mode": "ok"}))
        return f"flaky sink {mode} {extra} for {seconds}s"

    async def vendor(self, vendor: str, fault: str, seconds: float) -> str:
        v = self.h.vendors[vendor]
        v.faults[fault] = v.faults.get(fault, 0) + 1
        if fault == "drop":
            assert v.proxy is not None
            v.proxy.drop(True)
            try:
                await asyncio.sleep(seconds)
            finally:
                v.proxy.drop(False)
            return f"{vendor}: every connection dropped for {seconds}s"
        return f"{vendor}: {v.inject(fault)}"
