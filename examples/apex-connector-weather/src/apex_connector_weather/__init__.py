"""Apex source connector for US National Weather Service alerts (an example outside the monorepo)."""

from apex_connector_weather.connector import WeatherConnector
from apex_connector_weather.settings import WeatherSettings

__all__ = ["WeatherConnector", "WeatherSettings"]
