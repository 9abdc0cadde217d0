"""Hook implementations of the Weather plugin (entry point `weather` in group `apex.plugins`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import apex_platform

if TYPE_CHECKING:
    from apex_platform.contracts import SourceConnector

#: the versions of Apex's plugin contract this plugin is written for
apex_plugin_api = ">=1,<2"


@apex_platform.hookimpl
def apex_register_sources(register: Callable[[SourceConnector], None]) -> None:
    # Imported here so loading the entry point stays cheap; settings are read on first
    # use, so registration works before any secret is set.
    from apex_connector_weather.connector import WeatherConnector

    register(WeatherConnector())
