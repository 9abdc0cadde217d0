"""Development sessions: `nox -s tests`, `nox -s demo`, `nox -s lint`, `nox -s bench`, `nox -s lock`,
`nox -s build`, and one isolated session per package (only core and that package installed)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nox

ROOT = Path(__file__).parent
nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True
nox.options.default_venv_backend = "venv"

PYTHON = os.environ.get("APEX_NOX_PYTHON") or None  # the interpreter running nox by default

CONSTRAINTS = ROOT / "constraints.txt"
"""The versions the suite was tested with, for every install (`nox -s lock` rewrites it)."""
CONSTRAINTS_HEADER = """\
# The versions of every dependency that the test suite passed with. Every nox session
# installs with `-c constraints.txt`, so CI (.ci/run -> nox -s tests) gets exactly these.
# A constraint installs nothing by itself; a package no pyproject.toml asks for is ignored.
# Refresh: `nox -s lock` (newest versions the pyproject.toml files allow), then
# `nox -s tests`, then commit this file with the change (see SECURITY.md, "Supply chain").
"""


def pinned(constrained: bool = True) -> list[str]:
    """`-c constraints.txt` for `session.install` (nothing while `nox -s lock` resolves afresh)."""
    return ["-c", str(CONSTRAINTS)] if constrained else []


def packages() -> list[Path]:
    """Every distribution folder of the monorepo, core first."""
    found = [ROOT / "core"]
    found += sorted(p.parent for p in ROOT.glob("plugins/*/pyproject.toml"))
    found += sorted(p.parent for p in ROOT.glob("connectors-*/pyproject.toml"))
    return [p for p in found if (p / "pyproject.toml").exists()]


def install_all(session: nox.Session, *, constrained: bool = True) -> None:
    session.install("--upgrade", "pip", *pinned(constrained))
    args: list[str] = []
    for pkg in packages():
        # each package's `testing` extra holds what its tests need (pip ignores a missing one)
        spec = f"{pkg}[embedded,testing]" if pkg.name == "core" else f"{pkg}[testing]"
        args += ["-e", spec]
    session.install(*pinned(constrained), *args)


def test_paths() -> list[str]:
    paths = [str(p / "tests") for p in packages() if (p / "tests").is_dir()]
    if (ROOT / "tests").is_dir():
        paths.append(str(ROOT / "tests"))
    return paths


#: sizes of the long intake scenarios inside `nox -s tests` (a smoke); `nox -s intake` runs them full size
SMOKE_SIZES = {"APEX_TEST_BACKLOG": "10000"}
#: what benchmarks/ needs beside the packages: the load generator's client and the dlt baseline
BENCH_TOOLS = ("aiohttp>=3.9", "dlt[postgres]>=1.31", "py-spy>=0.4")  # py-spy: run.py --profile


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The whole test suite: every package's tests and the cross-package ones (the long
    intake scenarios at smoke size; `nox -s intake` runs them full size)."""
    install_all(session)
    session.install(*pinned(), *BENCH_TOOLS)  # tests/test_bench_smoke.py runs benchmarks/run.py
    env = {"APEX_PYTEST_HARD_EXIT": "1", **SMOKE_SIZES}
    # the 25 slowest tests are printed at the end: the suite's time bound is watched in every run
    session.run("pytest", *parallel(session.posargs), "--durations=25", *test_paths(), *session.posargs, env=env)


def parallel(posargs: list[str]) -> list[str]:
    """pytest-xdist over `APEX_TEST_WORKERS` processes (default 2: the suite mostly waits on
    its servers, one process used 0.7 of the machine's 2 cores), a test file per process so
    module fixtures start once; `APEX_TEST_WORKERS=0` or an explicit `-n` in the arguments
    runs it as given. Each process starts its own embedded servers on free ports."""
    workers = os.environ.get("APEX_TEST_WORKERS", "2").strip()
    if workers in ("", "0", "1") or any(a == "-n" or a.startswith(("-n", "--numprocesses")) for a in posargs):
        return []
    return ["-n", workers, "--dist", "loadfile"]


@nox.session(python=PYTHON)
def intake(session: nox.Session) -> None:
    """The durable-intake scenarios at full size (a 100,000-delivery backlog, PostgreSQL
    paused 45 s under 3,000 Samsara deliveries, Temporal down 60 s, a power cut of the dev
    stack, two APIs and two workers with one of each killed)."""
    install_all(session)
    session.run("pytest", str(ROOT / "tests" / "test_intake.py"), *session.posargs, env={"APEX_PYTEST_HARD_EXIT": "1"})


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """Start the embedded stack, send every source's sample traffic, show what landed."""
    install_all(session)
    home = os.environ.get("APEX_HOME", str(ROOT / ".apex" / "demo"))
    session.run("apex-platform", "demo", *session.posargs, env={"APEX_HOME": home})


LINT_TOOLS = ("ruff", "mypy", "types-psutil", "asyncpg-stubs")
#: PyPA build (each wheel from its sdist), the backend it builds with, twine (`nox -s build`)
BUILD_TOOLS = ("build", "hatchling", "twine")
DIST = ROOT / "dist"


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff and mypy over every package."""
    install_all(session)
    session.install(*pinned(), *LINT_TOOLS)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", "--diff", ".")
    session.run("mypy", *[str(p / "src") for p in packages()])


@nox.session(python=PYTHON)
def build(session: nox.Session) -> None:
    """Sdists and wheels of every distribution into dist/ (emptied first, so it holds exactly
    one release): `python -m build` makes each wheel from its sdist, so a file the sdist
    leaves out fails here; then `twine check --strict` renders every long description.
    The isolated build environments get the hatchling of constraints.txt (PIP_CONSTRAINT)."""
    session.install(*pinned(), *BUILD_TOOLS)
    shutil.rmtree(DIST, ignore_errors=True)
    for pkg in packages():
        session.run("python", "-m", "build", "--outdir", str(DIST), str(pkg), env={"PIP_CONSTRAINT": str(CONSTRAINTS)})
    session.run("twine", "check", "--strict", *sorted(str(p) for p in DIST.iterdir()))


def _isolated(pkg: Path) -> None:
    @nox.session(name=f"isolated-{pkg.name}", python=PYTHON)
    def isolated(session: nox.Session) -> None:
        extras = "[embedded,testing]"
        if pkg.name == "core":
            session.install(*pinned(), "-e", f"{pkg}{extras}")
        else:
            session.install(*pinned(), "-e", f"{ROOT / 'core'}{extras}", "-e", f"{pkg}[testing]")
        session.run("pytest", str(pkg / "tests"), *session.posargs)

    isolated.__doc__ = f"Tests of {pkg.name} with only core and that package installed."


for _pkg in packages():
    if (_pkg / "tests").is_dir():
        _isolated(_pkg)


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmarks: figures and ratios against a baseline measured in the same run."""
    install_all(session)
    session.install(*pinned(), *BENCH_TOOLS)
    session.run("python", str(ROOT / "benchmarks" / "run.py"), *session.posargs)


@nox.session(python=PYTHON)
def chaos(session: nox.Session) -> None:
    """The chaos run (issue 10): embedded servers of its own, two APIs, two workers and the
    EDI watcher under a mixed load from every source while seeded faults are injected
    (20 minutes by default), then a verdict from the stores. Arguments go to the harness:
    `nox -s chaos -- --seed 7 --duration 5m` (see `python -m tests.chaos --help`)."""
    install_all(session)
    session.run("python", "-m", "tests.chaos", *session.posargs, env={"PYTHONPATH": str(ROOT)})


@nox.session(python=PYTHON, reuse_venv=False)
def lock(session: nox.Session) -> None:
    """Rewrite constraints.txt: every package and tool resolved afresh in a new virtualenv
    (the newest versions the pyproject.toml files allow), as `pip freeze` lists them.
    Run `nox -s tests` on the result before committing it."""
    install_all(session, constrained=False)
    session.install(*LINT_TOOLS, *BUILD_TOOLS, *BENCH_TOOLS)
    frozen = session.run("python", "-m", "pip", "freeze", "--all", "--exclude-editable", silent=True)
    # pip itself is pinned too; setuptools/wheel only come with the virtualenv
    lines = [line for line in str(frozen).splitlines() if line and not line.startswith(("setuptools==", "wheel=="))]
    CONSTRAINTS.write_text(CONSTRAINTS_HEADER + "\n".join(sorted(lines, key=str.lower)) + "\n", encoding="utf-8")
    session.log(f"wrote {len(lines)} versions to {CONSTRAINTS}")


@nox.session(python=PYTHON)
def soak(session: nox.Session) -> None:
    """The soak (issue 10): the chaos run's stack for 15 minutes at ten times the field rates
    of every source, no faults, with every process's memory, file descriptors, database
    connections, workflow histories, inbox and blob disk use and Redis memory sampled each
    minute and the slope of each, memory also at rest after the warm-up and after the load;
    then the same verdict. `nox -s soak -- --soak-scale 0.5`; a 2-minute smoke of it runs in
    `nox -s tests` (tests/test_soak_smoke.py)."""
    install_all(session)
    session.run("python", "-m", "tests.chaos", "--profile", "soak", *session.posargs, env={"PYTHONPATH": str(ROOT)})
