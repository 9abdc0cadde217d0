"""Hook implementations only; heavy imports stay inside the hooks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import apex_platform


@apex_platform.hookimpl
def apex_register_sources(register: Callable[[Any], None]) -> None:
    from apex_connector_example.connector import ExampleConnector

    register(ExampleConnector())
