"""receive() and parse(): sync triggers, other webhooks kept as records, malformed bodies."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apex_connector_plaid import KIND_WEBHOOK, PlaidConnector, PlaidSettings, samples
from apex_platform.contracts import PollTrigger, WebhookReply
from apex_platform.errors import PayloadError
from apex_platform.models import InboundEvent

NOW = 1773151512.5


@pytest.fixture
def connector() -> PlaidConnector:
    settings = PlaidSettings(client_id="c", secret="s", access_tokens={samples.DEMO_ITEM_ID: "access-sandbox-x"})
    return PlaidConnector(settings, clock=lambda: NOW)


def test_published_sync_updates_available_sample_wakes_its_item(connector: PlaidConnector) -> None:
    result = connector.receive({}, samples.sync_updates_available_body())
    assert isinstance(result, PollTrigger)
    assert result.account == samples.DEMO_ITEM_ID
    assert result.event_id.startswith("transactions.sync_updates_available.")


@pytest.mark.parametrize("code", ["DEFAULT_UPDATE", "INITIAL_UPDATE", "HISTORICAL_UPDATE", "TRANSACTIONS_REMOVED"])
def test_older_transactions_update_codes_also_wake_the_item(connector: PlaidConnector, code: str) -> None:
    result = connector.receive({}, samples.webhook_body(samples.DEMO_ITEM_ID, code))
    assert isinstance(result, PollTrigger)
    assert result.account == samples.DEMO_ITEM_ID


def test_an_item_without_token_is_answered_ignored(connector: PlaidConnector) -> None:
    result = connector.receive({}, samples.webhook_body("some-other-item"))
    assert isinstance(result, WebhookReply)
    assert result.status_code == 200
    assert result.content == {"status": "ignored", "reason": "item not configured", "item_id": "some-other-item"}


def test_with_a_token_provider_every_item_is_routed() -> None:
    settings = PlaidSettings(client_id="c", secret="s", token_provider="somewhere:tokens")
    result = PlaidConnector(settings).receive({}, samples.webhook_body("vault-item"))
    assert isinstance(result, PollTrigger)
    assert result.account == "vault-item"


ITEM_ERROR = {
    "environment": "production",
    "error": {
        "display_message": None,
        "error_code": "ITEM_LOGIN_REQUIRED",
        "error_message": "the login details of this item have changed",
        "error_type": "ITEM_ERROR",
        "status": 400,
    },
    "item_id": "wz666MBjYWTp2PDzzggYhM6oWWmBb",
    "webhook_code": "ERROR",
    "webhook_type": "ITEM",
}


def test_other_webhooks_are_kept_as_records(connector: PlaidConnector) -> None:
    body = json.dumps(ITEM_ERROR, indent=2).encode()
    event = connector.receive({"Plaid-Verification": "x.y.z"}, body)
    assert isinstance(event, InboundEvent)
    assert event.source == "plaid"
    assert event.headers == {}
    assert event.event_id == connector.receive({}, body).event_id  # a redelivery is the same event
    (record,) = connector.parse(event)
    assert record.kind == KIND_WEBHOOK
    assert event.event_id == f"{record.id}~w{int(NOW // 86400)}"  # the record id and the repeat window
    assert record.id.startswith("item.error.")
    assert record.version == int(NOW * 1_000_000)
    assert record.title == "ITEM ERROR"
    assert "ITEM_ERROR/ITEM_LOGIN_REQUIRED" in record.text
    assert record.attributes["error_code"] == "ITEM_LOGIN_REQUIRED"
    assert [e.ref for e in record.entities] == ["Item:wz666MBjYWTp2PDzzggYhM6oWWmBb"]


def test_unknown_webhook_types_are_kept_too(connector: PlaidConnector) -> None:
    body = json.dumps({"webhook_type": "SOMETHING_NEW", "webhook_code": "HELLO", "extra": [1, 2]}).encode()
    event = connector.receive({}, body)
    assert isinstance(event, InboundEvent)
    (record,) = connector.parse(event)
    assert record.attributes["payload"]["extra"] == [1, 2]
    assert record.entities == ()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"", "empty"),
        (b"   ", "empty"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"{", "not valid JSON"),
        (samples.sync_updates_available_body()[:40], "not valid JSON"),  # truncated
        (b'{"webhook_type": NaN}', "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'"TRANSACTIONS"', "must be a JSON object"),
        (b"{}", "'webhook_type' is missing"),
        (b'{"webhook_type": "TRANSACTIONS"}', "'webhook_code' is missing"),
        (b'{"webhook_type": 7, "webhook_code": "X"}', "'webhook_type' must be a string"),
        (b'{"webhook_type": "TRANSACTIONS", "webhook_code": "SYNC_UPDATES_AVAILABLE"}', "'item_id' is missing"),
        (b'{"webhook_type": "TRANSACTIONS", "webhook_code": "SYNC_UPDATES_AVAILABLE", "item_id": ""}', "printable"),
        (b'{"webhook_type": "TRANSACTIONS", "webhook_code": "X", "item_id": "a\\nb"}', "printable"),
        (b'{"webhook_type": "TRANSACTIONS", "webhook_code": "X", "item_id": ["a"]}', "must be a string"),
        (b'{"webhook_type": "\\ud800", "webhook_code": "X"}', "surrogate"),
        (b'{"a":' * 100 + b"1" + b"}" * 100, "nests deeper"),
    ],
)
def test_malformed_bodies_are_payload_errors(connector: PlaidConnector, body: bytes, expected: str) -> None:
    with pytest.raises(PayloadError, match=expected):
        connector.receive({}, body)


def test_a_huge_item_id_is_refused(connector: PlaidConnector) -> None:
    body = samples.webhook_body("x" * 10_000)
    with pytest.raises(PayloadError, match="1 to 256"):
        connector.receive({}, body)


def test_parse_refuses_an_event_without_payload(connector: PlaidConnector) -> None:
    event = InboundEvent(source="plaid", event_id="e", received_at=datetime.now(UTC))
    with pytest.raises(PayloadError, match="no payload"):
        connector.parse(event)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_receive_never_fails_with_anything_but_payload_error(body: bytes) -> None:
    connector = PlaidConnector(PlaidSettings(client_id="c", secret="s"), clock=lambda: NOW)
    with contextlib.suppress(PayloadError):
        connector.receive({}, body)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["webhook_type", "webhook_code", "item_id", "error", "x"]), json_values))
def test_any_accepted_event_parses(doc: dict[str, object]) -> None:
    connector = PlaidConnector(PlaidSettings(client_id="c", secret="s", token_provider="a:b"), clock=lambda: NOW)
    try:
        event = connector.receive({}, json.dumps(doc).encode())
    except PayloadError:
        return
    if isinstance(event, InboundEvent):
        assert len(connector.parse(event)) == 1


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("schema", ["ItemErrorWebhook", "PendingExpirationWebhook", "ItemLoginRepairedWebhook"])
def test_a_published_item_webhook_repeated_after_the_window_is_a_new_version(
    schema: str, plaid_body: Callable[[str], bytes], plaid_example: Callable[[str], dict[str, Any]]
) -> None:
    """Plaid's own examples (tests/data/vendor): a retry inside the repeat window is the same
    event; the same body in a later window is a new event, a new version of one record."""
    clock = Clock(86400 * 20_000 + 10)  # 10 s into a window
    settings = PlaidSettings(client_id="c", secret="s", webhook_repeat_window_seconds=3600)
    connector = PlaidConnector(settings, clock=clock)
    body = plaid_body(schema)
    first = connector.receive({}, body)
    clock.now += 30 + 120 + 480 + 1920  # Plaid's retries: 30 s, then 4 times longer each
    retry = connector.receive({}, body)
    clock.now += 3600  # the next window
    again = connector.receive({}, body)
    assert isinstance(first, InboundEvent)
    assert isinstance(retry, InboundEvent)
    assert isinstance(again, InboundEvent)
    assert retry.event_id == first.event_id
    assert again.event_id != first.event_id
    (r1,), (r2,) = connector.parse(first), connector.parse(again)
    assert r1.id == r2.id
    assert r2.version > r1.version
    assert r1.attributes["payload"] == plaid_example(schema)
    assert r1.attributes["item_id"] == "wz666MBjYWTp2PDzzggYhM6oWWmBb"


def test_the_published_item_error_example_is_kept_whole(plaid_body: Callable[[str], bytes]) -> None:
    connector = PlaidConnector(PlaidSettings(client_id="c", secret="s"), clock=lambda: NOW)
    event = connector.receive({}, plaid_body("ItemErrorWebhook"))
    assert isinstance(event, InboundEvent)
    (record,) = connector.parse(event)
    assert (record.title, record.attributes["error_code"]) == ("ITEM ERROR", "ITEM_LOGIN_REQUIRED")
    assert record.attributes["payload"]["error"]["error_code_reason"] == "OAUTH_INVALID_TOKEN"


def test_an_event_id_stored_before_repeat_windows_parses_to_the_same_record(connector: PlaidConnector) -> None:
    body = json.dumps(ITEM_ERROR, indent=2).encode()
    event = connector.receive({}, body)
    assert isinstance(event, InboundEvent)
    old = event.model_copy(update={"event_id": event.event_id.split("~")[0]})
    assert connector.parse(old)[0].id == connector.parse(event)[0].id
