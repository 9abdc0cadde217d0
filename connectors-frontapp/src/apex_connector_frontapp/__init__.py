"""Apex source connector for Front (frontapp.com) application webhooks."""

from __future__ import annotations

from apex_connector_frontapp.connector import FrontConnector
from apex_connector_frontapp.records import (
    KIND_COMMENT,
    KIND_CONVERSATION,
    KIND_EVENT,
    KIND_MESSAGE,
)
from apex_connector_frontapp.settings import FrontSettings

__all__ = [
    "KIND_COMMENT",
    "KIND_CONVERSATION",
    "KIND_EVENT",
    "KIND_MESSAGE",
    "FrontConnector",
    "FrontSettings",
]
