"""The plugin is found through its entry point and registers without settings or I/O."""

from __future__ import annotations

import pytest

from apex_connector_frontapp import FrontConnector, FrontSettings, plugin
from apex_platform.contracts import SourceConnector, WebhookSource
from apex_platform.plugins import build_registry


def test_discovered_through_the_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("APEX_FRONTAPP_SIGNING_SECRET", raising=False)
    registry = build_registry("frontapp")
    assert isinstance(registry.sources["frontapp"], FrontConnector)
    assert not [p for p in registry.problems if "frontapp" in p]
    info = registry.owner_of("source", "frontapp")
    assert info is not None
    assert info.distribution == "apex-connector-frontapp"


def test_registered_explicitly_like_tests_do() -> None:
    registry = build_registry(use_entry_points=False, modules=[plugin])
    assert isinstance(registry.sources["frontapp"], FrontConnector)
    assert registry.problems == []


def test_connector_satisfies_the_contract() -> None:
    connector = FrontConnector()
    assert isinstance(connector, SourceConnector)
    assert isinstance(connector, WebhookSource)
    assert connector.name == "frontapp"
    assert connector.mode == "webhook"
    assert connector.priority == "P0"
    assert FrontConnector.settings_model is FrontSettings
    assert FrontSettings.model_config.get("env_prefix") == "APEX_FRONTAPP_"


def test_registration_reads_no_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    # Even invalid settings do not break registration; they surface at first use.
    monkeypatch.setenv("APEX_FRONTAPP_MAX_AGE_SECONDS", "not-a-number")
    registry = build_registry(use_entry_points=False, modules=[plugin])
    assert "frontapp" in registry.sources


def test_demo_deliveries_are_signed_and_accepted_by_verify() -> None:
    from apex_connector_frontapp.connector import FrontConnector
    from apex_connector_frontapp.settings import FrontSettings
    from apex_platform.contracts import DemoSource

    connector = FrontConnector(FrontSettings(signing_secret="front-demo-secret-1234"))  # type: ignore[arg-type]
    assert isinstance(connector, DemoSource)
    deliveries = connector.demo_deliveries()
    assert len(deliveries) == 6
    for d in deliveries:
        assert d.path == "/webhooks/frontapp"
        connector.verify(d.headers, d.body)  # raises if the signature is wrong
        assert connector.receive(d.headers, d.body).event_id.startswith("evt_")  # type: ignore[union-attr]
    assert set(connector.demo_environment()) == {"APEX_FRONTAPP_SIGNING_SECRET"}
