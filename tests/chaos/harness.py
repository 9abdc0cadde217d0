"""One chaos run: start everything, drive the load and the faults for the duration, stop
the faults, drain (bounded), compute the verdict from the stores, write the report."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import random
import time
from typing import Any

import httpx

from apex_platform.testing.pytest_plugin import GUARD_FILE_ENV
from tests.chaos import verdict as verdict_mod
from tests.chaos.config import Config
from tests.chaos.faults import Controller
from tests.chaos.flaky_plugin import CONTROL_ENV
from tests.chaos.load import Delivery, Load, Sender
from tests.chaos.topology import CLI, ROOT, Apex, Child, Servers, clean_environ
from tests.chaos.vendors import Vendor, all_vendors

log = logging.getLogger("chaos")

PLUGINS = "frontapp,turvo,samsara,plaid,sonar,crm,financial,edi,llm,postgres,redis,graph,entities,embeddings"
POLLED = ("plaid", "crm", "financial", "sonar", "samsara")


class Harness:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.dir = cfg.run_dir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.logs = self.dir / "logs"
        self.t0 = time.monotonic()
        self.events: list[dict[str, Any]] = []
        self.secrets = {
            "front": f"front-{self.rng.getrandbits(64):x}",
            "samsara": base64.b64encode(self.rng.randbytes(32)).decode(),
            "push": f"push-{self.rng.getrandbits(64):x}",
            "admin": f"admin-{self.rng.getrandbits(64):x}",
            "payload_key": base64.b64encode(self.rng.randbytes(32)).decode(),
        }
        self.servers = Servers(self.dir / "servers")
        self.vendors: dict[str, Vendor] = all_vendors(random.Random(self.rng.random()))
        self.edi_inbox = self.dir / "edi-drop"
        self.flaky_file = self.dir / "flaky.json"
        self.flaky_file.write_text(json.dumps({"mode": "ok"}))
        self.guard_file = self.dir / "payload-guard.log"
        self.apex: Apex | None = None
        self.sender: Sender | None = None
        self.load: Load | None = None
        self.controller: Controller | None = None
        #: exceptions of the harness's own load generation (each fails the run at the end)
        self.harness_errors: list[str] = []

    # -- bookkeeping -----------------------------------------------------------------------------

    def now(self) -> float:
        """Seconds since the run began."""
        return time.monotonic() - self.t0

    def note(self, what: str, **extra: Any) -> None:
        entry = {"t": round(self.now(), 2), "what": what, **extra}
        self.events.append(entry)
        log.info("%7.1fs %s %s", entry["t"], what, " ".join(f"{k}={v}" for k, v in extra.items()))

    # -- the environment every Apex process shares ------------------------------------------------------

    def env(self) -> dict[str, str]:
        s = self.servers
        env = {
            "APEX_HOME": str(self.dir / "home"),
            "APEX_TEMPORAL_ADDRESS": s.temporal.address,
            "APEX_TEMPORAL_TASK_QUEUE_PREFIX": "chaos",
            "APEX_POSTGRES_DSN": s.postgres.dsn,
            "APEX_REDIS_URL": s.cache.url,
            # host, port and (when the embedded server has one) the password; no path: the graph's name
            "APEX_GRAPH_URI": "falkordb://" + s.graph.url.removeprefix("redis://").split("/", 1)[0],
            "APEX_PLUGINS": PLUGINS,
            "APEX_PLUGIN_MODULES": "tests.chaos.flaky_plugin",
            CONTROL_ENV: str(self.flaky_file),
            GUARD_FILE_ENV: str(self.guard_file),
            # the checkout first; a PYTHONPATH the run was started with (a diagnostic
            # sitecustomize, say) still reaches every child
            "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
            "APEX_FRONTAPP_SIGNING_SECRET": self.secrets["front"],
            "APEX_SAMSARA_WEBHOOK_SECRET": self.secrets["samsara"],
            "APEX_API_KEYS": self.secrets["push"],
            "APEX_ADMIN_TOKEN": self.secrets["admin"],
            # Temporal payloads are encrypted: every process of the run shares the key
            "APEX_PAYLOAD_KEYS": f"chaos:{self.secrets['payload_key']}",
            "APEX_TEMPORAL_ACTIVITY_HEARTBEAT_SECONDS": "5",
            "APEX_TEMPORAL_ACTIVITY_TIMEOUT_SECONDS": "120",
            "APEX_TEMPORAL_GRACEFUL_SHUTDOWN_SECONDS": "10",
            "APEX_INBOX_IDLE_WAIT_SECONDS": "5",
            "APEX_SAGA_RETRY_INITIAL_SECONDS": "0.05",
            "APEX_SAGA_BREAKER_RESET_SECONDS": "5",
            # a crashed writer's record locks expire after this (renewed every third by a live
            # one); the default 120 s makes every key a killed worker held wait two minutes
            "APEX_SAGA_LOCK_TTL_SECONDS": "15",
            "APEX_REDIS_LOCK_WAIT_SECONDS": "20",
            "APEX_LOG_LEVEL": "INFO",
        }
        if self.cfg.trim_seconds is not None:
            env["APEX_TEMPORAL_MEMORY_TRIM_SECONDS"] = f"{self.cfg.trim_seconds:g}"
        for vendor in self.vendors.values():
            env.update(vendor.env())
        return env

    # -- start and stop ----------------------------------------------------------------------------

    async def start(self) -> None:
        self.note("start", seed=self.cfg.seed, profile=self.cfg.profile, run_dir=str(self.dir))
        await self.servers.start()
        self.note("servers up", **{k: v for k, v in self.servers.pids().items()})
        for vendor in self.vendors.values():
            await vendor.start()
        env = self.env()
        for name in [k for k in os.environ if k.startswith("APEX_")]:
            del os.environ[name]  # hermetic: nothing of the caller's settings
        os.environ.update(env)  # the verdict reads the stores with the sinks' own settings
        apis = []
        for i in range(2):
            port = httpx.URL(f"http://127.0.0.1:{_free_port()}").port
            url = f"http://127.0.0.1:{port}"
            apis.append(Child(f"api{i}", ["api"], {**env, "APEX_API_PORT": str(port)}, self.logs / f"api{i}.log", url))
        workers = [Child(f"worker{i}", ["worker"], env, self.logs / f"worker{i}.log") for i in range(2)]
        workers[1].env.update(dict(self.cfg.worker1_env))
        watcher = Child(
            "edi-watcher", ["ingest", "edi", "--watch", str(self.edi_inbox)], env, self.logs / "edi-watcher.log"
        )
        self.apex = Apex(apis, workers, watcher)
        await self.apex.start()
        self.note("apex up", apis=self.apex.urls)
        for source in POLLED:
            await self.cli("sources", "start", source)
        self.note("pollers started", sources=list(POLLED))

    async def cli(self, *args: str, within: float = 120, check: bool = True) -> str:
        proc = await asyncio.create_subprocess_exec(
            CLI,
            *args,
            env={**clean_environ(), **self.env()},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=ROOT,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout=within)
        except TimeoutError:
            proc.kill()
            raise
        if check and proc.returncode != 0:
            raise RuntimeError(f"apex-platform {' '.join(args)} failed ({proc.returncode}): {err.decode()[-2000:]}")
        return out.decode()

    async def stop(self) -> None:
        if self.sender is not None:
            await self.sender.close()
        if self.apex is not None:
            await asyncio.to_thread(self.apex.stop)
        for vendor in self.vendors.values():
            with contextlib.suppress(Exception):
                await vendor.stop()
        await asyncio.to_thread(self.servers.stop)

    # -- the run ----------------------------------------------------------------------------------

    async def run(self) -> dict[str, Any]:
        cfg = self.cfg
        try:
            await self.start()
            assert self.apex is not None
            load_end = self.now() + cfg.duration
            self.sender = Sender(
                self.apex.urls,
                random.Random(self.rng.random()),
                resend_share=cfg.resend_share,
                concurrency=cfg.concurrency,
                deadline=lambda: self.t0 + load_end + cfg.drain_timeout * 0.6,
            )
            self.load = Load(
                random.Random(self.rng.random()),
                self.secrets,
                self.vendors,
                poison_share=cfg.poison_share,
                big_share=cfg.big_share,
                edi_inbox=self.edi_inbox,
            )
            self.controller = Controller(self, random.Random(self.rng.random()))
            driver = asyncio.create_task(self.drive(load_end))
            faults = asyncio.create_task(self.controller.run(load_end))
            await asyncio.gather(driver, faults)
            self.note("load and faults stopped", faults=len(self.controller.done))
            await self.controller.heal()
            deadline = self.now() + cfg.drain_timeout
            if cfg.max_wall is not None:
                deadline = min(deadline, cfg.max_wall - 15)  # time left to stop everything and report
            result = await verdict_mod.settle_and_judge(self, deadline=deadline)
            result["events"] = self.events
            return result
        finally:
            await self.stop()

    async def soak(self) -> dict[str, Any]:
        """The soak instead of the chaos run (tests/chaos/soak.py)."""
        from tests.chaos.soak import run_soak

        try:
            return await run_soak(self)
        finally:
            await self.stop()

    async def drive(self, until: float) -> None:
        """A steady mixed load: webhooks and pushes at `rate`, vendor changes, EDI files."""
        assert self.sender is not None
        assert self.load is not None
        cfg, rng, load = self.cfg, random.Random(self.rng.random()), self.load
        mix = [("frontapp", 3.0), ("samsara", 3.0), ("turvo", 1.0), ("llm", 1.0), ("sonar", 0.4), ("plaid", 0.15)]
        makers = {
            "frontapp": load.front,
            "samsara": load.samsara,
            "turvo": load.turvo,
            "llm": load.llm,
            "sonar": load.sonar,
            "plaid": load.plaid_trigger,
        }
        vendors = [v for v in self.vendors.values()]
        next_edi = self.now() + rng.expovariate(cfg.edi_per_minute / 60)
        next_vendor = self.now()
        while self.now() < until:
            await asyncio.sleep(rng.expovariate(cfg.rate))
            (source,) = rng.choices([name for name, _ in mix], weights=[w for _, w in mix])
            try:
                self.sender.submit(makers[source]())
            except Exception as exc:
                self.harness_errors.append(f"{source}: {type(exc).__name__}: {exc}")
                log.exception("the load of %s failed", source)
            try:
                while next_vendor <= self.now():
                    rng.choice(vendors).grow()
                    next_vendor += rng.expovariate(cfg.vendor_rate)
                if next_edi <= self.now():
                    next_edi = self.now() + rng.expovariate(cfg.edi_per_minute / 60)
                    await asyncio.to_thread(load.edi_file)
            except Exception as exc:
                self.harness_errors.append(f"vendors or files: {type(exc).__name__}: {exc}")
                log.exception("a vendor change or a file failed")

    async def probe(self) -> tuple[Delivery, float]:
        """A Front delivery sent now: returns it and when it was sent (for recovery times)."""
        assert self.sender is not None
        assert self.load is not None
        d = self.load.front(probe=True)
        self.sender.submit(d)
        return d, self.now()


def _free_port() -> int:
    from apex_platform.stack.ports import free_port

    return free_port()
