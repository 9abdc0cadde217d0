"""Running the chaos harness (`python -m tests.chaos`) as its own process from a test: it
kills servers and processes of its own, so it is never run inside pytest's."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class ChaosRun:
    run_dir: Path
    returncode: int
    doc: dict[str, Any]
    #: the report's text, and where to look (seed, run dir, the report's end) for assertions
    text: str
    where: str

    def clean(self) -> None:
        """Remove the run dir: call it last, so that a failed assertion keeps it."""
        shutil.rmtree(self.run_dir, ignore_errors=True)


def run_harness(profile: str, seed: int, *, timeout: float = 400) -> ChaosRun:
    """Run one profile with one seed and read its report (`chaos-report.json` and `.txt`).
    The run dir is not under pytest's tmp root: as root, PostgreSQL runs as another user
    that must reach it."""
    run_dir = Path(tempfile.mkdtemp(prefix=f"apex-{profile}-{seed}-"))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "tests.chaos", "--profile", profile, "--seed", str(seed), "--run-dir", str(run_dir)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout if isinstance(exc.stdout, str) else ""  # text=True: str, when any
        pytest.fail(f"the {profile} run did not finish in time; its run dir: {run_dir}\n{out}"[-6000:])
    report = run_dir / "chaos-report.json"
    assert report.exists(), f"no report; run dir {run_dir}\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    text = (run_dir / "chaos-report.txt").read_text()
    return ChaosRun(
        run_dir=run_dir,
        returncode=done.returncode,
        doc=json.loads(report.read_text()),
        text=text,
        where=f"seed {seed}, run dir {run_dir}:\n{text[-6000:]}",
    )
