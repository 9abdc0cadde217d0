"""The plugin is found through its entry point, registers without settings, and its demo works."""

from __future__ import annotations

import pytest

from apex_connector_sonar import SonarConnector, SonarSettings, demo, plugin
from apex_platform.contracts import DemoSource, PollSource, SourceConnector, WebhookSource
from apex_platform.plugins import build_registry


def test_discovered_through_the_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("APEX_SONAR_TICKERS", raising=False)
    registry = build_registry("sonar")
    assert isinstance(registry.sources["sonar"], SonarConnector)
    assert not [p for p in registry.problems if "sonar" in p]
    info = registry.owner_of("source", "sonar")
    assert info is not None
    assert info.distribution == "apex-connector-sonar"


def test_registration_reads_no_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APEX_SONAR_PAGE_DAYS", "not-a-number")
    registry = build_registry(use_entry_points=False, modules=[plugin])
    assert "sonar" in registry.sources
    assert registry.problems == []
    assert registry.sources["sonar"].poll_interval_seconds == 3600.0  # type: ignore[attr-defined]


def test_connector_satisfies_the_contracts() -> None:
    c = SonarConnector(SonarSettings(tickers="OTRI.USA"))
    for protocol in (SourceConnector, PollSource, WebhookSource, DemoSource):
        assert isinstance(c, protocol)
    assert (c.name, c.mode, c.priority) == ("sonar", "poll", "P2")
    assert c.accounts() == ["OTRI.USA"]
    assert SonarSettings.model_config.get("env_prefix") == "APEX_SONAR_"


def test_page_days_must_exceed_the_lookback() -> None:
    with pytest.raises(ValueError, match="page_days must be larger"):
        SonarSettings(page_days=7, lookback_days=7)


async def test_demo_fake_vendor_environment_and_deliveries(monkeypatch: pytest.MonkeyPatch) -> None:
    base_url, stop = demo.start_fake_vendor()
    try:
        for key, value in demo.demo_environment(base_url).items():
            monkeypatch.setenv(key, value)
        connector = SonarConnector()
        assert connector.accounts() == ["OTRI.USA", "OTRI.ATL", "NTI.USA"]
        page = await connector.poll("OTRI.USA", None)
        assert len(page.records) == 14
        for d in connector.demo_deliveries():
            connector.verify(d.headers, d.body)
            assert connector.parse(connector.receive(d.headers, d.body))[0].kind == "sonar.alert"
    finally:
        stop()
