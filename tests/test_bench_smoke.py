"""`benchmarks/run.py` in small, inside `nox -s tests`: every scenario of `nox -s bench`
runs end to end at `--scale 0.01` (ten deliveries or so each) on servers of its own, and
the JSON it writes must hold every scenario, each one's figures, and every record found
in every store it was written to. Behaviour only: no figure is compared with a target.

The run writes its JSON to a temporary file and no page (`--docs -`), so the committed
benchmarks/results/latest.json and docs/benchmarks.md stay as the last full run left them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(700)]

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / "benchmarks" / "run.py"
sys.path.insert(0, str(ROOT / "benchmarks"))

from report import render_markdown, targets  # noqa: E402 - benchmarks/ is not a package


def _all_found(doc: dict[str, Any], where: str) -> None:
    stores = doc.get("stores")
    assert stores, f"{where}: no store was read back"
    for name, seen in stores.items():
        assert seen["expected"] > 0, f"{where}: nothing expected in {name}"
        assert seen["found"] == seen["expected"], f"{where}: {name} holds {seen['found']} of {seen['expected']}"


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bench-smoke") / "results.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("APEX_")}
    done = subprocess.run(
        [sys.executable, str(RUN), "--scale", "0.01", "--results", str(out), "--docs", "-"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=660,
    )
    assert done.returncode == 0, (
        f"benchmarks/run.py failed ({done.returncode}):\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    )
    doc: dict[str, Any] = json.loads(out.read_text())
    return doc


def test_every_scenario_ran_and_wrote_its_figures(results: dict[str, Any]) -> None:
    for key in (
        "edge",
        "temporal",
        "backlog_full",
        "p0",
        "footprint",
        "backlog_pg",
        "dlt",
        "saga_alone",
        "feeds",
        "scale_out",
    ):
        assert key in results, f"scenario {key} missing from the results"
    assert [r["senders"] for r in results["edge"]] == [1, 10, 100]
    for row in results["edge"]:
        assert row["accept"]["statuses"] == {"202": row["accept"]["count"]}, row["accept"]["statuses"]
        assert row["healthz"]["count"] > 0
        assert row["start_workflow"]["count"] > 0
    assert set(results["temporal"]) == {"1", "3"}
    assert all(results["temporal"][n]["count"] > 0 for n in ("1", "3"))
    assert results["p0"]["baseline_roundtrip"]["count"] > 0
    assert results["p0"]["to_delivered_at"]["count"] > 0
    assert results["dlt"]["records"] > 0
    assert results["dlt"]["extra_rows"] == 0
    footprint = results["footprint"]
    assert footprint["history"]["samsara"]["bytes"] > 0
    assert footprint["store_bytes"]["postgres"] > 0
    assert footprint["store_bytes"]["qdrant"] > 0
    assert all(v > 0 for v in results["rss_mib"].values()), results["rss_mib"]
    assert results["scale_out"]["2"]["workers"] == 2
    assert results["scale_out"]["1"]["workers"] == 1
    for key in ("edge", "temporal", "backlog_full", "p0", "backlog_pg", "saga_alone", "feeds"):
        assert key in results["load_average"]


def test_every_record_is_found_in_every_store_it_was_written_to(results: dict[str, Any]) -> None:
    _all_found(results["backlog_full"], "webhook backlog, four stores")
    assert set(results["backlog_full"]["stores"]) == {"postgres", "redis", "graph", "qdrant"}
    _all_found(results["p0"], "P0 deliveries")
    _all_found(results["backlog_pg"], "PostgreSQL-only backlog")
    _all_found(results["dlt"], "dlt")
    _all_found(results["saga_alone"], "saga alone")
    assert set(results["saga_alone"]["stores"]) == {"postgres", "redis", "graph", "qdrant"}
    for name in ("stream", "poll"):
        _all_found(results["feeds"][name], name)
        assert set(results["feeds"][name]["stores"]) == {"postgres", "redis", "graph", "qdrant"}
    for n in ("1", "2"):
        _all_found(results["scale_out"][n], f"scale-out with {n} worker(s)")
    # each delivery is a record of its own (a stop of its own), so a backlog is as many records
    assert results["backlog_full"]["stores"]["postgres"]["expected"] >= results["backlog_full"]["deliveries"]


def test_the_page_states_every_goal(results: dict[str, Any]) -> None:
    goals = targets(results)
    assert len(goals) == 5, goals
    assert all(g.endswith(("— met", "— not met")) for g in goals), goals
    page = render_markdown(results)
    for heading in ("End to end, and its baselines", "Bare Temporal baselines", "Scale-out", "Footprint", "N workers"):
        assert heading in page
