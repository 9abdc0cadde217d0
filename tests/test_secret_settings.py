"""Every secret setting of core, the connectors and the sinks goes through the shared secret
types of `apex_platform.settings`: an empty value is refused with the variable's name (it
used to be a set `SecretStr('')`, and an empty admin token then matched `Bearer `), a
secret that authenticates callers is at least 16 characters, and the rotating ones take
several values (comma-separated or a JSON array)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr
from pydantic_settings import BaseSettings

from apex_connector_crm.settings import CrmSettings
from apex_connector_financial.settings import FinancialSettings
from apex_connector_frontapp.settings import FrontSettings
from apex_connector_plaid.settings import PlaidSettings
from apex_connector_samsara.settings import SamsaraSettings
from apex_connector_sonar.settings import SonarSettings
from apex_connector_turvo.settings import TurvoSettings
from apex_enricher_embeddings.settings import EmbeddingsSettings
from apex_platform.errors import SettingsError
from apex_platform.inbox import InboxSettings
from apex_platform.settings import (
    MIN_SECRET_CHARS,
    AdminSettings,
    PostgresSettings,
    PushSettings,
    TemporalSettings,
    load,
    secret_values,
)
from apex_sink_graph.settings import GraphSinkSettings
from apex_sink_postgres.settings import PostgresSinkSettings
from apex_sink_qdrant.settings import QdrantSinkSettings
from apex_sink_redis.settings import RedisSinkSettings

CLASSES: list[type[BaseSettings]] = [
    AdminSettings,
    PushSettings,
    TemporalSettings,
    PostgresSettings,
    InboxSettings,
    FrontSettings,
    SonarSettings,
    TurvoSettings,
    SamsaraSettings,
    PlaidSettings,
    CrmSettings,
    FinancialSettings,
    GraphSinkSettings,
    RedisSinkSettings,
    PostgresSinkSettings,
    QdrantSinkSettings,
    EmbeddingsSettings,
]

#: secrets that authenticate callers to Apex: a short one is refused too
INBOUND = {
    "APEX_ADMIN_TOKEN",
    "APEX_API_KEYS",
    "APEX_FRONTAPP_SIGNING_SECRET",
    "APEX_FRONTAPP_API_SECRET",
    "APEX_SONAR_WEBHOOK_SECRET",
    "APEX_TURVO_WEBHOOK_TOKEN",
    "APEX_SAMSARA_WEBHOOK_SECRET",
}
#: rotation: several values at once
ROTATING = INBOUND - {"APEX_API_KEYS"}  # the push keys have their own, scoped, syntax


def _is_secret(annotation: Any) -> bool:
    return "SecretStr" in repr(annotation)


def secret_fields() -> Iterator[tuple[type[BaseSettings], str, bool]]:
    """(class, field name, is a dict of secrets) of every secret field."""
    for cls in CLASSES:
        for name, info in cls.model_fields.items():
            if _is_secret(info.annotation):
                yield cls, name, repr(info.annotation).startswith("dict")


def variable(cls: type[BaseSettings], name: str) -> str:
    return f"{cls.model_config.get('env_prefix', '')}{name}".upper()


SECRET_FIELDS = list(secret_fields())


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    for cls, name, _ in SECRET_FIELDS:
        monkeypatch.delenv(variable(cls, name), raising=False)
    monkeypatch.delenv("APEX_ENV_FILE", raising=False)
    monkeypatch.chdir(tmp_path)


def test_every_secret_field_is_found() -> None:
    found = {variable(cls, name) for cls, name, _ in SECRET_FIELDS}
    assert found >= INBOUND
    assert {"APEX_TEMPORAL_API_KEY", "APEX_PLAID_SECRET", "APEX_GRAPH_PASSWORD", "APEX_INBOX_DSN"} <= found
    assert len(found) >= 25


@pytest.mark.parametrize(("cls", "name", "is_dict"), SECRET_FIELDS, ids=[variable(c, n) for c, n, _ in SECRET_FIELDS])
def test_an_empty_secret_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, cls: type[BaseSettings], name: str, is_dict: bool
) -> None:
    var = variable(cls, name)
    for empty in ('{"one": ""}', '{"one": "   "}') if is_dict else ("", "   "):
        monkeypatch.setenv(var, empty)
        with pytest.raises(SettingsError, match=var) as caught:
            load(cls)
        assert "empty" in str(caught.value)


@pytest.mark.parametrize("var", sorted(INBOUND))
def test_a_short_inbound_secret_is_refused(monkeypatch: pytest.MonkeyPatch, var: str) -> None:
    cls = next(c for c, n, _ in SECRET_FIELDS if variable(c, n) == var)
    short = "k" * (MIN_SECRET_CHARS - 1)
    monkeypatch.setenv(var, short)
    with pytest.raises(SettingsError, match=f"{var}: is too short") as caught:
        load(cls)
    assert short not in str(caught.value)  # the refused value is never repeated
    monkeypatch.setenv(var, "k" * MIN_SECRET_CHARS)
    load(cls)


@pytest.mark.parametrize("var", sorted(ROTATING))
def test_rotating_secrets_take_several_values(monkeypatch: pytest.MonkeyPatch, var: str) -> None:
    cls, name = next((c, n) for c, n, _ in SECRET_FIELDS if variable(c, n) == var)
    old, new = "old-secret-" + "o" * 10, "new-secret-" + "n" * 10
    for given in (f"{old},{new}", f" {old} , {new} ", f'["{old}", "{new}"]'):
        monkeypatch.setenv(var, given)
        assert secret_values(getattr(load(cls), name)) == [old, new]
    monkeypatch.setenv(var, f"{old},short")
    with pytest.raises(SettingsError, match=f"{var}: is too short"):
        load(cls)
    monkeypatch.setenv(var, '["not closed"')
    with pytest.raises(SettingsError, match=var):
        load(cls)


def test_outbound_credentials_are_the_issuers_length(monkeypatch: pytest.MonkeyPatch) -> None:
    """A vendor's password or token may be short (the vendor chose it); only empty is refused."""
    monkeypatch.setenv("APEX_PLAID_SECRET", "s")
    assert load(PlaidSettings).secret == SecretStr("s")
