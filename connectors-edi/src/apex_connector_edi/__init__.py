"""Apex source connector for carrier EDI files: X12 214 shipment status and 210 freight invoices."""

from __future__ import annotations

from apex_connector_edi.connector import EdiConnector
from apex_connector_edi.records import KIND_INVOICE, KIND_SET, KIND_STATUS
from apex_connector_edi.settings import EdiSettings
from apex_connector_edi.x12 import Delimiters, Segment, X12Error, X12Reader

__all__ = [
    "KIND_INVOICE",
    "KIND_SET",
    "KIND_STATUS",
    "Delimiters",
    "EdiConnector",
    "EdiSettings",
    "Segment",
    "X12Error",
    "X12Reader",
]
