"""`apex-platform dev` serves every layer's metrics on the API's `/metrics` (API and worker
share the process), and the Temporal SDK's on APEX_METRICS_TEMPORAL_PORT: one signed Front
webhook moves the HTTP, intake, workflow, activity, saga and business metrics there."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import httpx
import pytest
from conftest import front_event, front_headers
from support.procs import wait_for
from test_dev_stack import dev_env, start_dev
from test_metrics_e2e import scrape, value

from apex_platform.stack.ports import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def test_dev_serves_the_worker_s_metrics_on_the_api_and_the_sdk_s_on_their_port(tmp_path: Path) -> None:
    home = tmp_path / "home"
    sdk_port = free_port()
    env = {
        **dev_env(home),
        "APEX_PLUGINS": "frontapp,postgres",
        "APEX_METRICS_TEMPORAL_PORT": str(sdk_port),
        "APEX_METRICS_INBOX_CACHE_SECONDS": "0.2",
    }
    dev, url = start_dev(home, env)
    try:
        before = scrape(f"{url}/metrics")
        assert value(before, "apex_build_info", role="api+worker") == 1
        event = front_event()
        body = json.dumps(event).encode()
        assert (
            httpx.post(f"{url}/webhooks/frontapp", content=body, headers=front_headers(body), timeout=30).status_code
            == 202
        )

        def landed() -> bool:
            return value(scrape(f"{url}/metrics"), "apex_records_written_total", source="frontapp") >= 1

        wait_for(landed, timeout=120, what="the record written, seen on the API's /metrics")
        after = scrape(f"{url}/metrics")
        route = {"route": "/webhooks/{source}", "method": "POST", "source": "frontapp"}
        assert value(after, "apex_http_requests_total", status="202", **route) == 1
        assert value(after, "apex_webhook_deliveries_total", source="frontapp", outcome="accepted") == 1
        assert value(after, "apex_workflows_started_total", workflow="DrainWorkflow", source="frontapp") >= 1
        assert value(after, "apex_activities_finished_total", activity="apex.drain_inbox", outcome="completed") >= 1
        assert value(after, "apex_sink_calls_total", sink="postgres", op="write", outcome="ok") >= 1
        assert value(after, "apex_records_parsed_total", source="frontapp") >= 1
        assert value(after, "apex_source_expected_interval_seconds", source="frontapp") == 6 * 3600
        assert value(after, "apex_inbox_up") == 1
        sdk = scrape(f"http://127.0.0.1:{sdk_port}/metrics")
        assert value(sdk, "temporal_request_total") > 0
    finally:
        dev.stop(signal.SIGINT, timeout=90)
