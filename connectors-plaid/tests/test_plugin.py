"""The plugin as the platform loads it: entry point, protocols, lazy settings."""

from __future__ import annotations

import json

import pytest

from apex_connector_plaid import PlaidConnector
from apex_platform.contracts import DemoSource, PollSource, SourceConnector, WebhookSource
from apex_platform.plugins import build_registry


def test_the_entry_point_registers_one_poll_and_webhook_source() -> None:
    registry = build_registry("plaid")
    assert not [p for p in registry.problems if "plaid" in p]
    source = registry.sources["plaid"]
    assert isinstance(source, PlaidConnector)
    assert (source.name, source.mode, source.priority) == ("plaid", "poll", "P1")
    for protocol in (SourceConnector, WebhookSource, PollSource, DemoSource):
        assert isinstance(source, protocol)


def test_settings_are_read_lazily_and_accounts_come_from_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APEX_PLAID_ACCESS_TOKENS", json.dumps({"item-a": "access-production-aaa"}))
    monkeypatch.setenv("APEX_PLAID_ITEMS", "item-b, item-a ,item-c")
    monkeypatch.setenv("APEX_PLAID_POLL_INTERVAL_SECONDS", "900")
    connector = PlaidConnector()
    assert connector.accounts() == ["item-a", "item-b", "item-c"]
    assert connector.poll_interval_seconds == 900
    assert connector.settings.base_url == "https://production.plaid.com"
    assert "access-production-aaa" not in repr(connector.settings)


def test_nothing_configured_is_no_error_until_used(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ACCESS_TOKENS", "ITEMS", "POLL_INTERVAL_SECONDS", "CLIENT_ID", "SECRET"):
        monkeypatch.delenv(f"APEX_PLAID_{name}", raising=False)
    connector = PlaidConnector()
    assert connector.accounts() == []
    assert connector.poll_interval_seconds == 3600


def test_a_broken_setting_does_not_break_the_protocol_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APEX_PLAID_PAGE_SIZE", "5000")
    connector = PlaidConnector()
    assert isinstance(connector, PollSource)
    assert connector.poll_interval_seconds == 3600
