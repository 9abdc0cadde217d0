"""Apex source connector for QuickBooks Online change data capture."""

from __future__ import annotations

from apex_connector_financial.connector import FinancialConnector
from apex_connector_financial.postgres_tokens import PostgresTokenStore
from apex_connector_financial.records import KINDS
from apex_connector_financial.settings import FinancialSettings
from apex_connector_financial.tokens import FileTokenStore, MemoryTokenStore, SharedTokenStore, TokenStore

__all__ = [
    "KINDS",
    "FileTokenStore",
    "FinancialConnector",
    "FinancialSettings",
    "MemoryTokenStore",
    "PostgresTokenStore",
    "SharedTokenStore",
    "TokenStore",
]
