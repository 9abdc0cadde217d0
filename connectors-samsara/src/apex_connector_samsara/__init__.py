"""Apex source connector for Samsara: Webhooks 1.0/2.0 and the vehicle stats feed."""

from __future__ import annotations

from apex_connector_samsara.connector import SamsaraConnector
from apex_connector_samsara.feed import KIND_ANOMALY, KIND_ENGINE_STATE, KIND_GAP, KIND_LOCATION, KIND_STAT
from apex_connector_samsara.records import EVENT_KINDS, KIND_ALERT, KIND_EVENT
from apex_connector_samsara.settings import SamsaraSettings

__all__ = [
    "EVENT_KINDS",
    "KIND_ALERT",
    "KIND_ANOMALY",
    "KIND_ENGINE_STATE",
    "KIND_EVENT",
    "KIND_GAP",
    "KIND_LOCATION",
    "KIND_STAT",
    "SamsaraConnector",
    "SamsaraSettings",
]
