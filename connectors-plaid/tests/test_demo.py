"""The demo hooks: a fake Plaid in this process, the environment for it, a signed webhook."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from apex_connector_plaid import PlaidConnector, PlaidSettings, demo, samples
from apex_platform.contracts import PollTrigger


async def test_demo_fake_environment_and_delivery_work_together(monkeypatch: pytest.MonkeyPatch) -> None:
    url, stop = demo.start_fake_vendor()
    try:
        assert demo.start_fake_vendor()[0] == url  # once per process
        env = demo.demo_environment()
        assert env["APEX_PLAID_BASE_URL"] == url
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        connector = PlaidConnector(PlaidSettings())
        assert connector.accounts() == [samples.DEMO_ITEM_ID]

        (delivery,) = connector.demo_deliveries()
        assert delivery.path == "/webhooks/plaid"
        assert delivery.body == samples.sync_updates_available_body()
        connector.verify(delivery.headers, delivery.body)
        trigger = connector.receive(delivery.headers, delivery.body)
        assert isinstance(trigger, PollTrigger)
        assert trigger.account == samples.DEMO_ITEM_ID

        page = await connector.poll(samples.DEMO_ITEM_ID, None)  # 500 per page: all of it
        assert not page.has_more
        kinds: dict[str, Any] = {}
        for r in page.records:
            kinds.setdefault((r.kind, r.deleted), []).append(r.id)
        assert len(kinds[("plaid.account", False)]) == 2
        assert len(kinds[("plaid.transaction", True)]) == 1  # the pending Love's charge, removed
        shipper = next(r for r in page.records if r.id == "6GQZARgvroCAE1eW5wpQT7w3oB6nvzi8DKL9D")
        assert shipper.attributes["merchant_name"] == "Acme Foods"  # the modified state
    finally:
        stop()
    assert demo.running_fake() is None


def test_the_demo_body_is_the_published_sample() -> None:
    with open(Path(__file__).parent / "data" / "third_party" / "sync_updates_available.json", "rb") as f:
        published = f.read()
    assert samples.sync_updates_available_body() == published
    assert json.loads(published)["item_id"] == samples.DEMO_ITEM_ID
