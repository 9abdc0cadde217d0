"""Fetching the named entity through the real httpx client from the fake Turvo API over TCP:
OAuth grants, token renewal, x-api-key, vendor failures and the 404 policy."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from apex_connector_turvo import TurvoConnector, samples
from apex_connector_turvo.fake_vendor import FakeTurvo
from apex_platform.errors import VendorError
from apex_platform.models import InboundEvent

STATUS_UPDATE = samples.WEBHOOKS[0]


async def test_fetch_replaces_the_payload_with_the_entity(
    connector: TurvoConnector, fake: FakeTurvo, deliver: Callable[[dict[str, Any]], InboundEvent]
) -> None:
    event = await connector.fetch(deliver(STATUS_UPDATE))
    assert event.payload["entity"]["customId"] == "M290969"
    assert event.payload["webhook"] == STATUS_UPDATE
    assert fake.grants == ["password"]
    assert fake.statuses("/shipments/") == [200]


async def test_the_token_is_cached_between_fetches(
    connector: TurvoConnector, fake: FakeTurvo, deliver: Callable[[dict[str, Any]], InboundEvent]
) -> None:
    for doc in samples.WEBHOOKS:
        await connector.fetch(deliver(doc))
    assert fake.grants == ["password"]
    assert fake.statuses("/v1/").count(200) == 5  # one token call, four entity reads


async def test_concurrent_fetches_share_one_token_request(
    connector: TurvoConnector, fake: FakeTurvo, deliver: Callable[[dict[str, Any]], InboundEvent]
) -> None:
    events = [deliver(doc) for doc in samples.WEBHOOKS * 3]
    fetched = await asyncio.gather(*(connector.fetch(e) for e in events))
    assert all("entity" in e.payload for e in fetched)
    assert fake.grants == ["password"]


async def test_an_expired_token_is_refreshed_with_the_refresh_grant(
    connector: TurvoConnector, fake: FakeTurvo, clock: Any, deliver: Callable[[dict[str, Any]], InboundEvent]
) -> None:
    await connector.fetch(deliver(STATUS_UPDATE))
    clock.advance(3600)  # the connector's clock says the token has expired
    await connector.fetch(deliver(STATUS_UPDATE))
    assert fake.grants == ["password", "refresh_token"]
    assert 401 not in fake.statuses()


async def test_a_401_renews_the_token_and_retries_once(
    connector: TurvoConnector, fake: FakeTurvo, deliver: Callable[[dict[str, Any]], InboundEvent]
) -> None:
    await connector.fetch(deliver(STATUS_UPDATE))
    fake.revoke_access_tokens()
    event = await connector.fetch(deliver(STATUS_UPDATE))
    assert event.payload["entity"]["id"] == samples.SHIPMENT_ID
    assert fake.statuses("/shipments/") == [200, 401, 200]
    assert fake.grants == ["password", "refresh_token"]


async def test_a_refused_refresh_token_falls_back_to_the_password_grant(
    connector: TurvoConnector, fake: FakeTurvo, deliver: Callable[[dict[str, Any]], InboundEvent]
) -> None:
    await connector.fetch(deliver(STATUS_UPDATE))
    fake.revoke_access_tokens()
    fake.forget_refresh_tokens()
    await connector.fetch(deliver(STATUS_UPDATE))
    assert fake.grants == ["password", "password"]
    assert fake.statuses("/oauth/token") == [200, 401, 200]


async def test_without_refresh_tokens_expiry_uses_the_password_grant(
    connector: TurvoConnector, fake: FakeTurvo, clock: Any, deliver: Callable[[dict[str, Any]], InboundEvent]
) -> None:
    fake.issue_refresh_tokens = False
    await connector.fetch(deliver(STATUS_UPDATE))
    clock.advance(7200)
    await connector.fetch(deliver(STATUS_UPDATE))
    assert fake.grants == ["password", "password"]


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_5xx_is_a_retryable_vendor_error_with_retry_after(
    connector: TurvoConnector, fake: FakeTurvo, status: int, deliver: Callable[[dict[str, Any]], InboundEvent]
) -> None:
    fake.fail_next(status, retry_after=7)
    with pytest.raises(VendorError) as err:
        await connector.fetch(deliver(STATUS_UPDATE))
    assert err.value.retryable
    assert err.value.retry_after == 7
    assert f"HTTP {status}" in str(err.value)
    assert "/shipments/1000304706" in str(err.value)


async def test_5xx_is_retried_in_the_call_when_configured(
    make_connector: Callable[..., TurvoConnector], fake: FakeTurvo
) -> None:
    c = make_connector(http_retries=2)
    fake.fail_next(503, times=2)
    event = await c.fetch(c.receive({}, samples.encode(STATUS_UPDATE)))
    assert event.payload["entity"]["id"] == samples.SHIPMENT_ID
    assert fake.statuses("/shipments/") == [503, 503, 200]


async def test_429_is_retryable_with_the_vendors_retry_after(
    connector: TurvoConnector, fake: FakeTurvo, deliver: Callable[[dict[str, Any]], InboundEvent]
) -> None:
    fake.fail_next(429, retry_after=12)
    with pytest.raises(VendorError) as err:
        await connector.fetch(deliver(STATUS_UPDATE))
    assert (err.value.retryable, err.value.retry_after) == (True, 12)
    fake.fail_next(429)
    with pytest.raises(VendorError) as err:
        await connector.fetch(deliver(STATUS_UPDATE))
    assert err.value.retry_after == connector.settings.rate_limit_backoff_seconds
    assert fake.statuses("/shipments/") == [429, 429]  # 429 is left to Temporal's backoff


async def test_404_with_tombstone_policy_deletes_on_any_404(
    make_connector: Callable[..., TurvoConnector], fake: FakeTurvo
) -> None:
    # the old default, now an explicit choice (APEX_TURVO_NOT_FOUND=tombstone)
    fake.delete("shipments", samples.SHIPMENT_ID)
    c = make_connector(not_found="tombstone")
    event = await c.fetch(c.receive({}, samples.encode(STATUS_UPDATE)))
    assert event.payload["not_found"] is True
    (record,) = c.parse(event)
    assert record.deleted
    assert (record.kind, record.id) == ("turvo.shipment", "shipment:1000304706")
    assert record.version == 1773157331204000  # the webhook time, later than the last update
    assert record.attributes["webhook"] == STATUS_UPDATE
    assert "APEX_TURVO_NOT_FOUND=tombstone" in record.attributes["reason"]


async def test_404_can_keep_the_webhook_or_fail(make_connector: Callable[..., TurvoConnector], fake: FakeTurvo) -> None:
    fake.delete("shipments", samples.SHIPMENT_ID)
    keep = make_connector(not_found="keep_webhook")
    (record,) = keep.parse(await keep.fetch(keep.receive({}, samples.encode(STATUS_UPDATE))))
    assert (record.kind, record.deleted) == ("turvo.webhook", False)
    assert record.attributes["webhook"] == STATUS_UPDATE
    assert "404" in record.text
    fail = make_connector(not_found="fail")
    with pytest.raises(VendorError) as err:
        await fail.fetch(fail.receive({}, samples.encode(STATUS_UPDATE)))
    assert not err.value.retryable


async def test_refused_credentials_wait_for_an_operator_and_leak_nothing(
    make_connector: Callable[..., TurvoConnector], fake: FakeTurvo
) -> None:
    c = make_connector(password="wrong-password-123")
    with pytest.raises(VendorError) as err:
        await c.fetch(c.receive({}, samples.encode(STATUS_UPDATE)))
    assert err.value.retryable
    assert err.value.retry_after == c.settings.auth_backoff_seconds
    assert "APEX_TURVO_PASSWORD" in str(err.value)
    for secret in ("wrong-password-123", fake.client_secret, fake.api_key):
        assert secret not in str(err.value)


async def test_a_wrong_api_key_is_refused(make_connector: Callable[..., TurvoConnector], fake: FakeTurvo) -> None:
    c = make_connector(api_key="not-the-key")
    with pytest.raises(VendorError, match="refused the credentials"):
        await c.fetch(c.receive({}, samples.encode(STATUS_UPDATE)))
    assert fake.statuses("/oauth/token") == [403]


async def test_missing_credentials_are_named(make_connector: Callable[..., TurvoConnector]) -> None:
    c = make_connector(username=None, password=None)
    with pytest.raises(VendorError, match="APEX_TURVO_USERNAME, APEX_TURVO_PASSWORD not set"):
        await c.fetch(c.receive({}, samples.encode(STATUS_UPDATE)))


async def test_an_unknown_entity_type_is_not_fetched_and_kept(connector: TurvoConnector, fake: FakeTurvo) -> None:
    event = await connector.fetch(connector.receive({}, b'{"eventName": "INVOICE_CREATED", "id": 9}'))
    assert fake.log == []
    (record,) = connector.parse(event)
    assert record.kind == "turvo.webhook"
    assert "APEX_TURVO_ENTITY_PATHS" in record.text
    assert [e.ref for e in record.entities] == ["InvoiceCreated:9"]


async def test_entity_paths_are_configurable(make_connector: Callable[..., TurvoConnector], fake: FakeTurvo) -> None:
    c = make_connector(entity_paths="carrier=/carriers/{id}")
    event = await c.fetch(c.receive({}, samples.encode(samples.WEBHOOKS[2])))
    assert event.payload["entity"]["scac"] == "BRTL"
    # shipment has no path now: kept as a webhook record, not fetched
    event = await c.fetch(c.receive({}, samples.encode(STATUS_UPDATE)))
    assert "entity" not in event.payload
