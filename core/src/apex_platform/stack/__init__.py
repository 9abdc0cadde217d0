"""The embedded default stack: Temporal dev server, PostgreSQL+pgvector, Redis+FalkorDB.

Each server is a `ServerProcess` that starts, answers, stops and restarts on a data
folder; `EmbeddedStack` runs the three under APEX_HOME for `apex-platform dev`, and the
pytest plugin of `apex_platform.testing` runs them on free ports for tests.
"""

from __future__ import annotations

from apex_platform.stack.errors import StackError
from apex_platform.stack.ports import PortClaim, ensure_ports_free, free_port, port_is_free
from apex_platform.stack.postgres import PostgresServer
from apex_platform.stack.processes import ServerProcess
from apex_platform.stack.redis_server import RedisServer
from apex_platform.stack.stack import EmbeddedStack, StackSettings, read_stack
from apex_platform.stack.temporal_server import APEX_SEARCH_ATTRIBUTES, TemporalDevServer

__all__ = [
    "APEX_SEARCH_ATTRIBUTES",
    "EmbeddedStack",
    "PortClaim",
    "PostgresServer",
    "RedisServer",
    "ServerProcess",
    "StackError",
    "StackSettings",
    "TemporalDevServer",
    "ensure_ports_free",
    "free_port",
    "port_is_free",
    "read_stack",
]
