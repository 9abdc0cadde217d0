"""Settings: environment names, one-line errors, Temporal TLS / API key passed through."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import TLSConfig

from apex_platform.errors import SettingsError
from apex_platform.settings import CoreSettings, TemporalSettings, load
from apex_platform.temporal.client import _tls, task_queue


def test_defaults_and_env_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APEX_TEMPORAL_ADDRESS", "temporal.example:7233")
    monkeypatch.setenv("APEX_TEMPORAL_TASK_QUEUE_PREFIX", "acme")
    s = load(TemporalSettings)
    assert (s.address, s.namespace) == ("temporal.example:7233", "default")
    assert task_queue("P0", s) == "acme-p0"


def test_invalid_setting_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APEX_MAX_BODY_BYTES", "lots")
    with pytest.raises(SettingsError, match="APEX_MAX_BODY_BYTES"):
        load(CoreSettings)


def test_plain_connection_has_no_tls() -> None:
    assert _tls(TemporalSettings()) is False


def test_api_key_turns_tls_on_and_stays_secret() -> None:
    s = TemporalSettings(api_key="cloud-key")  # type: ignore[arg-type]
    assert _tls(s) is True
    assert "cloud-key" not in repr(s)


def test_mtls_files_are_read_into_the_tls_config(tmp_path: Path) -> None:
    for name in ("ca.pem", "client.pem", "client.key"):
        (tmp_path / name).write_bytes(f"-----{name}-----".encode())
    s = TemporalSettings(
        tls=True,
        tls_ca_cert=tmp_path / "ca.pem",
        tls_client_cert=tmp_path / "client.pem",
        tls_client_key=tmp_path / "client.key",
        tls_server_name="ns.tmprl.cloud",
    )
    tls = _tls(s)
    assert isinstance(tls, TLSConfig)
    assert tls.server_root_ca_cert == b"-----ca.pem-----"
    assert (tls.client_cert, tls.client_private_key) == (b"-----client.pem-----", b"-----client.key-----")
    assert tls.domain == "ns.tmprl.cloud"
