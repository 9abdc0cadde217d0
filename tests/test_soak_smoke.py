"""The soak (tests/chaos/soak.py) in small, inside `nox -s tests`: the soak's stack and
mixed load from every source at a tenth of its rates for 75 s, every resource series
sampled every 10 s, the two pauses at rest with memory sampled, then the same verdict as
the chaos run (nothing acknowledged lost, nothing duplicated). 75 s say nothing about
leaks — flatness is reported, not judged; the full soak (`nox -s soak`) judges it. What
this catches is a soak that no longer runs: a series no longer sampled, a stack that no
longer comes to rest, a report that no longer renders.
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
SEED = 20261202
PROCESSES = ("api0", "api1", "worker0", "worker1", "edi-watcher", "temporal", "postgres", "redis", "graph")


def test_the_soak_smoke_samples_every_series_rests_twice_and_loses_nothing() -> None:
    run_dir = Path(tempfile.mkdtemp(prefix=f"apex-soak-smoke-{SEED}-"))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        done = subprocess.run(
            [
                *(sys.executable, "-m", "tests.chaos", "--profile", "soak-smoke", "--seed", str(SEED)),
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
        pytest.fail(f"the soak smoke did not finish in time; its run dir: {run_dir}\n{exc.stdout or ''}"[-6000:])
    report = run_dir / "chaos-report.json"
    assert report.exists(), f"no report; run dir {run_dir}\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    doc = json.loads(report.read_text())
    text = (run_dir / "chaos-report.txt").read_text()
    where = f"seed {SEED}, run dir {run_dir}:\n{text[-6000:]}"
    verdict, soak = doc["verdict"], doc["soak"]
    assert verdict.get("totals", {}).get("lost", 0) == 0, where
    assert not verdict.get("duplicates"), where
    assert verdict["passed"], where
    assert done.returncode == 0, where
    # sampled: every process's memory and descriptors, the database, the stores, Temporal
    samples = soak["samples"]
    assert len(samples) >= 6, where
    last = samples[-1]
    for name in PROCESSES:
        assert last[f"rss_mb:{name}"] > 0, (name, where)
        assert last[f"fds:{name}"] > 0, (name, where)
    for series in ("pg_connections", "backlog", "inbox_mb", "redis_keys:redis", "redis_mb:graph", "history_max"):
        assert series in last, (series, where)
    assert last["delivered"] > 500, where  # the load ran
    # rested twice: drained, every process's memory sampled at rest
    for key in ("after_warmup", "after_load"):
        rest = soak["rest"][key]
        assert rest["drained"], (key, where)
        assert set(rest["rss_mb"]) == {f"rss_mb:{p}" for p in PROCESSES}, (key, where)
    assert soak["rest"]["paused_s"] > 0, where
    # judged after the warm-up, memory at rest, and rendered
    row = soak["slopes"]["rss_mb:worker0"]
    assert {"rest_begin", "rest_end", "flat_under_load", "flat"} <= set(row), where
    assert "fds:worker0" in soak["slopes"], where
    assert "at rest after the load: drained" in text, where
    shutil.rmtree(run_dir, ignore_errors=True)  # kept when anything above failed
