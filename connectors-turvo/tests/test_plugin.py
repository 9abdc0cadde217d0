"""The plugin is found through its entry point, registers without settings, and its demo works."""

from __future__ import annotations

import os

import pytest

from apex_connector_turvo import TurvoConnector, TurvoSettings, demo, plugin
from apex_platform.contracts import DemoSource, FetchingSource, SourceConnector, WebhookSource
from apex_platform.models import InboundEvent
from apex_platform.plugins import build_registry


def test_discovered_through_the_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("APEX_TURVO_WEBHOOK_TOKEN", raising=False)
    registry = build_registry("turvo")
    assert isinstance(registry.sources["turvo"], TurvoConnector)
    assert not [p for p in registry.problems if "turvo" in p]
    info = registry.owner_of("source", "turvo")
    assert info is not None
    assert info.distribution == "apex-connector-turvo"


def test_registration_reads_no_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APEX_TURVO_TIMEOUT_SECONDS", "not-a-number")
    registry = build_registry(use_entry_points=False, modules=[plugin])
    assert "turvo" in registry.sources
    assert registry.problems == []


def test_connector_satisfies_the_contracts() -> None:
    c = TurvoConnector()
    assert isinstance(c, SourceConnector)
    assert isinstance(c, WebhookSource)
    assert isinstance(c, FetchingSource)
    assert isinstance(c, DemoSource)
    assert (c.name, c.mode, c.priority) == ("turvo", "webhook", "P0")
    assert TurvoConnector.settings_model is TurvoSettings
    assert TurvoSettings.model_config.get("env_prefix") == "APEX_TURVO_"


async def test_demo_fake_vendor_environment_and_deliveries(monkeypatch: pytest.MonkeyPatch) -> None:
    base_url, stop = demo.start_fake_vendor()
    try:
        env = demo.demo_environment(base_url)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        assert set(env) >= {"APEX_TURVO_BASE_URL", "APEX_TURVO_API_KEY", "APEX_TURVO_WEBHOOK_TOKEN"}
        connector = TurvoConnector()  # reads the environment the demo set
        assert connector.reconcile_accounts() == ["shipment", "order"]  # on in the demo
        listed = await connector.reconcile("shipment", None)  # reaches back to the samples' times
        assert len(listed.deliveries) == 2
        deliveries = connector.demo_deliveries()
        assert len(deliveries) == 4
        kinds = []
        for d in deliveries:
            assert d.path == "/webhooks/turvo"
            connector.verify(d.headers, d.body)
            event = connector.receive(d.headers, d.body)
            assert isinstance(event, InboundEvent)
            records = connector.parse(await connector.fetch(event))
            kinds.append(records[0].kind)
        assert kinds == ["turvo.shipment", "turvo.order", "turvo.carrier", "turvo.customer"]
    finally:
        stop()
    assert os.environ["APEX_TURVO_BASE_URL"] == base_url
