"""The chaos harness (tests/chaos) in small, inside `nox -s tests`: a fixed seed, 80 s of
mixed load from every source with two faults of each kind (kills, a power cut, Temporal
restarts, PostgreSQL and Redis paused and restarted, Redis data loss, a flaky sink,
failing vendors), then the verdict from the stores: nothing acknowledged lost, nothing
duplicated, poison quarantined or landed everywhere, no dead letter left open, every
cursor at its vendor's final state. The full run is `nox -s chaos` (20 minutes).

Nothing is tolerated: a stale cache (Redis older than PostgreSQL and the graph after it
lost its data — fixed by the saga's read-repair, docs/reliability.md) fails the test too.

The harness runs as its own process (it kills servers and processes of its own); a failed
run keeps its run dir, whose path is in the assertion message, with the seed, the fault
schedule, the ledger of every delivery and every process's log.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.chaos, pytest.mark.slow, pytest.mark.timeout(420)]

ROOT = Path(__file__).resolve().parents[1]
SEED = 20260310


def test_the_chaos_smoke_run_loses_and_duplicates_nothing() -> None:
    # not under pytest's tmp root: as root, PostgreSQL runs as another user that must reach it
    run_dir = Path(tempfile.mkdtemp(prefix=f"apex-chaos-smoke-{SEED}-"))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        done = subprocess.run(
            [
                *(sys.executable, "-m", "tests.chaos", "--profile", "smoke", "--seed", str(SEED)),
                *("--run-dir", str(run_dir)),
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=400,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the chaos smoke run did not finish in time; its run dir: {run_dir}\n{exc.stdout or ''}"[-6000:])
    report = run_dir / "chaos-report.json"
    assert report.exists(), f"no report; run dir {run_dir}\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    doc = json.loads(report.read_text())
    verdict = doc["verdict"]
    text = (run_dir / "chaos-report.txt").read_text()
    where = f"seed {SEED}, run dir {run_dir}:\n{text[-6000:]}"
    assert doc["wall_s"] <= 180, where  # a smoke, not a soak
    assert not any(f.startswith("the harness stopped") for f in verdict.get("failures", [])), where
    assert verdict.get("totals", {}).get("lost", 0) == 0, where
    assert not verdict.get("duplicates"), where
    assert sum(doc["duplicated_by_source"].values()) == 0, where
    kinds = {kind for kind, t in doc["faults_by_kind"].items() if t["injected"] >= 2}
    assert len(kinds) == 10, where  # a few faults of every kind
    assert verdict["passed"], where
    assert done.returncode == 0, where
    shutil.rmtree(run_dir, ignore_errors=True)  # kept when anything above failed
