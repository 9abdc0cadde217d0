"""The soak (tests/chaos/soak.py) in small, inside `nox -s tests`: the soak's stack and
mixed load from every source at a tenth of its rates for 75 s, every resource series
sampled every 10 s, the two pauses at rest with memory sampled, then the same verdict as
the chaos run (nothing acknowledged lost, nothing duplicated). 75 s say nothing about
leaks — flatness is reported, not judged; the full soak (`nox -s soak`) judges it. What
this catches is a soak that no longer runs: a series no longer sampled, a stack that no
longer comes to rest, a report that no longer renders.
"""

from __future__ import annotations

import pytest
from support.chaos_run import run_harness

pytestmark = [pytest.mark.e2e, pytest.mark.chaos, pytest.mark.slow, pytest.mark.timeout(420)]

SEED = 20261202
PROCESSES = ("api0", "api1", "worker0", "worker1", "edi-watcher", "temporal", "postgres", "redis", "graph")


def test_the_soak_smoke_samples_every_series_rests_twice_and_loses_nothing() -> None:
    run = run_harness("soak-smoke", SEED)
    doc, text, where = run.doc, run.text, run.where
    verdict, soak = doc["verdict"], doc["soak"]
    assert verdict.get("totals", {}).get("lost", 0) == 0, where
    assert not verdict.get("duplicates"), where
    assert verdict["passed"], where
    assert run.returncode == 0, where
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
    run.clean()  # kept when anything above failed
