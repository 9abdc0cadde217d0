"""Sample Plaid data for the demo, the fake server and the tests: the operating and
fuel-card accounts of a small trucking company, in Plaid's documented shapes
(Transaction, AccountBase, RemovedTransaction). Every name and id is made up.

The demo Item's id is the one of the published SYNC_UPDATES_AVAILABLE sample
(`data/sync_updates_available.json`), so that body, signed, wakes the demo Item.
"""

from __future__ import annotations

import copy
import json
from importlib import resources
from typing import Any

DEMO_ITEM_ID = "MqpWMopmPPhaon7EAZEgsqQ4p4qe3Rc9br7re"
DEMO_ACCESS_TOKEN = "access-sandbox-5cd6e1b1-1b5b-459d-9284-366e2da89755"  # noqa: S105 - fake server only
DEMO_CLIENT_ID = "apex-demo-client-id"
DEMO_SECRET = "apex-demo-secret-not-a-real-plaid-secret"  # noqa: S105 - fake server credential

CHECKING = "BxBXxLj1m4HMXBm9WZZmCWVbPjX16EHwv99vp"
FUEL_CARD = "dVzbVMLjrxTnLjX4G66XUp5GLklm4oiZy88yK"


def sync_updates_available_body() -> bytes:
    """The published sample body, byte for byte (signatures cover the raw bytes)."""
    return resources.files("apex_connector_plaid").joinpath("data/sync_updates_available.json").read_bytes()


def webhook_body(item_id: str, code: str = "SYNC_UPDATES_AVAILABLE", **extra: Any) -> bytes:
    """A TRANSACTIONS webhook body as Plaid sends it: pretty-printed with 2-space indents."""
    doc: dict[str, Any] = {
        "environment": "sandbox",
        "historical_update_complete": True,
        "initial_update_complete": True,
        "item_id": item_id,
        "webhook_code": code,
        "webhook_type": "TRANSACTIONS",
    }
    doc.update(extra)
    return json.dumps(doc, indent=2, sort_keys=True).encode()


def account(
    account_id: str, name: str, mask: str, type_: str, subtype: str, current: float, **more: Any
) -> dict[str, Any]:
    return {
        "account_id": account_id,
        "balances": {
            "available": more.pop("available", current),
            "current": current,
            "limit": more.pop("limit", None),
            "iso_currency_code": "USD",
            "unofficial_currency_code": None,
        },
        "mask": mask,
        "name": name,
        "official_name": more.pop("official_name", None),
        "type": type_,
        "subtype": subtype,
        **more,
    }


def transaction(
    transaction_id: str,
    account_id: str,
    amount: float,
    date: str,
    name: str,
    *,
    merchant_name: str | None = None,
    merchant_entity_id: str | None = None,
    category: tuple[str, str] | None = None,
    pending: bool = False,
    pending_transaction_id: str | None = None,
    counterparties: list[dict[str, Any]] | None = None,
    payment_channel: str = "in store",
    city: str | None = None,
    region: str | None = None,
) -> dict[str, Any]:
    return {
        "account_id": account_id,
        "account_owner": None,
        "amount": amount,
        "authorized_date": date,
        "authorized_datetime": None,
        "check_number": None,
        "counterparties": counterparties
        if counterparties is not None
        else (
            [
                {
                    "name": merchant_name,
                    "type": "merchant",
                    "entity_id": merchant_entity_id,
                    "confidence_level": "VERY_HIGH",
                    "logo_url": None,
                    "website": None,
                }
            ]
            if merchant_name
            else []
        ),
        "date": date,
        "datetime": None,
        "iso_currency_code": "USD",
        "location": {
            "address": None,
            "city": city,
            "country": "US" if city else None,
            "lat": None,
            "lon": None,
            "postal_code": None,
            "region": region,
            "store_number": None,
        },
        "logo_url": None,
        "merchant_entity_id": merchant_entity_id,
        "merchant_name": merchant_name,
        "name": name,
        "payment_channel": payment_channel,
        "payment_meta": {},
        "pending": pending,
        "pending_transaction_id": pending_transaction_id,
        "personal_finance_category": (
            {"primary": category[0], "detailed": category[1], "confidence_level": "VERY_HIGH"} if category else None
        ),
        "transaction_code": None,
        "transaction_id": transaction_id,
        "transaction_type": "place" if payment_channel == "in store" else "special",
        "unofficial_currency_code": None,
        "website": None,
    }


FUEL = ("TRANSPORTATION", "TRANSPORTATION_GAS")
TOLLS = ("TRANSPORTATION", "TRANSPORTATION_TOLLS")
INCOME = ("INCOME", "INCOME_OTHER_INCOME")
PAYOUT = ("TRANSFER_OUT", "TRANSFER_OUT_ACCOUNT_TRANSFER")


def demo_accounts() -> list[dict[str, Any]]:
    return [
        account(CHECKING, "Apex Freight Operating", "0000", "depository", "checking", 48210.55, available=47110.55),
        account(
            FUEL_CARD, "Fleet Fuel Card", "3333", "credit", "credit card", 2310.40, available=12689.60, limit=15000
        ),
    ]


def demo_changes() -> list[tuple[str, dict[str, Any]]]:
    """The demo Item's history: six purchases and payments, then a pending fuel charge
    that posts (Plaid removes the pending one and adds the posted one), and a shipper
    payment whose merchant data Plaid enriches later (modified)."""
    pilot = "eyg8o776k0QmNgVpAmaQj4WgzW9Qzo6O51gdd"
    loves_pending = "lPNjeW1nR6CDn5okmGQ6hEpMo4lLNoSrzqDje"
    loves_posted = "pjGbDx3w7Kt9XrKxQRmGt4ox3xPkE1cakm7ZP"
    shipper = "6GQZARgvroCAE1eW5wpQT7w3oB6nvzi8DKL9D"
    return [
        (
            "added",
            transaction(
                pilot,
                FUEL_CARD,
                612.48,
                "2026-03-02",
                "PILOT 00412 JOLIET IL",
                merchant_name="Pilot Flying J",
                merchant_entity_id="NjRoD5vGgqQ93vMvDzKnzNkp3q4e5BN8r6eyL",
                category=FUEL,
                city="Joliet",
                region="IL",
            ),
        ),
        (
            "added",
            transaction(
                "xmPa9Dqwk3s5LXvXq5pQF8Mr8QdRgNtWw0EvA",
                FUEL_CARD,
                38.75,
                "2026-03-02",
                "IPASS TOLLWAY AUTO REPLENISH",
                merchant_name="Illinois Tollway",
                category=TOLLS,
                payment_channel="online",
            ),
        ),
        (
            "added",
            transaction(
                shipper,
                CHECKING,
                -18450.00,
                "2026-03-03",
                "ACH CREDIT ACME FOODS AP 4471823",
                category=INCOME,
                payment_channel="other",
                counterparties=[],
            ),
        ),
        (
            "added",
            transaction(
                "qR7e9KxQ4wT1zBm8VnLp0sYcUj2HdGfAa3Ek6",
                CHECKING,
                9200.00,
                "2026-03-04",
                "ACH DEBIT SWIFT HAUL LLC CARRIER PAY LOAD 4471823",
                category=PAYOUT,
                payment_channel="other",
                counterparties=[
                    {
                        "name": "Swift Haul LLC",
                        "type": "marketplace",
                        "entity_id": None,
                        "confidence_level": "MEDIUM",
                        "logo_url": None,
                        "website": None,
                    },
                ],
            ),
        ),
        (
            "added",
            transaction(
                loves_pending,
                FUEL_CARD,
                540.00,
                "2026-03-05",
                "LOVES #0318 AMARILLO TX",
                merchant_name="Love's Travel Stops",
                merchant_entity_id="b7Bk5mGq2RLLA9x1JmEvO3pKzQrD8nYw6cVtN",
                category=FUEL,
                pending=True,
                city="Amarillo",
                region="TX",
            ),
        ),
        (
            "added",
            transaction(
                "Zk3LmN8pQ2rS5tU7vW9xY1zA4bC6dE8fG0hJ2",
                FUEL_CARD,
                71.20,
                "2026-03-05",
                "TA PETRO SHOWER/SCALE",
                merchant_name="TravelCenters of America",
                merchant_entity_id="Wq8Rk2LmP5nB7vX9zC1dF3gH6jK8lM0nQ2rS4",
                category=("TRAVEL", "TRAVEL_OTHER_TRAVEL"),
            ),
        ),
        # The pending Love's charge posts for its final amount: removed + added.
        ("removed", {"transaction_id": loves_pending, "account_id": FUEL_CARD}),
        (
            "added",
            transaction(
                loves_posted,
                FUEL_CARD,
                548.12,
                "2026-03-06",
                "LOVES #0318 AMARILLO TX",
                merchant_name="Love's Travel Stops",
                merchant_entity_id="b7Bk5mGq2RLLA9x1JmEvO3pKzQrD8nYw6cVtN",
                category=FUEL,
                pending_transaction_id=loves_pending,
                city="Amarillo",
                region="TX",
            ),
        ),
        # Plaid enriches the shipper's ACH credit with the counterparty later.
        (
            "modified",
            transaction(
                shipper,
                CHECKING,
                -18450.00,
                "2026-03-03",
                "ACH CREDIT ACME FOODS AP 4471823",
                merchant_name="Acme Foods",
                category=INCOME,
                payment_channel="other",
                counterparties=[
                    {
                        "name": "Acme Foods",
                        "type": "merchant",
                        "entity_id": "Ap3xF00dsEnt1ty1dXXXXXXXXXXXXXXXXXXXX",
                        "confidence_level": "HIGH",
                        "logo_url": None,
                        "website": "acmefoods.example",
                    },
                ],
            ),
        ),
    ]


def copies(changes: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    return [(what, copy.deepcopy(doc)) for what, doc in changes]
