"""pytest plugin of the Apex testing kit (registered through the `pytest11` entry point).

Session-scoped fixtures run the real embedded servers on free ports in the
session's temporary folder, started only when a test asks for them:

- `apex_temporal_server` -> `TemporalDevServer` (use `.address`; Apex search attributes registered)
- `apex_postgres_server` -> `PostgresServer` (use `.dsn`; database `apex` with pgvector)
- `apex_redis_server` -> `RedisServer` (use `.url`; FalkorDB loaded)

Every project that installs apex-platform gets this plugin, so the module imports
nothing heavy at import time; the servers' code is imported inside the fixtures.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from apex_platform.stack.postgres import PostgresServer
    from apex_platform.stack.redis_server import RedisServer
    from apex_platform.stack.temporal_server import TemporalDevServer

HARD_EXIT_ENV = "APEX_PYTEST_HARD_EXIT"

_exit_status_key = pytest.StashKey[int]()
_configured_depth = 0
"""How many pytest configs are live in this process (>1 inside an in-process pytester run)."""


@pytest.fixture(scope="session")
def apex_temporal_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TemporalDevServer]:
    """A headless Temporal dev server for the whole session, on free ports."""
    from apex_platform.stack.ports import free_port
    from apex_platform.stack.temporal_server import TemporalDevServer

    server = TemporalDevServer(tmp_path_factory.mktemp("apex-temporal"), port=free_port(), ui_port=None)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def apex_postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """A PostgreSQL server with database `apex` and pgvector for the whole session, on a free port."""
    from apex_platform.stack.ports import free_port
    from apex_platform.stack.postgres import PostgresServer

    with postgres_data_dir(tmp_path_factory) as data_dir:
        server = PostgresServer(data_dir, port=free_port())
        server.start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="session")
def apex_redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A Redis server with FalkorDB for the whole session, on a free port."""
    from apex_platform.stack.ports import free_port
    from apex_platform.stack.redis_server import RedisServer

    server = RedisServer(tmp_path_factory.mktemp("apex-redis"), port=free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def postgres_data_dir(tmp_path_factory: pytest.TempPathFactory, name: str = "apex-postgres") -> Iterator[Path]:
    """A data folder PostgreSQL can keep reaching while other pytest sessions start.

    As root, PostgreSQL runs as an unprivileged user that must traverse every parent
    folder; pytest resets its `/tmp/pytest-of-<user>` root to 0700 whenever any pytest
    session of that user starts (a parallel run, a nested one), which would cut the
    server off mid-run. So as root the folder is made under the system temp dir and
    removed afterwards; otherwise it is an ordinary session temp folder.
    """
    if os.geteuid() != 0:
        yield tmp_path_factory.mktemp(name)
        return
    folder = Path(tempfile.mkdtemp(prefix=f"{name}-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


GUARD_FILE_ENV = "APEX_PAYLOAD_GUARD_FILE"


PAYLOAD_ENV = ("APEX_PAYLOAD_KEYS", "APEX_PAYLOAD_KEYS_FILE", "APEX_PAYLOAD_ENCRYPTION")
_session_key_dir: str | None = None


def pytest_configure(config: pytest.Config) -> None:
    """Every Temporal payload of the session (this process and the API and worker
    processes it starts) goes through the payload guard; violations land in one file.
    And it is encrypted, as in production: unless the environment configures payload
    encryption, the session makes a key file of its own (as `apex-platform dev` does)
    and names it in APEX_PAYLOAD_KEYS_FILE, which the processes it starts inherit."""
    global _configured_depth, _session_key_dir
    _configured_depth += 1
    if _configured_depth == 1 and not os.environ.get(GUARD_FILE_ENV):
        fd, path = tempfile.mkstemp(prefix="apex-payload-guard-", suffix=".log")
        os.close(fd)
        os.environ[GUARD_FILE_ENV] = path
    if _configured_depth == 1 and not any(name in os.environ for name in PAYLOAD_ENV):
        from apex_platform.temporal.encryption import write_key_file

        _session_key_dir = tempfile.mkdtemp(prefix="apex-payload-keys-")
        os.environ["APEX_PAYLOAD_KEYS_FILE"] = str(write_key_file(Path(_session_key_dir) / "keys", "test-session"))


def guard_violations() -> list[str]:
    """The payload-guard violations recorded so far in this session (any of its processes)."""
    path = os.environ.get(GUARD_FILE_ENV)
    if not path or not os.path.exists(path):
        return []
    return Path(path).read_text(encoding="utf-8", errors="replace").splitlines()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A payload over the guard's limit anywhere in the session fails it, even when the
    code that sent it recovered: bodies, pages and files must travel by reference."""
    if _configured_depth == 1:
        violations = guard_violations()
        if violations:
            reporter = session.config.pluginmanager.get_plugin("terminalreporter")
            lines = [f"{len(violations)} Temporal payload(s) over the limit (references only):", *violations[:20]]
            if reporter is not None:
                reporter.write_line("\n".join(lines), red=True)
            else:
                sys.stderr.write("\n".join(lines) + "\n")
            exitstatus = int(pytest.ExitCode.TESTS_FAILED)
            session.exitstatus = exitstatus
    session.config.stash[_exit_status_key] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """Leave with `os._exit(status)` once pytest is done (Temporal sdk-python issue 300).

    The Temporal SDK's Rust runtime keeps native threads alive; when the interpreter
    finalises with them the process sometimes aborts ("Fatal Python error" / SIGABRT)
    after every test passed, and CI sees a failure. By this point the session's
    fixtures are torn down (servers stopped), reports and caches are written, so the
    remaining interpreter teardown has nothing to do that we need.

    Off when APEX_PYTEST_HARD_EXIT=0. Also skipped where exiting would be wrong: inside
    an in-process pytester run, in an xdist worker (execnet must finish talking), and
    when pytest was called as a library (`pytest.main()` from a script that goes on).
    Note that `coverage run -m pytest` saves its data at interpreter exit: use
    pytest-cov or set APEX_PYTEST_HARD_EXIT=0 with it.
    """
    global _configured_depth, _session_key_dir
    _configured_depth -= 1
    if _configured_depth == 0 and _session_key_dir is not None:
        shutil.rmtree(_session_key_dir, ignore_errors=True)
        _session_key_dir = None
    status = config.stash.get(_exit_status_key, None)
    if status is None or os.environ.get(HARD_EXIT_ENV, "1").strip() == "0":
        return
    if _configured_depth > 0 or hasattr(config, "workerinput") or not _pytest_is_the_program():
        return
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        if stream is not None:
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
    os._exit(status)


def _pytest_is_the_program() -> bool:
    """Whether this process was started as `pytest`/`py.test` or `python -m pytest`."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name in ("pytest", "pytest.__main__", "py.test"):
        return True
    return Path(sys.argv[0]).name in ("pytest", "py.test", "pytest.exe", "py.test.exe")
