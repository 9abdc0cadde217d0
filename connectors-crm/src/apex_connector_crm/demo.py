"""What `apex-platform demo` uses to sync HubSpot without HubSpot: the fake server, seeded."""

from __future__ import annotations

from collections.abc import Callable

from apex_connector_crm.fake_vendor import TOKEN, FakeHubSpot, FakeHubSpotServer, seed


def start_fake_vendor() -> tuple[str, Callable[[], None]]:
    """Start a seeded fake HubSpot on a free local port; returns (base_url, stop)."""
    fake = FakeHubSpot()
    seed(fake)
    server = FakeHubSpotServer(fake)
    return server.start(), server.stop


def demo_environment(base_url: str) -> dict[str, str]:
    """Point the connector at the fake server, with the fake's token and no settle delay."""
    return {
        "APEX_CRM_BASE_URL": base_url,
        "APEX_CRM_ACCESS_TOKEN": TOKEN,
        "APEX_CRM_SETTLE_SECONDS": "0",
        "APEX_CRM_ARCHIVED_SWEEP_SECONDS": "0",
    }
