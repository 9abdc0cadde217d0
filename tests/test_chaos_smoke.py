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

import pytest
from support.chaos_run import run_harness

pytestmark = [pytest.mark.e2e, pytest.mark.chaos, pytest.mark.slow, pytest.mark.timeout(420)]

SEED = 20260310


def test_the_chaos_smoke_run_loses_and_duplicates_nothing() -> None:
    run = run_harness("smoke", SEED)
    doc, where = run.doc, run.where
    verdict = doc["verdict"]
    assert doc["wall_s"] <= 180, where  # a smoke, not a soak
    assert not any(f.startswith("the harness stopped") for f in verdict.get("failures", [])), where
    assert verdict.get("totals", {}).get("lost", 0) == 0, where
    assert not verdict.get("duplicates"), where
    assert sum(doc["duplicated_by_source"].values()) == 0, where
    kinds = {kind for kind, t in doc["faults_by_kind"].items() if t["injected"] >= 2}
    assert len(kinds) == 10, where  # a few faults of every kind
    assert verdict["passed"], where
    assert run.returncode == 0, where
    run.clean()  # kept when anything above failed
