"""What the sink needs from a graph database; `falkordb_backend` and `neo4j_backend` provide it.

The sink hands every backend the same Cypher text and parameters (`cypher.py`); a
backend only moves them: FalkorDB runs each statement as one atomic GRAPH.QUERY,
Neo4j runs all statements of one write in one transaction.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from apex_platform.errors import SinkError

if TYPE_CHECKING:
    from apex_sink_graph.settings import GraphSinkSettings, GraphTarget

T = TypeVar("T")
Row = dict[str, Any]
#: Runs one statement with its parameters and returns its rows as dicts by column name.
Runner = Callable[[str, Mapping[str, Any]], Awaitable[list[Row]]]


class GraphDataError(SinkError):
    """The server answered a write statement with an error about the data it was given
    (not the connection, a timeout or the server's state): retrying the same records
    cannot help, but the batch can be narrowed down to the record that causes it.
    `detail` is the server's message."""

    def __init__(self, message: str, *, detail: str) -> None:
        super().__init__(message)
        self.detail = detail


class GraphBackend(Protocol):
    kind: str
    target: GraphTarget

    def where(self) -> str:
        """Which server (no password), for messages."""
        ...

    async def open(self) -> None:
        """Connect, check the server answers, create the record index or constraint."""
        ...

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise `SinkError` unless the server answers within the health timeout."""
        ...

    async def ensure_labels(self, labels: Sequence[str]) -> None:
        """Index (FalkorDB) or constrain (Neo4j) `key` on each label; idempotent."""
        ...

    async def write(self, work: Callable[[Runner], Awaitable[T]]) -> T:
        """Run `work` with a runner for write statements (Neo4j: inside one transaction).
        `GraphDataError` when the server refused the data of a statement, `SinkError`
        for anything else (connection, timeout, the server's state)."""
        ...

    async def read(self, cypher: str, params: Mapping[str, Any]) -> list[Row]: ...


def make_backend(target: GraphTarget, settings: GraphSinkSettings) -> GraphBackend:
    """The backend for `target` (no I/O)."""
    if target.backend == "neo4j":
        from apex_sink_graph.neo4j_backend import Neo4jBackend

        return Neo4jBackend(target, settings)
    from apex_sink_graph.falkordb_backend import FalkorDBBackend

    return FalkorDBBackend(target, settings)
