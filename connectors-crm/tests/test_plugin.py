"""The plugin is found through its entry point, registers without settings, keeps the contract."""

from __future__ import annotations

from typing import Any

import pytest

from apex_connector_crm import CrmConnector, CrmSettings, plugin
from apex_platform.contracts import PollSource, SourceConnector
from apex_platform.plugins import build_registry


def test_discovered_through_the_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("APEX_CRM_ACCESS_TOKEN", raising=False)
    registry = build_registry("crm")
    assert isinstance(registry.sources["crm"], CrmConnector)
    info = registry.owner_of("source", "crm")
    assert info is not None
    assert info.distribution == "apex-connector-crm"


def test_registration_reads_no_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APEX_CRM_PAGE_SIZE", "not-a-number")
    registry = build_registry(use_entry_points=False, modules=[plugin])
    assert "crm" in registry.sources
    assert registry.problems == []


def test_contract() -> None:
    connector = CrmConnector(CrmSettings(poll_interval_seconds=120))
    assert isinstance(connector, SourceConnector)
    assert isinstance(connector, PollSource)
    assert (connector.name, connector.mode, connector.priority) == ("crm", "poll", "P2")
    assert connector.poll_interval_seconds == 120
    assert connector.accounts() == ["contacts", "companies", "deals"]
    assert CrmSettings.model_config.get("env_prefix") == "APEX_CRM_"


def test_demo_module_starts_a_seeded_fake() -> None:
    import httpx

    from apex_connector_crm import demo

    base_url, stop = demo.start_fake_vendor()
    try:
        env: dict[str, Any] = demo.demo_environment(base_url)
        assert env["APEX_CRM_BASE_URL"] == base_url
        resp = httpx.post(
            f"{base_url}/crm/v3/objects/contacts/search",
            json={"limit": 10},
            headers={"Authorization": f"Bearer {env['APEX_CRM_ACCESS_TOKEN']}"},
        )
        assert resp.json()["total"] == 3
    finally:
        stop()
