"""The plugin is found through its entry point, registers without settings or I/O, and its
demo traffic and demo fake vendor work."""

from __future__ import annotations

import pytest

from apex_connector_samsara import SamsaraConnector, SamsaraSettings, demo, plugin
from apex_platform.contracts import DemoSource, PollSource, SourceConnector, WebhookSource
from apex_platform.models import InboundEvent
from apex_platform.plugins import build_registry


def test_discovered_through_the_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("APEX_SAMSARA_WEBHOOK_SECRET", raising=False)
    registry = build_registry("samsara")
    assert isinstance(registry.sources["samsara"], SamsaraConnector)
    assert not [p for p in registry.problems if "samsara" in p]
    info = registry.owner_of("source", "samsara")
    assert info is not None
    assert info.distribution == "apex-connector-samsara"


def test_registered_explicitly_like_tests_do() -> None:
    registry = build_registry(use_entry_points=False, modules=[plugin])
    assert isinstance(registry.sources["samsara"], SamsaraConnector)
    assert registry.problems == []


def test_connector_satisfies_both_contracts() -> None:
    connector = SamsaraConnector()
    assert isinstance(connector, SourceConnector)
    assert isinstance(connector, WebhookSource)  # the API routes POST /webhooks/samsara to it
    assert isinstance(connector, PollSource)  # StreamWorkflow reads the feed through it
    assert isinstance(connector, DemoSource)
    assert (connector.name, connector.mode, connector.priority) == ("samsara", "stream", "P1")
    assert connector.batch_webhooks is True
    assert SamsaraSettings.model_config.get("env_prefix") == "APEX_SAMSARA_"


def test_registration_reads_no_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APEX_SAMSARA_MAX_AGE_SECONDS", "not-a-number")
    monkeypatch.setenv("APEX_SAMSARA_FEED_WAIT_SECONDS", "1")
    registry = build_registry(use_entry_points=False, modules=[plugin])
    assert "samsara" in registry.sources


def test_demo_deliveries_are_signed_and_accepted() -> None:
    connector = SamsaraConnector(SamsaraSettings(webhook_secret=demo.demo_secret()))
    deliveries = connector.demo_deliveries()
    assert len(deliveries) == 8
    ids = []
    for d in deliveries:
        assert d.path == "/webhooks/samsara"
        connector.verify(d.headers, d.body)
        event = connector.receive(d.headers, d.body)
        assert isinstance(event, InboundEvent)
        assert connector.parse(event)
        ids.append(event.event_id)
    assert ids[0] == "017db07f-6e95-470e-8cc0-a371f9deed2b"  # Samsara's own example is sent first
    assert len(set(ids)) == len(ids)
    assert set(connector.demo_environment()) == {"APEX_SAMSARA_WEBHOOK_SECRET"}


async def test_demo_fake_vendor_serves_the_feed() -> None:
    base_url, stop = demo.start_fake_vendor()
    try:
        env = demo.demo_environment()
        assert env["APEX_SAMSARA_BASE_URL"] == base_url
        settings = SamsaraSettings(
            base_url=env["APEX_SAMSARA_BASE_URL"],
            api_token=env["APEX_SAMSARA_API_TOKEN"],
            webhook_secret=env["APEX_SAMSARA_WEBHOOK_SECRET"],
        )
        connector = SamsaraConnector(settings)
        assert connector.accounts() == ["default"]
        page = await connector.poll("default", None)
        assert page.records
        assert page.has_more
        assert {r.kind for r in page.records} == {"samsara.vehicle_location", "samsara.engine_state"}
    finally:
        stop()
