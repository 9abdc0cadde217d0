"""Hook implementations of the Front plugin (entry point `frontapp` in group `apex.plugins`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import apex_platform
from apex_connector_frontapp.connector import FrontConnector

if TYPE_CHECKING:
    from collections.abc import Callable

    from apex_platform.contracts import SourceConnector


#: the Apex plugin API versions this plugin is written for (checked when it loads)
apex_plugin_api = ">=1,<2"


@apex_platform.hookimpl
def apex_register_sources(register: Callable[[SourceConnector], None]) -> None:
    # Settings are read on first use, not here: registration must work without the secret.
    register(FrontConnector())
