"""Installing a distribution the way its users do, without touching the test environment:
`pip install --no-deps --target DIR PATH`, then child processes with `PYTHONPATH=DIR`.

The test environment (.nox/tests) already holds apex-platform and every dependency, so
`--no-deps` installs exactly the distribution under test; the target folder is the
test's own, deleted with its temporary directory.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

BIN = Path(sys.executable).parent
APEX = str(BIN / "apex-platform")


def pip_install_target(source: Path | str, target: Path, *, timeout: float = 300) -> None:
    """Build `source` (a project folder or a wheel) and install it into `target` only.

    With hatchling in this environment the build uses it (no index needed); otherwise pip
    fetches the build backend as it does for any user."""
    isolation = [] if importlib.util.find_spec("hatchling") is None else ["--no-build-isolation"]
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-input", "--disable-pip-version-check",
         "--quiet", *isolation, "--target", str(target), str(source)],
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"pip install --target {target} {source} failed:\n{done.stdout}\n{done.stderr}"


def env_with(target: Path | None, **extra: str) -> dict[str, str]:
    """This process's environment for a child that sees `target`'s distributions, with no
    APEX_ setting of the developer's (plugin selection, env files) or PYTEST_ one leaking in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APEX_", "PYTEST_")) and k != "PYTHONPATH"}
    if target is not None:
        env["PYTHONPATH"] = str(target)
    env.update(extra)
    return env


def run(
    args: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args), env=dict(env), cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
