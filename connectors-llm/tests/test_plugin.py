"""The plugin is found through its entry point; the demo pushes carry a configured key."""

from __future__ import annotations

import pytest

from apex_connector_llm import LlmConnector, LlmSettings, plugin
from apex_platform.contracts import DemoSource, PushSource, SourceConnector
from apex_platform.errors import SettingsError
from apex_platform.plugins import build_registry


def test_discovered_through_the_entry_point() -> None:
    registry = build_registry("llm")
    assert isinstance(registry.sources["llm"], LlmConnector)
    info = registry.owner_of("source", "llm")
    assert info is not None
    assert info.distribution == "apex-connector-llm"


def test_contract() -> None:
    connector = LlmConnector()
    assert isinstance(connector, SourceConnector)
    assert isinstance(connector, PushSource)
    assert isinstance(connector, DemoSource)
    assert (connector.name, connector.mode, connector.priority) == ("llm", "push", "P0")
    assert LlmSettings.model_config.get("env_prefix") == "APEX_LLM_"


def test_registration_reads_no_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APEX_LLM_MAX_MESSAGES", "lots")
    assert "llm" in build_registry(use_entry_points=False, modules=[plugin]).sources


def test_demo_deliveries_use_the_first_configured_key(monkeypatch: pytest.MonkeyPatch) -> None:
    connector = LlmConnector(LlmSettings())
    env = connector.demo_environment()
    assert set(env) == {"APEX_API_KEYS"}
    assert len(env["APEX_API_KEYS"]) > 30
    monkeypatch.setenv("APEX_API_KEYS", "first-key-0123456789, second-key-0123456789")
    deliveries = connector.demo_deliveries()
    assert len(deliveries) == 2
    for d in deliveries:
        assert d.path == "/v1/records/llm"
        assert d.headers["Authorization"] == "Bearer first-key-0123456789"
        connector.receive(d.headers, d.body)
    ids = [connector.receive(d.headers, d.body).event_id for d in deliveries]
    assert ids[0] != ids[1]
    monkeypatch.delenv("APEX_API_KEYS")
    with pytest.raises(SettingsError, match="APEX_API_KEYS"):
        connector.demo_deliveries()
