"""Fixtures of the Plaid connector tests: a fake Plaid over TCP and connectors pointed at it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from apex_connector_plaid import PlaidConnector, PlaidSettings, samples
from apex_connector_plaid.fake_vendor import Change, FakeItem, FakePlaid, FakeVendorServer

CLIENT_ID = "test-client-id"
SECRET = "test-secret-9f8e7d6c5b4a"
ITEM = "item-test-1"
TOKEN = "access-sandbox-test-token-0123456789abcdef"


VENDOR = Path(__file__).parent / "data" / "vendor"


def _example(schema: str) -> dict[str, Any]:
    doc = yaml.safe_load((VENDOR / "plaid_openapi_item_webhooks.yml").read_text())
    example: dict[str, Any] = doc[schema]["x-examples"]["example-1"]
    return example


@pytest.fixture
def plaid_example() -> Callable[[str], dict[str, Any]]:
    """`example-1` of a schema's x-examples in Plaid's OpenAPI spec (tests/data/vendor)."""
    return _example


@pytest.fixture
def plaid_body() -> Callable[[str], bytes]:
    """That example as Plaid sends a webhook body: pretty-printed JSON."""
    return lambda schema: json.dumps(_example(schema), indent=2).encode()


def txn(tid: str, amount: float = 10.0, *, merchant: str = "Pilot Flying J", **more: Any) -> dict[str, Any]:
    return samples.transaction(
        tid,
        samples.FUEL_CARD,
        amount,
        more.pop("date", "2026-03-02"),
        more.pop("name", f"PURCHASE {tid}"),
        merchant_name=merchant,
        merchant_entity_id=more.pop("merchant_entity_id", "merchant-pilot"),
        category=more.pop("category", samples.FUEL),
        **more,
    )


def history(n: int, prefix: str = "t") -> list[Change]:
    """n added transactions, then one modified and one removed."""
    changes: list[Change] = [("added", txn(f"{prefix}{i}", 10.0 + i)) for i in range(n)]
    changes.append(("modified", txn(f"{prefix}1", 99.5, name="CORRECTED")))
    changes.append(("removed", {"transaction_id": f"{prefix}2", "account_id": samples.FUEL_CARD}))
    return changes


@pytest.fixture
def make_txn() -> Callable[..., dict[str, Any]]:
    """`txn(tid, amount, merchant=…, **fields)`: a Plaid transaction on the fuel card."""
    return txn


@dataclass
class Plaid:
    fake: FakePlaid
    url: str
    item: str
    token: str

    def settings(self, **overrides: Any) -> PlaidSettings:
        values: dict[str, Any] = {
            "base_url": self.url,
            "client_id": CLIENT_ID,
            "secret": SECRET,
            "access_tokens": {self.item: self.token},
            "page_size": 2,
        }
        values.update(overrides)
        return PlaidSettings(**values)

    def connector(self, clock: Callable[[], float] | None = None, **overrides: Any) -> PlaidConnector:
        if clock is None:
            return PlaidConnector(self.settings(**overrides))
        return PlaidConnector(self.settings(**overrides), clock=clock)


@pytest.fixture
def plaid() -> Iterator[Plaid]:
    """A fresh fake Plaid on a free port with one Item (unique id per test) holding `history(5)`."""
    item = f"item-{uuid.uuid4().hex[:12]}"
    token = f"access-sandbox-{uuid.uuid4()}"
    fake = FakePlaid(CLIENT_ID, SECRET)
    fake.add_item(FakeItem(item, token, accounts=samples.demo_accounts(), log=history(5)))
    server = FakeVendorServer(fake)
    url = server.start()
    try:
        yield Plaid(fake, url, item, token)
    finally:
        server.stop()
