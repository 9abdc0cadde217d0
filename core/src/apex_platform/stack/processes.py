"""A server child process that Apex owns: its own session, a log file, tied to our life.

Every embedded server (Temporal, PostgreSQL, Redis) is one `ServerProcess`: the
subclass says how to prepare its data folder, which command to run, which ports it
claims and how to tell it is ready; this class does the process handling that must
be right once: spawn, wait, stop, restart, log tails in errors, a loopback-only
interface unless allowed otherwise, and a minimal environment for every child
(`child_environment`): a server never sees our secrets in its /proc/<pid>/environ.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import shlex
import signal
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, ClassVar, Self, TypeVar

from apex_platform.stack.credentials import private_dir
from apex_platform.stack.errors import StackError
from apex_platform.stack.ports import PortClaim, check_bind_host, ensure_ports_free

_T = TypeVar("_T")

_PR_SET_PDEATHSIG = 1
_LOG_TAIL_LINES = 40
_LOG_TAIL_BYTES = 16 * 1024

CHILD_UMASK = 0o077
"""Files a server creates (snapshots, databases, logs of its own) are its owner's only."""

CHILD_ENV_KEEP = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "LC_MESSAGES", "TZ", "TMPDIR")
"""What a server child keeps of our environment: where programs are, the locale, the time zone."""


def child_environment(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The whole environment of an embedded server (or its setup tool): `CHILD_ENV_KEEP`,
    HOME set to the server's own data folder (no dotfiles of ours are read) and `extra`.

    Never the parent's environment: it holds the API's and the connectors' secrets,
    and a child's environment is readable in /proc/<pid>/environ for its lifetime.
    """
    env = {name: os.environ[name] for name in CHILD_ENV_KEEP if name in os.environ}
    env.setdefault("PATH", os.defpath)
    env["HOME"] = str(home)
    env.update(extra or {})
    return env


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A `preexec_fn` that makes the child receive `sig` when this process dies (Linux).

    Without it a `kill -9` of the CLI or of a pytest run leaves orphan servers holding
    the ports and the data folders. Caveats of PR_SET_PDEATHSIG that callers must know:
    the signal fires when the *thread* that spawned the child ends, so spawn from a
    thread that lives as long as the server (the main thread); and it is cleared by a
    credential change, which is fine here because CPython switches `user=` before it
    calls `preexec_fn`. libc is resolved here, before fork, so the child only makes one
    foreign call. Returns None where prctl does not exist.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(sig))
        if os.getppid() != parent:  # the parent died between fork and prctl
            os.kill(os.getpid(), sig)

    return preexec


def run_as(user: str | None) -> dict[str, Any]:
    """`subprocess` keyword arguments that run a child as `user` with that user's own group only.

    `user=` alone would leave the child in our groups: as root, group root, which reads
    every root-group-readable file. None: the current user (no arguments).
    """
    if user is None:
        return {}
    import pwd

    entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def run_coroutine(factory: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    """Run an async client call from sync code, also when the caller is inside an event loop.

    Readiness probes use async clients (temporalio, asyncpg); `asyncio.run` refuses to
    nest, so inside a running loop the probe gets a short-lived thread and loop.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="apex-stack-probe") as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()


def _kill_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class ServerProcess(ABC):
    """One embedded server run as a child process of this Python process.

    The child runs in its own session (so a Ctrl-C in the terminal reaches only the
    CLI, which then stops the servers in order), writes stdout and stderr to
    `<data_dir>/logs/<log_name>.log`, and is sent its stop signal if this process dies.
    `stop()` only ever touches the process this object spawned.
    """

    service: ClassVar[str]
    """Human name used in messages ("Temporal", "PostgreSQL", "Redis")."""
    log_name: ClassVar[str]
    stop_signal: ClassVar[signal.Signals] = signal.SIGTERM

    def __init__(
        self,
        data_dir: Path | str,
        *,
        host: str = "127.0.0.1",
        allow_remote: bool = False,
        startup_timeout: float = 60.0,
        stop_timeout: float = 30.0,
    ) -> None:
        check_bind_host(host, allow_remote=allow_remote)
        self.data_dir = Path(data_dir).expanduser().absolute()
        self.host = host
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    # -- what a subclass provides ------------------------------------------------

    @abstractmethod
    def port_claims(self) -> list[PortClaim]:
        """The ports the server will listen on, checked before it is spawned."""

    @abstractmethod
    def command(self) -> list[str]:
        """The argv of the server."""

    @abstractmethod
    def probe(self) -> bool:
        """One readiness check: True when the server answers. Exceptions mean "not yet"."""

    def _prepare_data(self) -> None:
        """Create or migrate on-disk state (e.g. initdb); must be idempotent."""
        return None

    def _after_ready(self) -> None:
        """One-time setup that needs the server up (e.g. CREATE DATABASE)."""
        return None

    def _spawn_user(self) -> str | None:
        """System user to run the server as (None: the current user)."""
        return None

    def environment(self) -> dict[str, str]:
        """The child's environment: `child_environment` of its data folder (extend, never widen)."""
        return child_environment(self.data_dir)

    # -- state ---------------------------------------------------------------------

    @property
    def log_path(self) -> Path:
        return self.data_dir / "logs" / f"{self.log_name}.log"

    @property
    def is_running(self) -> bool:
        """Whether the process this object spawned is alive (it may not be ready yet)."""
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self.is_running and self._process is not None else None

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        """Start the server and block until it answers; no-op when already running.

        Raises `StackError` naming the service, the cause (busy port, early exit,
        timeout) and the tail of its log.
        """
        if self.is_running:
            return
        self.prepare()
        self.spawn()
        self.wait_ready()

    def prepare(self) -> None:
        """Check the ports and prepare the data folder; safe to run in a worker thread.

        Split from `spawn()` so the embedded stack can initialise several data folders
        concurrently while still spawning every child from the main thread.
        """
        ensure_ports_free(self.port_claims(), self.host)
        private_dir(self.data_dir)
        private_dir(self.log_path.parent)
        self._prepare_data()

    def spawn(self) -> None:
        """Spawn the child without waiting for it; call from a long-lived thread (see `die_with_parent`)."""
        if self.is_running:
            return
        self._process = None
        argv = self.command()
        with self.open_log() as log:
            self._log_offset = log.tell()
            stamp = datetime.now(UTC).isoformat(timespec="seconds")
            log.write(f"--- apex: starting {self.service} at {stamp}: {shlex.join(argv)}\n".encode())
            log.flush()
            try:
                self._process = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.data_dir,
                    env=self.environment(),
                    umask=CHILD_UMASK,
                    start_new_session=True,
                    preexec_fn=die_with_parent(self.stop_signal),
                    **run_as(self._spawn_user()),
                )
            except OSError as exc:
                raise StackError(f"{self.service} could not be launched ({argv[0]}): {exc}") from exc

    def open_log(self) -> BinaryIO:
        """The server's log file for appending, readable by its owner only (server output may
        quote the data it was handling)."""
        private_dir(self.log_path.parent)
        fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            os.fchmod(fd, 0o600)
            return os.fdopen(fd, "ab")
        except BaseException:
            os.close(fd)
            raise

    def wait_ready(self, timeout: float | None = None) -> None:
        """Poll `probe()` until it succeeds; on early exit or timeout stop the child and raise."""
        limit = self.startup_timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        last_error: BaseException | None = None
        while True:
            process = self._process
            if process is None:
                raise StackError(f"{self.service} is not running; call start() first")
            code = process.poll()
            if code is not None:
                self.stop()
                raise self._failure(f"exited with code {code} while starting")
            try:
                if self.probe():
                    break
            except Exception as exc:  # noqa: BLE001 - any probe failure means "not ready yet"
                last_error = exc
            if time.monotonic() >= deadline:
                self.stop()
                detail = f" (last check: {type(last_error).__name__}: {last_error})" if last_error else ""
                raise self._failure(f"did not become ready within {limit:.0f}s{detail}")
            time.sleep(0.25)
        try:
            self._after_ready()
        except Exception as exc:
            self.stop()
            raise self._failure(f"started, but its setup failed: {exc}") from exc

    def stop(self, timeout: float | None = None) -> None:
        """Stop the child: its stop signal, a wait, then SIGKILL to its whole process group.

        The signal goes to the server's main process only, which shuts its own workers
        down in order (a PostgreSQL backend must not get the postmaster's SIGINT); the
        group is then killed for anything left. The main process is reaped last, so the
        group id cannot be reused by an unrelated process while we signal it.
        """
        process = self._process
        if process is None:
            return
        limit = self.stop_timeout if timeout is None else timeout
        try:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, self.stop_signal)
                if not _wait_exited(process.pid, limit):
                    _kill_group(process.pid, signal.SIGKILL)
                    _wait_exited(process.pid, 10.0)
                _kill_group(process.pid, signal.SIGKILL)
            process.wait(timeout=10.0)
        finally:
            self._process = None

    def restart(self) -> None:
        """Stop then start again on the same data folder and ports."""
        self.stop()
        self.start()

    async def astart(self) -> None:
        """`start()` for async callers: slow parts run in threads, the spawn in the loop's thread."""
        if self.is_running:
            return
        await asyncio.to_thread(self.prepare)
        self.spawn()
        await asyncio.to_thread(self.wait_ready)

    async def astop(self) -> None:
        await asyncio.to_thread(self.stop)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid={self.pid}" if self.is_running else "stopped"
        return f"{type(self).__name__}({str(self.data_dir)!r}, {state})"

    # -- errors ------------------------------------------------------------------------

    def log_tail(self) -> str:
        """The end of this run's log output (empty if nothing was written)."""
        try:
            with self.log_path.open("rb") as log:
                size = log.seek(0, os.SEEK_END)
                log.seek(max(self._log_offset, size - _LOG_TAIL_BYTES))
                data = log.read()
        except OSError:
            return ""
        lines = data.decode("utf-8", errors="replace").splitlines()
        return "\n".join(lines[-_LOG_TAIL_LINES:])

    def _failure(self, reason: str) -> StackError:
        tail = self.log_tail().strip() or "(empty)"
        return StackError(f"{self.service} {reason}. Its log {self.log_path} ends with:\n{tail}")


def _wait_exited(pid: int, timeout: float) -> bool:
    """Wait until child `pid` has exited, without reaping it (it stays a zombie).

    Keeping the zombie keeps its process-group id reserved, so a following killpg
    cannot hit a new, unrelated group that reused the number.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return True
        except ChildProcessError:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
