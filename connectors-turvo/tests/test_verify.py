"""Token-authenticated webhooks: the configured header carries the configured token."""

from __future__ import annotations

import pytest

from apex_connector_turvo import TurvoConnector, TurvoSettings
from apex_platform.errors import SignatureError

TOKEN = "wh-token-7f3a9c-0d1e"
BODY = b'{"eventName":"SHIPMENT_STATUS_UPDATE","eventPayload":{"id":1}}'


def conn(**kw: object) -> TurvoConnector:
    return TurvoConnector(TurvoSettings(webhook_token=TOKEN, **kw))  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [f"Bearer {TOKEN}", f"bearer {TOKEN}", TOKEN, f"  {TOKEN} "])
def test_bearer_or_raw_token_in_authorization_is_accepted(value: str) -> None:
    conn().verify({"Authorization": value}, BODY)


def test_header_name_is_configurable_and_case_insensitive() -> None:
    c = conn(webhook_header="X-Turvo-Token")
    c.verify({"x-turvo-token": TOKEN}, BODY)
    with pytest.raises(SignatureError, match="X-Turvo-Token header is missing"):
        c.verify({"Authorization": f"Bearer {TOKEN}"}, BODY)


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer not-the-token"},
        {"Authorization": TOKEN + "x"},
        {"Authorization": "Basic " + TOKEN},
        {"Authorization": "Bearer ünïcode-tökén"},
    ],
)
def test_wrong_token_is_rejected_without_echoing_it(headers: dict[str, str]) -> None:
    with pytest.raises(SignatureError) as err:
        conn().verify(headers, BODY)
    assert TOKEN not in str(err.value)
    assert "APEX_TURVO_WEBHOOK_TOKEN" in str(err.value)


def test_missing_header_is_rejected() -> None:
    with pytest.raises(SignatureError, match="Authorization header is missing"):
        conn().verify({"Content-Type": "application/json"}, BODY)


def test_unset_token_rejects_everything_and_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("APEX_TURVO_WEBHOOK_TOKEN", raising=False)
    with pytest.raises(SignatureError, match="APEX_TURVO_WEBHOOK_TOKEN"):
        TurvoConnector(TurvoSettings()).verify({"Authorization": "Bearer "}, BODY)


def test_rotation_accepts_every_configured_token() -> None:
    """Two tokens while Turvo's webhook profile switches over: both pass, and the demo
    authenticates with the first."""
    old, new = "turvo-token-old-0001", "turvo-token-new-0002"
    c = TurvoConnector(TurvoSettings(webhook_token=f"{new}, {old}"))  # type: ignore[arg-type]
    for token in (old, new):
        c.verify({"Authorization": f"Bearer {token}"}, BODY)
    with pytest.raises(SignatureError, match="does not match"):
        c.verify({"Authorization": f"Bearer {new},{old}"}, BODY)
    assert c.demo_deliveries()[0].headers["Authorization"] == f"Bearer {new}"
