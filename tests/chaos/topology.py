"""What the harness runs: the embedded servers (Temporal with its SQLite file, PostgreSQL,
a Redis for the Redis sink, a Redis with FalkorDB for the graph) on free ports of its own,
and the Apex processes (two APIs, two workers, the EDI drop-folder watcher) as children.

Every child is the real `apex-platform` command line. Servers and children are started
from the main thread with PR_SET_PDEATHSIG, so nothing outlives a harness that dies.

The graph has its own server (not the Redis sink's, as `apex-platform dev` would share):
"Redis restarted with its data lost" is a fault of the cache, locks and commit ledger; a
graph that lost its data is a store failure no platform can hide.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from apex_platform.stack.ports import free_port
from apex_platform.stack.postgres import PostgresServer
from apex_platform.stack.processes import ServerProcess, die_with_parent
from apex_platform.stack.redis_server import RedisServer
from apex_platform.stack.temporal_server import TemporalDevServer

CLI = str(Path(sys.executable).parent / "apex-platform")
ROOT = Path(__file__).resolve().parents[2]


def clean_environ() -> dict[str, str]:
    """This process's environment without any `APEX_*` variable: a run's processes get only
    the settings the harness gives them (not, say, a test session's own)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("APEX_")}


def _processes(server: ServerProcess) -> list[psutil.Process]:
    pid = server.pid
    if pid is None:
        return []
    try:
        main = psutil.Process(pid)
        return [main, *main.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def pause(server: ServerProcess) -> int:
    """SIGSTOP the server and every process under it: it hangs, nothing is refused."""
    procs = _processes(server)
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.suspend()
    return len(procs)


def resume(server: ServerProcess) -> None:
    for proc in _processes(server):
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.resume()


def kill(server: ServerProcess) -> None:
    """SIGKILL the server's whole process group (a crash: nothing is flushed or stopped),
    and wait until every one of its processes is gone (a PostgreSQL backend still exiting
    holds the shared memory a new postmaster refuses to start beside)."""
    procs = _processes(server)
    pid = server.pid
    if pid is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(procs, timeout=15)
    server.stop(timeout=10)


@dataclass
class Servers:
    """The four embedded servers, each on a port kept across restarts."""

    base: Path
    temporal: TemporalDevServer = field(init=False)
    postgres: PostgresServer = field(init=False)
    cache: RedisServer = field(init=False)
    graph: RedisServer = field(init=False)

    def __post_init__(self) -> None:
        self.temporal = TemporalDevServer(self.base / "temporal", port=free_port(), ui_port=None, startup_timeout=120)
        self.postgres = PostgresServer(self.base / "postgres", port=free_port(), startup_timeout=120)
        self.cache = RedisServer(self.base / "redis-cache", port=free_port(), load_falkordb=False)
        self.graph = RedisServer(self.base / "redis-graph", port=free_port(), load_falkordb=True)

    @property
    def all(self) -> tuple[ServerProcess, ...]:
        return (self.temporal, self.postgres, self.cache, self.graph)

    def name(self, server: ServerProcess) -> str:
        return {
            id(self.temporal): "temporal",
            id(self.postgres): "postgres",
            id(self.cache): "redis",
            id(self.graph): "graph",
        }[id(server)]

    async def start(self, *servers: ServerProcess, attempts: int = 4) -> None:
        """Start the given servers (all by default) concurrently; spawns stay on this thread.
        A server that fails to start (a port or shared memory not released yet) is tried
        again a few times."""
        chosen = servers or self.all
        for attempt in range(attempts):
            for server in chosen:
                if not server.is_running:
                    await asyncio.to_thread(server.prepare)
                    server.spawn()
            results = await asyncio.gather(
                *(asyncio.to_thread(server.wait_ready) for server in chosen), return_exceptions=True
            )
            failed = [r for r in results if isinstance(r, BaseException)]
            if not failed:
                return
            if attempt == attempts - 1:
                raise failed[0]
            await asyncio.sleep(2.0 * (attempt + 1))

    def wipe_cache(self) -> None:
        """The Redis sink's server loses everything it held (its data folder emptied)."""
        shutil.rmtree(self.cache.storage_dir, ignore_errors=True)
        self.cache.storage_dir.mkdir(parents=True, exist_ok=True)

    def stop(self) -> None:
        for server in reversed(self.all):
            resume(server)
            with contextlib.suppress(Exception):
                server.stop(timeout=20)

    def pids(self) -> dict[str, int | None]:
        return {self.name(s): s.pid for s in self.all}


class ChildExited(RuntimeError):
    """A child that exited while it was being waited for."""


class Child:
    """One `apex-platform …` child with its own environment and log (appended across restarts)."""

    def __init__(self, name: str, args: list[str], env: Mapping[str, str], log: Path, url: str | None = None) -> None:
        self.name = name
        self.args = args
        self.env = dict(env)
        self.log = log
        self.url = url
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        if self.running:
            return
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as fh:
            fh.write(f"--- chaos: starting {self.name} at {time.strftime('%H:%M:%S')}\n".encode())
            fh.flush()
            self.proc = subprocess.Popen(
                [CLI, *self.args],
                env={**clean_environ(), **self.env},
                stdout=fh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=ROOT,
                start_new_session=True,
                preexec_fn=die_with_parent(signal.SIGKILL),
            )
        self.starts += 1

    def kill(self) -> None:
        """SIGKILL the whole process group: a crash, no drain."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)

    def stop(self, timeout: float = 30) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode

    async def wait_http(self, within: float = 120) -> None:
        """Until GET /healthz answers 200 (APIs only)."""
        assert self.url is not None
        deadline = time.monotonic() + within
        async with httpx.AsyncClient(timeout=2) as http:
            while time.monotonic() < deadline:
                if not self.running:
                    code = self.proc.returncode if self.proc is not None else None
                    raise ChildExited(f"{self.name} exited early (code {code}); see {self.log}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"{self.url}/healthz")).status_code == 200:
                        return
                await asyncio.sleep(0.25)
        raise TimeoutError(f"{self.name} did not answer /healthz within {within:.0f}s; see {self.log}")


@dataclass
class Apex:
    """The Apex processes of the run."""

    apis: list[Child]
    workers: list[Child]
    watcher: Child

    @property
    def all(self) -> list[Child]:
        return [*self.apis, *self.workers, self.watcher]

    @property
    def urls(self) -> list[str]:
        return [a.url for a in self.apis if a.url]

    def by_name(self, name: str) -> Child:
        return next(c for c in self.all if c.name == name)

    async def start(self, *children: Child, wait: bool = True) -> None:
        chosen = children or tuple(self.all)
        for child in chosen:
            child.start()
        if wait:
            await asyncio.gather(*(c.wait_http() for c in chosen if c.url))

    def kill_all(self) -> None:
        for child in self.all:
            child.kill()

    def stop(self) -> None:
        for child in self.all:
            if child.running and child.proc is not None:
                child.proc.send_signal(signal.SIGTERM)
        for child in self.all:
            child.stop(timeout=30)
