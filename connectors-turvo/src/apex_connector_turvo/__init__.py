"""Apex source connector for Turvo TMS webhooks, each entity fetched through the public API."""

from __future__ import annotations

from apex_connector_turvo.connector import TurvoConnector
from apex_connector_turvo.records import (
    KIND_CARRIER,
    KIND_CUSTOMER,
    KIND_LOCATION,
    KIND_ORDER,
    KIND_SHIPMENT,
    KIND_STATUS,
    KIND_STOP,
    KIND_UNRESOLVED,
    KIND_WEBHOOK,
)
from apex_connector_turvo.settings import TurvoSettings

__all__ = [
    "KIND_CARRIER",
    "KIND_CUSTOMER",
    "KIND_LOCATION",
    "KIND_ORDER",
    "KIND_SHIPMENT",
    "KIND_STATUS",
    "KIND_STOP",
    "KIND_UNRESOLVED",
    "KIND_WEBHOOK",
    "TurvoConnector",
    "TurvoSettings",
]
