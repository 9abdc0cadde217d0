"""Apex source connector for FreightWaves SONAR: ticker polling and signed alert webhooks."""

from __future__ import annotations

from apex_connector_sonar.alerts import KIND_ALERT
from apex_connector_sonar.connector import SonarConnector
from apex_connector_sonar.settings import SonarSettings
from apex_connector_sonar.tickers import KIND_TICKER_VALUE, Ticker

__all__ = ["KIND_ALERT", "KIND_TICKER_VALUE", "SonarConnector", "SonarSettings", "Ticker"]
