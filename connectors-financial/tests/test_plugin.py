"""The plugin is found through its entry point, registers without settings, keeps the contract."""

from __future__ import annotations

import json
from typing import Any

import pytest

from apex_connector_financial import FinancialConnector, FinancialSettings, plugin
from apex_platform.contracts import PollSource, SourceConnector
from apex_platform.plugins import build_registry


def test_discovered_through_the_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("APEX_FINANCIAL_CLIENT_SECRET", raising=False)
    registry = build_registry("financial")
    assert isinstance(registry.sources["financial"], FinancialConnector)
    info = registry.owner_of("source", "financial")
    assert info is not None
    assert info.distribution == "apex-connector-financial"


def test_registration_reads_no_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APEX_FINANCIAL_MAX_OBJECTS", "not-a-number")
    registry = build_registry(use_entry_points=False, modules=[plugin])
    assert "financial" in registry.sources
    assert registry.problems == []


def test_contract() -> None:
    connector = FinancialConnector(FinancialSettings(poll_interval_seconds=120, refresh_tokens={"2": "b", "1": "a"}))
    assert isinstance(connector, SourceConnector)
    assert isinstance(connector, PollSource)
    assert (connector.name, connector.mode, connector.priority) == ("financial", "poll", "P2")
    assert connector.poll_interval_seconds == 120
    assert connector.accounts() == ["1", "2"]
    assert FinancialSettings.model_config.get("env_prefix") == "APEX_FINANCIAL_"


def test_demo_module_starts_a_seeded_fake() -> None:
    import httpx

    from apex_connector_financial import demo

    base_url, stop = demo.start_fake_vendor()
    try:
        env: dict[str, Any] = demo.demo_environment(base_url)
        assert env["APEX_FINANCIAL_BASE_URL"] == base_url
        refresh = json.loads(env["APEX_FINANCIAL_REFRESH_TOKENS"])
        resp = httpx.post(
            env["APEX_FINANCIAL_TOKEN_URL"],
            data={"grant_type": "refresh_token", "refresh_token": next(iter(refresh.values()))},
            auth=(env["APEX_FINANCIAL_CLIENT_ID"], env["APEX_FINANCIAL_CLIENT_SECRET"]),
        )
        assert resp.json()["expires_in"] == 3600
    finally:
        stop()
