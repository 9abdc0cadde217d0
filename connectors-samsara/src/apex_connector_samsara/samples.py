"""Sample Samsara webhook deliveries, shaped like Samsara's published examples.

`route_stop_arrival.json` is Samsara's own RouteStopArrival example (as published in
PipedreamHQ/pipedream components/samsara, from Samsara's documentation; orgId 20936), kept
unchanged with its odd values (eventTime in 1970, latitude 123.456). The others follow the
Webhooks 2.0 / 1.0 examples of developers.samsara.com with freight-like values.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from importlib import resources
from typing import Any

ORG_ID = 20936
WEBHOOK_ID = "1411751028848270"

TRUCK: dict[str, Any] = {
    "assetType": "vehicle",
    "externalIds": {"maintenanceId": "250020"},
    "gateway": {"model": "VG54", "serial": "GAMX-7QK-2HP"},
    "id": "281474977075805",
    "licensePlate": "OH 7XR-2291",
    "name": "Truck 4471",
    "vin": "3AKJHHDR5LSLA4471",
}
DRIVER: dict[str, Any] = {"externalIds": {"payrollId": "DRV-0192"}, "id": "52101", "name": "Ana Ruiz"}
COLUMBUS_DC: dict[str, Any] = {
    "externalIds": {"siteId": "CMH-DC"},
    "formattedAddress": "4400 Alum Creek Dr, Columbus, OH 43207",
    "geofence": {"circle": {"latitude": 39.9087, "longitude": -82.9601, "radiusMeters": 250}},
    "id": "88120",
    "name": "Acme Foods Columbus DC",
}


def _v2(event_id: str, event_type: str, event_time: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "eventId": event_id,
        "eventTime": event_time,
        "eventType": event_type,
        "orgId": ORG_ID,
        "webhookId": WEBHOOK_ID,
        "data": data,
    }


@cache
def _fixture() -> str:
    return resources.files("apex_connector_samsara").joinpath("data/route_stop_arrival.json").read_text("utf-8")


def route_stop_arrival() -> dict[str, Any]:
    """Samsara's published RouteStopArrival example, unchanged."""
    doc: dict[str, Any] = json.loads(_fixture())
    return doc


GEOFENCE_ENTRY = _v2(
    "5d1c3b6e-8f3a-4b27-9a51-0c8e4a7d2e11",
    "GeofenceEntry",
    "2026-03-10T13:58:02.120Z",
    {"address": COLUMBUS_DC, "vehicle": TRUCK},
)
GEOFENCE_EXIT = _v2(
    "5d1c3b6e-8f3a-4b27-9a51-0c8e4a7d2e12",
    "GeofenceExit",
    "2026-03-10T15:41:37.900Z",
    {"address": COLUMBUS_DC, "vehicle": TRUCK},
)
DOCUMENT_SUBMITTED = _v2(
    "9b0f6a2c-1d4e-4f8a-b3c7-6e5d4c3b2a19",
    "DocumentSubmitted",
    "2026-03-10T15:30:11.004Z",
    {
        "document": {
            "createdAtTime": "2026-03-10T15:29:58Z",
            "documentType": {"id": "9814a1fa-f0c6-408b-bf85-51dc3bc71ac7", "name": "Proof of Delivery"},
            "driver": DRIVER,
            "vehicle": TRUCK,
            "fields": [
                {"label": "Load number", "type": "string", "value": {"stringValue": "4471823"}},
                {"label": "Pallets delivered", "type": "number", "value": {"numberValue": 22}},
                {"label": "Receiver", "type": "string", "value": {"stringValue": "J. Patel"}},
            ],
            "id": "7c1f0e3a-4b5d-4e6f-8a9b-0c1d2e3f4a5b",
            "name": "POD 4471823",
            "state": "submitted",
        }
    },
)
VEHICLE_UPDATED = _v2(
    "3e7a9c1b-2d4f-4a6b-8c0d-1e2f3a4b5c6d",
    "VehicleUpdated",
    "2026-03-10T16:02:45.500Z",
    {"vehicle": {**TRUCK, "staticAssignedDriver": {"id": DRIVER["id"], "name": DRIVER["name"]}, "notes": "Reefer"}},
)
ADDRESS_CREATED = _v2(
    "a4b5c6d7-e8f9-4a0b-9c1d-2e3f4a5b6c7d",
    "AddressCreated",
    "2026-03-10T16:10:00.000Z",
    {
        "address": {
            "externalIds": {"siteId": "IND-XD"},
            "formattedAddress": "7801 Rockville Rd, Indianapolis, IN 46214",
            "geofence": {"circle": {"latitude": 39.7787, "longitude": -86.2906, "radiusMeters": 200}},
            "id": "88133",
            "name": "Indianapolis Cross-Dock",
        }
    },
)
#: Webhooks 1.0 alert, as in Samsara's webhook guide.
SPEEDING_ALERT: dict[str, Any] = {
    "eventId": "bf72239c-bebd-4c22-b64c-6fc692ef7c46",
    "eventMs": 1773155101000,
    "eventType": "Alert",
    "event": {
        "alertConditionDescription": "Vehicle Speed",
        "alertConditionId": "DeviceSpeedAboveSpeedLimit",
        "alertEventUrl": "https://cloud.samsara.com/o/20936/alerts/incidents/v2/2101/5/281474977075805/1773155100000",
        "details": "'Truck 4471' exceeded the speed limit by 12 mph on I-70 W near Springfield, OH.",
        "device": {"id": 281474977075805, "name": "Truck 4471", "serial": "GAMX-7QK-2HP", "vin": "3AKJHHDR5LSLA4471"},
        "driver": {"id": 52101, "name": "Ana Ruiz"},
        "orgId": ORG_ID,
        "resolved": False,
        "startMs": 1773155100000,
        "summary": "Truck 4471 is speeding",
    },
}
#: A type this connector has no rule for: kept as a generic samsara.event record.
ENGINE_FAULT = _v2(
    "c0ffee00-1234-4abc-8def-000000000001",
    "EngineFaultOn",
    "2026-03-10T16:20:00.000Z",
    {"vehicle": TRUCK, "faultCode": {"code": "P0420", "description": "Catalyst efficiency below threshold"}},
)
#: What Samsara sends to test a webhook (Webhooks 1.0).
PING: dict[str, Any] = {
    "eventId": "0d4cf40e-0000-4000-8000-000000000000",
    "eventMs": 1773155000000,
    "eventType": "Ping",
}

EVENTS: dict[str, dict[str, Any]] = {
    "GeofenceEntry": GEOFENCE_ENTRY,
    "DocumentSubmitted": DOCUMENT_SUBMITTED,
    "GeofenceExit": GEOFENCE_EXIT,
    "VehicleUpdated": VEHICLE_UPDATED,
    "AddressCreated": ADDRESS_CREATED,
    "Alert": SPEEDING_ALERT,
    "EngineFaultOn": ENGINE_FAULT,
}


def events() -> list[dict[str, Any]]:
    """Deep copies of the sample events, Samsara's RouteStopArrival example first."""
    return [route_stop_arrival(), *(copy.deepcopy(e) for e in EVENTS.values())]


def encode(event: dict[str, Any]) -> bytes:
    """A body as Samsara sends it: compact UTF-8 JSON."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
