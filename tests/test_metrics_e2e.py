"""Metrics move when the events they count happen, seen as Prometheus sees them: scraped
over HTTP from a real `apex-platform api` and a real `apex-platform worker` (its own
metrics port, APEX_METRICS_WORKER_PORT, and the Temporal SDK's, APEX_METRICS_TEMPORAL_PORT),
on the session's Temporal and PostgreSQL. Every assertion is a delta or a value, never a time."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Deployment, front_event, front_headers
from prometheus_client.parser import text_string_to_metric_families
from support.procs import wait_for, wait_http

from apex_platform.stack.ports import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

#: Temporal SDK runtime metrics the dashboard charts (docs/operations.md lists them): a
#: worker that polled and ran one activity exports each of them
SDK_METRICS = (
    "temporal_request_total",
    "temporal_workflow_task_queue_poll_succeed_total",
    "temporal_activity_execution_latency_bucket",
    "temporal_workflow_task_schedule_to_start_latency_bucket",
    "temporal_worker_task_slots_available",
    "temporal_sticky_cache_size",
)


def scrape(url: str) -> Samples:
    text = httpx.get(url, timeout=30).text
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels` (0 when none)."""
    want = set(labels.items())
    return sum(v for (n, lab), v in samples.items() if n == name and want <= lab)


def names(samples: Samples) -> set[str]:
    return {n for n, _ in samples}


def post(dep: Deployment, body: bytes, headers: dict[str, str], source: str = "frontapp") -> httpx.Response:
    return httpx.post(f"{dep.url}/webhooks/{source}", content=body, headers=headers, timeout=30)


@pytest.fixture(scope="module")
def metered(
    tmp_path_factory: pytest.TempPathFactory, apex_temporal_server: Any, apex_postgres_server: Any
) -> Iterator[tuple[Deployment, int, int]]:
    """A deployment of this module's own (its inbox schema is fresh, so backlogs are exact);
    the API starts alone, the test starts the worker."""
    worker_port, temporal_port = free_port(), free_port()
    dep = Deployment(
        tmp_path_factory.mktemp("metered"),
        apex_temporal_server.address,
        apex_postgres_server.dsn,
        APEX_METRICS_INBOX_CACHE_SECONDS="0.2",
        APEX_METRICS_EXPECTED_INTERVALS="frontapp=2h",
    )
    dep.api.start()
    wait_http(f"{dep.url}/healthz", proc=dep.api)
    yield dep, worker_port, temporal_port
    dep.stop()


async def test_http_intake_workflow_activity_saga_and_business_metrics_move_with_the_events(
    metered: tuple[Deployment, int, int],
) -> None:
    dep, worker_port, temporal_port = metered
    api = f"{dep.url}/metrics"
    before = scrape(api)
    route = {"route": "/webhooks/{source}", "method": "POST"}

    # intake with no worker running: accepted, answered again (pending), refused, unknown
    event = front_event(text="Where is PRO 4417? Call 312-555-0100")
    body = json.dumps(event).encode()
    assert post(dep, body, front_headers(body)).status_code == 202
    assert post(dep, body, front_headers(body)).status_code == 202  # known, not landed yet
    assert post(dep, body, front_headers(body, secret="not-the-front-secret-at-all")).status_code == 401
    assert post(dep, b"{}", {"Content-Type": "application/json"}, source="nosuch").status_code == 404
    await asyncio.sleep(0.3)  # older than APEX_METRICS_INBOX_CACHE_SECONDS: the next scrape reads the inbox
    after = scrape(api)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("apex_http_requests_total", **route, status="202", source="frontapp") == 2
    assert delta("apex_http_requests_total", **route, status="401", source="frontapp") == 1
    assert delta("apex_http_requests_total", **route, status="404", source="unknown") == 1
    assert delta("apex_http_request_duration_seconds_count", **route, source="frontapp") == 3
    assert delta("apex_webhook_deliveries_total", source="frontapp", outcome="accepted") == 1
    assert delta("apex_webhook_deliveries_total", source="frontapp", outcome="pending") == 1
    assert delta("apex_webhook_deliveries_total", source="frontapp", outcome="unauthorized") == 1
    assert delta("apex_webhook_deliveries_total", source="unknown", outcome="not_found") == 1
    assert not [k for k in after if k[0] == "apex_http_requests_total" and ("route", "/metrics") in k[1]]
    # the inbox at scrape time: one delivery waiting, and how old it is
    assert value(after, "apex_inbox_up") == 1
    assert value(after, "apex_inbox_backlog", source="frontapp") == 1
    assert value(after, "apex_inbox_backlog_bytes", source="frontapp") == len(body)
    assert value(after, "apex_inbox_oldest_pending_seconds", source="frontapp") > 0
    assert value(after, "apex_build_info", role="api") == 1

    # the worker drains it: its own metrics port shows the workflow, activity, saga and records
    dep.start_worker(APEX_METRICS_WORKER_PORT=str(worker_port), APEX_METRICS_TEMPORAL_PORT=str(temporal_port))
    wait_http(f"http://127.0.0.1:{worker_port}/metrics", proc=dep.workers[0])
    await dep.landed(event["payload"]["id"])
    worker = f"http://127.0.0.1:{worker_port}/metrics"

    def landed_everywhere() -> bool:
        w = scrape(worker)
        return value(w, "apex_activities_finished_total", activity="apex.drain_inbox", outcome="completed") >= 1

    wait_for(landed_everywhere, timeout=60, what="the drain activity counted")
    w = scrape(worker)
    assert value(w, "apex_build_info", role="worker") == 1
    assert value(w, "apex_workflows_started_total", workflow="DrainWorkflow", source="frontapp") >= 1
    assert value(w, "apex_activities_started_total", activity="apex.drain_inbox", source="frontapp") >= 1
    assert value(w, "apex_activity_attempt_duration_seconds_count", activity="apex.drain_inbox", source="frontapp") >= 1
    assert value(w, "apex_records_parsed_total", source="frontapp") >= 1
    assert value(w, "apex_records_written_total", source="frontapp") >= 1
    assert value(w, "apex_sink_calls_total", sink="postgres", op="write", outcome="ok") >= 1
    assert value(w, "apex_saga_breaker_state", sink="postgres", op="write") == 0
    assert value(w, "apex_source_expected_interval_seconds", source="frontapp") == 7200
    assert value(w, "apex_source_last_write_timestamp_seconds", source="frontapp") > 0
    assert value(w, "apex_unparsed_deliveries_total", source="frontapp") == 0

    # landed: the same delivery is now a duplicate, and the backlog is empty for every reader
    dup_before = scrape(api)
    assert post(dep, body, front_headers(body)).status_code == 200
    await asyncio.sleep(0.3)
    dup_after = scrape(api)
    assert (
        value(dup_after, "apex_webhook_deliveries_total", source="frontapp", outcome="duplicate")
        - value(dup_before, "apex_webhook_deliveries_total", source="frontapp", outcome="duplicate")
        == 1
    )
    assert value(dup_after, "apex_inbox_backlog", source="frontapp") == 0
    wait_for(lambda: value(scrape(worker), "apex_inbox_backlog", source="frontapp") == 0, what="worker's inbox view")

    # a signed body that is not a Front event: refused at the edge, counted as malformed
    bad = b'{"type": "inbound_received", "payload": 7}'
    bad_before = scrape(api)
    assert post(dep, bad, front_headers(bad)).status_code == 400
    bad_after = scrape(api)
    for name, labels in [
        ("apex_webhook_deliveries_total", {"source": "frontapp", "outcome": "malformed"}),
        ("apex_http_requests_total", {**route, "status": "400", "source": "frontapp"}),
    ]:
        assert value(bad_after, name, **labels) - value(bad_before, name, **labels) == 1, name

    # the Temporal SDK's runtime metrics, on their own port
    sdk = scrape(f"http://127.0.0.1:{temporal_port}/metrics")
    missing = [n for n in SDK_METRICS if n not in names(sdk)]
    assert not missing, f"Temporal SDK metrics not exported: {missing}; seen {sorted(names(sdk))[:40]}"


def test_sdk_metric_names_used_by_the_dashboard_are_listed_in_the_docs() -> None:
    doc = (Path(__file__).parents[1] / "docs" / "operations.md").read_text(encoding="utf-8")
    assert all(f"`{n}`" in doc for n in SDK_METRICS), [n for n in SDK_METRICS if f"`{n}`" not in doc]


def test_a_worker_metrics_port_that_is_taken_names_the_setting(tmp_path: Path) -> None:
    import socket

    from apex_platform.errors import SettingsError
    from apex_platform.metrics import MetricsSettings, serve_worker_metrics

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(SettingsError, match="APEX_METRICS_WORKER_PORT"):
            serve_worker_metrics(MetricsSettings(worker_port=port))
