"""Apex source connector for HubSpot CRM v3 (contacts, companies, deals)."""

from __future__ import annotations

from apex_connector_crm.connector import CrmConnector
from apex_connector_crm.records import KIND_COMPANY, KIND_CONTACT, KIND_DEAL
from apex_connector_crm.settings import CrmSettings

__all__ = ["KIND_COMPANY", "KIND_CONTACT", "KIND_DEAL", "CrmConnector", "CrmSettings"]
