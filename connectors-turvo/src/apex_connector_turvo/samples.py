"""Sample Turvo data: entities as the API returns them and webhooks that name them.

Shapes follow public integrations of Turvo's API (``{"Status": "SUCCESS", "details": …}``,
``globalRoute`` stops, ``customerOrder`` / ``carrierOrder``, ``{key, value}`` enums) and the
webhook bodies seen in them (``eventName`` / ``eventTime`` / ``eventPayload.id``). The
fake server and the demo serve these; tests assert on them.
"""

from __future__ import annotations

import copy
import json
from typing import Any

SHIPMENT_ID = 1000304706
LOAD_NUMBER = "M290969"
ORDER_ID = 7730012
CARRIER_ID = 44120
CUSTOMER_ID = 973069
PICKUP_LOCATION_ID = 525817
DELIVERY_LOCATION_ID = 525902

SHIPMENT: dict[str, Any] = {
    "id": SHIPMENT_ID,
    "customId": LOAD_NUMBER,
    "ltlShipment": False,
    "status": {
        "code": {"key": "2105", "value": "En route"},
        "notes": "Departed Chicago DC, ETA on schedule",
        "lastUpdatedOn": "2026-03-10T15:42:10Z",
    },
    "statusHistory": [
        {"code": {"key": "2101", "value": "Tendered"}, "lastUpdatedOn": "2026-03-09T16:05:00Z"},
        {"code": {"key": "2102", "value": "Covered"}, "lastUpdatedOn": "2026-03-09T18:30:00Z"},
        {"code": {"key": "2104", "value": "At pickup"}, "lastUpdatedOn": "2026-03-10T13:58:00Z"},
        {"code": {"key": "2105", "value": "En route"}, "lastUpdatedOn": "2026-03-10T15:42:10Z"},
    ],
    "lane": {"start": "Chicago, IL", "end": "Dallas, TX"},
    "startDate": {"date": "2026-03-10T14:00:00Z", "timeZone": "America/Chicago"},
    "endDate": {"date": "2026-03-12T15:00:00Z", "timeZone": "America/Chicago"},
    "transportation": {"mode": {"key": "24105", "value": "TL"}},
    "equipment": [
        {
            "type": {"key": "1200", "value": "Van"},
            "size": {"key": "1305", "value": "53 ft"},
            "weight": 38500,
            "weightUnits": {"key": "1520", "value": "lb"},
        }
    ],
    "globalRoute": [
        {
            "id": "gr-81",
            "sequence": 0,
            "stopType": {"key": "1500", "value": "Pickup"},
            "name": "Acme Foods Chicago DC",
            "location": {"id": PICKUP_LOCATION_ID, "name": "Acme Foods Chicago DC"},
            "address": {
                "line1": "4400 S Kildare Ave",
                "city": "Chicago",
                "state": "IL",
                "zip": "60632",
                "countryCode": "US",
            },
            "appointment": {
                "date": "2026-03-10T14:00:00Z",
                "timeZone": "America/Chicago",
                "hasTime": True,
                "flex": 3600,
            },
            "attributes": {"arrival": {"date": "2026-03-10T13:58:00Z"}, "departed": {"date": "2026-03-10T15:40:00Z"}},
            "poNumbers": ["PO-448812"],
        },
        {
            "id": "gr-82",
            "sequence": 1,
            "stopType": {"key": "1501", "value": "Delivery"},
            "name": "Lone Star Grocers DC",
            "location": {"id": DELIVERY_LOCATION_ID, "name": "Lone Star Grocers DC"},
            "address": {
                "line1": "2100 Empire Central",
                "city": "Dallas",
                "state": "TX",
                "zip": "75235",
                "countryCode": "US",
            },
            "appointment": {"date": "2026-03-12T15:00:00Z", "timeZone": "America/Chicago", "hasTime": True},
            "poNumbers": ["PO-448812"],
        },
        {"id": "gr-80", "sequence": 5, "name": "cancelled stop", "deleted": True},
    ],
    "customerOrder": [
        {
            "id": 66001,
            "customerOrderSourceId": 1,
            "customer": {"id": CUSTOMER_ID, "name": "Acme Foods Logistics"},
            "items": [
                {
                    "name": "Canned goods",
                    "qty": 22,
                    "unit": {"key": "6000", "value": "pallets"},
                    "weight": 38500,
                    "weightUnits": {"key": "1520", "value": "lb"},
                }
            ],
        }
    ],
    "carrierOrder": [
        {"id": 77001, "carrier": {"id": CARRIER_ID, "name": "Blue Ridge Transport LLC"}, "drivers": []},
        {"id": 77000, "carrier": {"id": 11111, "name": "Fell-through Carrier"}, "deleted": True},
    ],
    "created": "2026-03-09T16:04:12Z",
    "updated": "2026-03-10T15:42:10Z",
}

ORDER: dict[str, Any] = {
    "id": ORDER_ID,
    "customId": "SO-2026-0310-17",
    "status": {"code": {"key": "4102", "value": "Assigned"}},
    "customer": {"id": CUSTOMER_ID, "name": "Acme Foods Logistics"},
    "shipments": [{"id": SHIPMENT_ID, "customId": LOAD_NUMBER}],
    "pickupLocation": {"id": PICKUP_LOCATION_ID, "name": "Acme Foods Chicago DC"},
    "deliveryLocation": {"id": DELIVERY_LOCATION_ID, "name": "Lone Star Grocers DC"},
    "items": [{"name": "Canned goods", "qty": 22}],
    "updated": "2026-03-10T11:20:00Z",
}

CARRIER: dict[str, Any] = {
    "id": CARRIER_ID,
    "name": "Blue Ridge Transport LLC",
    "mcNumber": "804215",
    "dotNumber": "2290341",
    "scac": "BRTL",
    "status": {"code": {"key": "2200", "value": "Active"}},
    "address": {"line1": "18 Commerce Pkwy", "city": "Knoxville", "state": "TN", "zip": "37919", "countryCode": "US"},
    "phone": "+1 865 555 0142",
    "updated": "2026-03-01T09:00:00Z",
}

CUSTOMER: dict[str, Any] = {
    "id": CUSTOMER_ID,
    "name": "Acme Foods Logistics",
    "status": {"code": {"key": "1100", "value": "Active"}},
    "address": {"line1": "4400 S Kildare Ave", "city": "Chicago", "state": "IL", "zip": "60632", "countryCode": "US"},
    "updated": "2026-02-20T10:00:00Z",
}

LOCATION: dict[str, Any] = {
    "id": PICKUP_LOCATION_ID,
    "name": "Acme Foods Chicago DC",
    "address": {"line1": "4400 S Kildare Ave", "city": "Chicago", "state": "IL", "zip": "60632", "countryCode": "US"},
    "updated": "2025-11-02T08:00:00Z",
}

#: a second shipment and order of the tenant: what a listing holds beside the first, and
#: what proves an entity path works when the first answers 404
SHIPMENT_2_ID = 1000304711
SHIPMENT_2: dict[str, Any] = {
    "id": SHIPMENT_2_ID,
    "customId": "M290977",
    "status": {"code": {"key": "2102", "value": "Covered"}, "lastUpdatedOn": "2026-03-10T09:15:00Z"},
    "lane": {"start": "Memphis, TN", "end": "Atlanta, GA"},
    "customerOrder": [{"id": 66002, "customer": {"id": CUSTOMER_ID, "name": "Acme Foods Logistics"}}],
    "carrierOrder": [{"id": 77002, "carrier": {"id": CARRIER_ID, "name": "Blue Ridge Transport LLC"}}],
    "created": "2026-03-09T20:11:00Z",
    "updated": "2026-03-10T09:15:00Z",
}
ORDER_2_ID = 7730019
ORDER_2: dict[str, Any] = {
    "id": ORDER_2_ID,
    "customId": "SO-2026-0310-21",
    "status": {"code": {"key": "4101", "value": "Open"}},
    "customer": {"id": CUSTOMER_ID, "name": "Acme Foods Logistics"},
    "shipments": [{"id": SHIPMENT_2_ID, "customId": "M290977"}],
    "updated": "2026-03-10T08:40:00Z",
}

#: what the fake server serves, by API collection name
ENTITIES: dict[str, dict[str, dict[str, Any]]] = {
    "shipments": {str(SHIPMENT_ID): SHIPMENT, str(SHIPMENT_2_ID): SHIPMENT_2},
    "orders": {str(ORDER_ID): ORDER, str(ORDER_2_ID): ORDER_2},
    "carriers": {str(CARRIER_ID): CARRIER},
    "customers": {str(CUSTOMER_ID): CUSTOMER},
    "locations": {str(PICKUP_LOCATION_ID): LOCATION},
}

#: webhook bodies in the shapes public integrations show (and the generic entity style)
WEBHOOKS: list[dict[str, Any]] = [
    {
        "tenantId": "1203",
        "eventName": "SHIPMENT_STATUS_UPDATE",
        "eventTime": "2026-03-10T15:42:11.204Z",
        "eventPayload": {"id": SHIPMENT_ID, "status": {"code": {"key": "2105", "value": "En route"}}},
    },
    {
        "entityType": "ORDER",
        "entityId": str(ORDER_ID),
        "eventId": "wh-7730012-0001",
        "timestamp": "2026-03-10T11:20:01Z",
    },
    {
        "tenantId": "1203",
        "eventName": "CARRIER_UPDATE",
        "eventTime": "2026-03-01T09:00:02Z",
        "eventPayload": {"id": CARRIER_ID},
    },
    {
        "tenantId": "1203",
        "eventName": "CUSTOMER_UPDATE",
        "eventTime": "2026-02-20T10:00:03Z",
        "eventPayload": {"id": CUSTOMER_ID},
    },
]


def entities() -> dict[str, dict[str, dict[str, Any]]]:
    return copy.deepcopy(ENTITIES)


def encode(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def webhook_bodies() -> list[bytes]:
    return [encode(doc) for doc in WEBHOOKS]


def webhook_headers(token: str, header: str = "Authorization") -> dict[str, str]:
    """Headers of a delivery from a webhook profile configured with `token`."""
    value = f"Bearer {token}" if header.lower() == "authorization" else token
    return {header: value, "Content-Type": "application/json"}
