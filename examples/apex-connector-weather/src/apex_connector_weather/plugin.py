"""Hook implementations of the weather plugin (entry point `weather` in group `apex.plugins`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import apex_platform

if TYPE_CHECKING:
    from collections.abc import Callable

    from apex_platform.contracts import SourceConnector

#: the Apex plugin API versions this plugin is written for (checked when it loads)
apex_plugin_api = ">=1,<2"


@apex_platform.hookimpl
def apex_register_sources(register: Callable[[SourceConnector], None]) -> None:
    from apex_connector_weather.connector import WeatherConnector

    register(WeatherConnector())  # settings are read on first use, not at registration
