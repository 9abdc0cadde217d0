"""pytest plugin of the Apex testing kit (registered through the `pytest11` entry point of
apex-platform; install `apex-platform[testing]`). docs/plugins.md, "The testing kit", shows
each fixture in use.

Session-scoped fixtures run the real embedded servers on free ports in the session's
temporary folder, started only when a test asks for them:

- `apex_temporal_server` -> `TemporalDevServer` (use `.address`; Apex search attributes registered)
- `apex_postgres_server` -> `PostgresServer` (use `.dsn`; database `apex` with pgvector)
- `apex_redis_server` -> `RedisServer` (use `.url`; FalkorDB loaded)
- `apex_inbox` -> `Inbox` in a fresh schema on `apex_postgres_server`, its pool open (per test)
- `apex_time_skipping` -> a `temporalio.testing.WorkflowEnvironment` with time skipping
  (`WorkflowEnvironment.start_time_skipping()`, the platform's data converter): workflow
  timers of hours pass at once. It needs Temporal's test server: the executable named by
  APEX_TEMPORAL_TEST_SERVER, else the SDK downloads it; where neither works the tests that
  ask for it are skipped, saying why.

Function-scoped factories (each thing they start is stopped when the test ends):

- `apex_worker(*plugins, priorities=..., **options)` -> async context manager of a
  `WorkerHarness`: an in-process worker with exactly `plugins` (entry-point names, plugin
  modules/objects, or bare sources, enrichers and sinks) on task queues and an inbox schema
  of its own, on the session's Temporal and PostgreSQL. `options` go to
  `testing.worker.build_runtime` (`prefix`, `saga`, `core`, Temporal settings such as
  `activity_heartbeat_seconds`). The harness starts polls (`sync(source, account)`), reads
  the inbox (`deliveries`, `wait_delivered`, `produced`) and says what it runs
  (`plugin_names()`).
- `apex_stack(*plugins, priorities=..., **options)` -> async context manager of a
  `StackHarness`: the real API and worker (`apex_platform.serve.serve`) over HTTP on a free
  port (`.url`, `.webhook(source, body, headers)`), plus everything a `WorkerHarness` has.
- `apex_app_client(*plugins, **options)` -> litestar `AsyncTestClient` on the real app of a
  test runtime, where HTTP itself is not the point (`async with client: await client.get(...)`).
  The Temporal client is lazy: no Temporal call, no server needed.
- `apex_fake_vendor(app, name=...)` -> a started `FakeVendorServer` (`.base_url`): a fake
  vendor's ASGI app under uvicorn on a free port.
- `apex_isolated_home(*env_prefixes, chdir=False)` -> `Path`: an empty APEX_HOME of the
  test's own, the environment's variables with those prefixes removed (`"APEX_REDIS_"`),
  the cached core settings cleared before and after.

Helpers to import: `testing.signing` (`HmacScheme`, `signed`, `SignedRequest.tampered()`
/ `.unsigned()` / `.resigned()`, `check_verify`) for signed webhook requests;
`testing.polling.drain_poll` (a whole poll run without Temporal); `testing.sinks`
(`MemorySink`, `CountingSink`, `FaultySink`); `testing.records.make_record`;
`testing.inbox` (delivery states, rows and lineage); `testing.waiting.wait_until`;
`testing.worker` (`build_runtime`, `running_worker`, `WorkerTask`, `SourceHarness`);
`testing.stack` (`running_stack`, `serving_app`, `app_client`); `testing.processes`
(`apex-platform` commands as child processes); `testing.mutations` (mutated vendor
documents, `deadline`); `testing.hostile_json`.

Every project that installs apex-platform gets this plugin, so the module imports
nothing heavy at import time; the servers' code is imported inside the fixtures.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from litestar import Litestar
    from litestar.testing import AsyncTestClient
    from temporalio.testing import WorkflowEnvironment

    from apex_platform.inbox import Inbox
    from apex_platform.stack.postgres import PostgresServer
    from apex_platform.stack.redis_server import RedisServer
    from apex_platform.stack.temporal_server import TemporalDevServer
    from apex_platform.testing.stack import StackHarness
    from apex_platform.testing.vendor_server import FakeVendorServer
    from apex_platform.testing.worker import WorkerHarness

    WorkerFactory = Callable[..., AbstractAsyncContextManager[WorkerHarness]]
    StackFactory = Callable[..., AbstractAsyncContextManager[StackHarness]]
    AppClientFactory = Callable[..., AsyncTestClient[Litestar]]
    FakeVendorFactory = Callable[..., FakeVendorServer]

TEST_SERVER_ENV = "APEX_TEMPORAL_TEST_SERVER"

HARD_EXIT_ENV = "APEX_PYTEST_HARD_EXIT"

_exit_status_key = pytest.StashKey[int]()
_configured_depth = 0
_configured_key = pytest.StashKey[bool]()
"""Set on a config this plugin's `pytest_configure` ran for (another plugin's usage error can
stop pytest before it, and `pytest_unconfigure` still runs)."""
_session_guard_file: str | None = None
"""The payload-guard file this process made (removed at the end; an inherited one is not)."""
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


@pytest.fixture
async def apex_inbox(apex_postgres_server: PostgresServer) -> AsyncIterator[Inbox]:
    """An inbox of its own (a fresh schema) on the session's PostgreSQL, its pool open."""
    import uuid

    from apex_platform.inbox import Inbox, InboxSettings

    box = Inbox(InboxSettings(dsn=apex_postgres_server.dsn, schema_name=f"t_{uuid.uuid4().hex[:12]}"))
    await box.pool()
    try:
        yield box
    finally:
        await box.close()


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


@pytest.fixture(scope="session")
async def apex_time_skipping() -> AsyncIterator[WorkflowEnvironment]:
    """Temporal's time-skipping test environment for the session, with the platform's data
    converter (payload guard and encryption). Skipped, saying why, where the test server
    cannot be had (no APEX_TEMPORAL_TEST_SERVER and no download)."""
    from temporalio.testing import WorkflowEnvironment

    from apex_platform.settings import TemporalSettings
    from apex_platform.temporal.client import data_converter

    existing = os.environ.get(TEST_SERVER_ENV) or shutil.which("temporal-test-server")
    try:
        env = await WorkflowEnvironment.start_time_skipping(
            data_converter=data_converter(TemporalSettings()), test_server_existing_path=existing
        )
    except RuntimeError as exc:
        pytest.skip(
            f"Temporal's time-skipping test server is not available ({exc}); set {TEST_SERVER_ENV} "
            "to a temporal-test-server executable"
        )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture
def apex_worker(
    apex_temporal_server: TemporalDevServer, apex_postgres_server: PostgresServer, tmp_path: Path
) -> WorkerFactory:
    """`async with apex_worker(connector, sink, priorities=["P2"]) as harness:` an in-process
    worker with exactly these plugins (see the module docstring)."""
    from apex_platform.testing.worker import running_worker

    def start(*plugins: Any, **options: Any) -> AbstractAsyncContextManager[WorkerHarness]:
        options.setdefault("inbox_dsn", apex_postgres_server.dsn)
        return running_worker(apex_temporal_server.address, options.pop("home", tmp_path), *plugins, **options)

    return start


@pytest.fixture
def apex_stack(
    apex_temporal_server: TemporalDevServer, apex_postgres_server: PostgresServer, tmp_path: Path
) -> StackFactory:
    """`async with apex_stack(connector, sink, priorities=["P0"]) as stack:` the real API and
    worker over HTTP (`stack.url`) with exactly these plugins."""
    from apex_platform.testing.stack import running_stack

    def start(*plugins: Any, **options: Any) -> AbstractAsyncContextManager[StackHarness]:
        options.setdefault("inbox_dsn", apex_postgres_server.dsn)
        return running_stack(apex_temporal_server.address, options.pop("home", tmp_path), *plugins, **options)

    return start


@pytest.fixture
def apex_app_client(request: pytest.FixtureRequest, tmp_path: Path) -> AppClientFactory:
    """`apex_app_client(connector, sink)`: litestar's AsyncTestClient on the real app of a
    runtime with exactly these plugins. Its Temporal client is lazy (`temporal_address`,
    default an address nothing serves); the inbox is the session's PostgreSQL unless
    `inbox_dsn` or `inbox` is given (asked for only then)."""
    from apex_platform.testing.stack import app_client
    from apex_platform.testing.worker import build_runtime

    def make(*plugins: Any, temporal_address: str = "127.0.0.1:1", **options: Any) -> AsyncTestClient[Litestar]:
        if "inbox_dsn" not in options and "inbox" not in options:
            options["inbox_dsn"] = request.getfixturevalue("apex_postgres_server").dsn
        client: dict[str, Any] = options.pop("client", {})
        open_sinks: bool = options.pop("open_sinks", False)
        runtime = build_runtime(temporal_address, options.pop("home", tmp_path), plugins, **options)
        return app_client(runtime, open_sinks=open_sinks, **client)

    return make


@pytest.fixture
def apex_isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Path]]:
    """`apex_isolated_home("APEX_POSTGRES_", chdir=True)`: an empty APEX_HOME of this test's
    own, none of the environment's variables with the given prefixes, optionally the working
    folder there too (no stray `.env`); the cached core settings are cleared before and after."""
    from apex_platform.settings import core_settings

    def make(*env_prefixes: str, chdir: bool = False) -> Path:
        home = tmp_path / "apex-home"
        home.mkdir(exist_ok=True)
        for name in list(os.environ):
            if name.startswith(env_prefixes):
                monkeypatch.delenv(name)
        monkeypatch.setenv("APEX_HOME", str(home))
        if chdir:
            monkeypatch.chdir(home)
        core_settings.cache_clear()
        return home

    yield make
    core_settings.cache_clear()


@pytest.fixture
def apex_fake_vendor() -> Iterator[FakeVendorFactory]:
    """`apex_fake_vendor(app, name="fake Front")`: serve a fake vendor's ASGI app on a free
    port (started; `.base_url`), stopped when the test ends."""
    from apex_platform.testing.vendor_server import FakeVendorServer

    started: list[FakeVendorServer] = []

    def start(app: Any, **options: Any) -> FakeVendorServer:
        server = FakeVendorServer(app, **options)
        server.start()
        started.append(server)
        return server

    yield start
    for server in reversed(started):
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
    global _configured_depth, _session_key_dir, _session_guard_file
    config.stash[_configured_key] = True
    _configured_depth += 1
    if _configured_depth == 1 and not os.environ.get(GUARD_FILE_ENV):
        fd, path = tempfile.mkstemp(prefix="apex-payload-guard-", suffix=".log")
        os.close(fd)
        os.environ[GUARD_FILE_ENV] = path
        _session_guard_file = path
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
    global _configured_depth, _session_key_dir, _session_guard_file
    if not config.stash.get(_configured_key, False):
        return  # pytest stopped before this plugin's pytest_configure ran for this config
    _configured_depth -= 1
    if _configured_depth == 0 and _session_key_dir is not None:
        shutil.rmtree(_session_key_dir, ignore_errors=True)
        _session_key_dir = None
    if _configured_depth == 0 and _session_guard_file is not None:
        with contextlib.suppress(OSError):  # read by pytest_sessionfinish already
            os.unlink(_session_guard_file)
        if os.environ.get(GUARD_FILE_ENV) == _session_guard_file:
            del os.environ[GUARD_FILE_ENV]
        _session_guard_file = None
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
