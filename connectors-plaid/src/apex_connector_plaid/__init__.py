"""Apex source connector for Plaid Transactions (/transactions/sync + SYNC_UPDATES_AVAILABLE)."""

from __future__ import annotations

from apex_connector_plaid.connector import PlaidConnector
from apex_connector_plaid.records import KIND_ACCOUNT, KIND_TRANSACTION, KIND_UNREADABLE, KIND_WEBHOOK
from apex_connector_plaid.settings import PlaidSettings

__all__ = [
    "KIND_ACCOUNT",
    "KIND_TRANSACTION",
    "KIND_UNREADABLE",
    "KIND_WEBHOOK",
    "PlaidConnector",
    "PlaidSettings",
]
