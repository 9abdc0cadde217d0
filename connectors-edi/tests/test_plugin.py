"""The plugin is found through its entry point and registers without settings or I/O."""

from __future__ import annotations

from pathlib import Path

import pytest

from apex_connector_edi import EdiConnector, EdiSettings, plugin
from apex_platform.contracts import BatchSource, SourceConnector
from apex_platform.plugins import build_registry


def test_discovered_through_the_entry_point() -> None:
    registry = build_registry("edi")
    assert isinstance(registry.sources["edi"], EdiConnector)
    info = registry.owner_of("source", "edi")
    assert info is not None
    assert info.distribution == "apex-connector-edi"


def test_contract() -> None:
    connector = EdiConnector()
    assert isinstance(connector, SourceConnector)
    assert isinstance(connector, BatchSource)
    assert (connector.name, connector.mode, connector.priority) == ("edi", "batch", "P2")
    assert EdiSettings.model_config.get("env_prefix") == "APEX_EDI_"


def test_registration_reads_no_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APEX_EDI_MAX_SEGMENT_CHARS", "not-a-number")
    registry = build_registry(use_entry_points=False, modules=[plugin])
    assert "edi" in registry.sources


def test_inbox_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("APEX_EDI_INBOX", raising=False)
    assert EdiConnector().inbox() is None
    monkeypatch.setenv("APEX_EDI_INBOX", str(tmp_path))
    assert EdiConnector().inbox() == tmp_path


def test_read_streams_records(sample_214: Path, sample_210: Path) -> None:
    connector = EdiConnector(EdiSettings())
    assert [r.id for r in connector.read(sample_214)] == ["BAWC:123456:X3:199709250830"]
    assert [r.id for r in connector.read(sample_210)] == ["NLMI:3410889"]
