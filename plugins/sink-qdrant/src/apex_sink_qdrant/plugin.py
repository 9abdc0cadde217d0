"""Hook implementations of the Qdrant sink (entry point `qdrant` in `apex.plugins`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import apex_platform

if TYPE_CHECKING:
    from apex_platform.contracts import Sink


#: the Apex plugin API versions this plugin is written for (checked when it loads)
apex_plugin_api = ">=1,<2"


@apex_platform.hookimpl
def apex_register_sinks(register: Callable[[Sink], None]) -> None:
    # Imported here so loading the entry point stays cheap; the sink does no I/O until open().
    from apex_sink_qdrant.sink import QdrantSink

    register(QdrantSink())
