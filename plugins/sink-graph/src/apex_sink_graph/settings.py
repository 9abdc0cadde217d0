"""Settings of the graph sink (`APEX_GRAPH_*`) and which backend a URI selects.

`APEX_GRAPH_URI` picks the backend by its scheme:

- `falkordb://host:port[/graph]`, `falkordbs://` (TLS), `falkor://`, `falkors://`,
  `redis://host:port[/db]`, `rediss://` -> FalkorDB (graph name from the path of a
  falkordb URI, else `APEX_GRAPH_NAME`);
- `neo4j://`, `neo4j+s://`, `neo4j+ssc://`, `bolt://`, `bolt+s://`, `bolt+ssc://` -> Neo4j
  (`APEX_GRAPH_USER`, `APEX_GRAPH_PASSWORD`, `APEX_GRAPH_DATABASE`);
- unset -> the embedded stack's Redis (`<APEX_HOME>/stack.json`, key redis.url) as FalkorDB.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote, urlsplit, urlunsplit

from pydantic import Field
from pydantic_settings import BaseSettings

from apex_platform.errors import SettingsError
from apex_platform.settings import Credential, apex_config, core_settings

Backend = Literal["falkordb", "neo4j"]

#: Scheme -> the redis-py scheme that reaches the same server.
FALKORDB_SCHEMES = {
    "falkordb": "redis",
    "falkordbs": "rediss",
    "falkor": "redis",
    "falkors": "rediss",
    "redis": "redis",
    "rediss": "rediss",
}
#: Schemes whose URI path names the graph (for redis:// the path is the database number).
GRAPH_IN_PATH = frozenset({"falkordb", "falkordbs", "falkor", "falkors"})
NEO4J_SCHEMES = frozenset({"neo4j", "neo4j+s", "neo4j+ssc", "bolt", "bolt+s", "bolt+ssc"})

URI_HELP = (
    "set APEX_GRAPH_URI to falkordb://host:6379/apex (FalkorDB), neo4j+s://<id>.databases.neo4j.io "
    "(Neo4j Aura) or bolt://host:7687 (a Neo4j server)"
)


class GraphSinkSettings(BaseSettings):
    """Where and how the sink stores the graph. Every field reads `APEX_GRAPH_<FIELD>`."""

    model_config = apex_config("APEX_GRAPH_")

    uri: Credential | None = Field(
        default=None,
        description="falkordb://, redis://, neo4j://, neo4j+s://, bolt:// or bolt+s:// URI; "
        "unset: the embedded stack's Redis (FalkorDB) from APEX_HOME/stack.json",
    )
    name: str = Field(
        default="apex", min_length=1, max_length=256, description="FalkorDB graph name (unless the URI path names one)"
    )
    user: str | None = Field(default=None, description="Neo4j user (default neo4j), or Redis ACL user for FalkorDB")
    password: Credential | None = Field(default=None, description="Neo4j password, or Redis password for FalkorDB")
    database: str | None = Field(default=None, description="Neo4j database; unset: the server's default database")
    connect_timeout: float = Field(default=10.0, gt=0, description="Seconds to wait for a connection")
    query_timeout: float = Field(
        default=60.0, gt=0, description="Seconds one statement (Neo4j: one transaction) may take"
    )
    health_timeout: float = Field(default=2.0, gt=0, description="Seconds health() waits for an answer")
    retry_seconds: float = Field(
        default=15.0, ge=0, description="Neo4j: how long the driver retries a transaction after transient errors"
    )
    batch_size: int = Field(default=500, ge=1, le=100_000, description="Rows per UNWIND statement")


@dataclass(frozen=True)
class GraphTarget:
    """The backend and address a sink connects to (`url` may hold a password: see `where`)."""

    backend: Backend
    url: str
    #: FalkorDB graph name.
    graph: str = "apex"
    #: Neo4j database (None: the server's default).
    database: str | None = None
    #: Where the URI came from, for messages ("APEX_GRAPH_URI" or the stack file).
    origin: str = "APEX_GRAPH_URI"

    def where(self) -> str:
        """The address without password, and the graph or database, for messages and logs."""
        place = redact(self.url)
        if self.backend == "falkordb":
            place += f" graph {self.graph!r}"
        elif self.database:
            place += f" database {self.database!r}"
        if self.origin != "APEX_GRAPH_URI":
            place += f" (from {self.origin}: is `apex-platform dev` running?)"
        return f"{self.backend} {place}"


def parse_uri(
    uri: str, *, graph: str = "apex", database: str | None = None, origin: str = "APEX_GRAPH_URI"
) -> GraphTarget:
    """The backend and connection URL for `uri`; `SettingsError` names APEX_GRAPH_URI when it is unusable."""
    try:
        parts = urlsplit(uri.strip())
    except ValueError as exc:
        raise SettingsError(f"APEX_GRAPH_URI is not a URI ({exc}); {URI_HELP}") from None
    scheme = parts.scheme.lower()
    if not parts.hostname and scheme not in {"redis", "rediss"}:
        raise SettingsError(f"APEX_GRAPH_URI {redact(uri)!r} names no host; {URI_HELP}")
    if scheme in NEO4J_SCHEMES:
        return GraphTarget(
            "neo4j", urlunsplit((scheme, parts.netloc, "", parts.query, "")), database=database, origin=origin
        )
    if scheme in FALKORDB_SCHEMES:
        path = parts.path
        if scheme in GRAPH_IN_PATH:
            name = unquote(path.lstrip("/"))
            if name:
                graph = name
            path = ""
        url = urlunsplit((FALKORDB_SCHEMES[scheme], parts.netloc, path, parts.query, ""))
        return GraphTarget("falkordb", url, graph=graph, origin=origin)
    raise SettingsError(f"APEX_GRAPH_URI has the unsupported scheme {parts.scheme or '(none)'!r}; {URI_HELP}")


def resolve_target(settings: GraphSinkSettings) -> GraphTarget:
    """APEX_GRAPH_URI, else the running embedded stack's Redis; `SettingsError` if neither."""
    if settings.uri is not None and settings.uri.get_secret_value().strip():
        return parse_uri(settings.uri.get_secret_value(), graph=settings.name, database=settings.database)
    from apex_platform.stack import read_stack

    home = core_settings().home
    info = read_stack(home)
    stack_file = home / "stack.json"
    if info is None:
        raise SettingsError(
            f"the graph sink has no graph database: {URI_HELP}, or start `apex-platform dev` "
            f"(no running embedded stack found at {stack_file})"
        )
    try:
        url = info["redis"]["url"]
    except (KeyError, TypeError):
        url = None
    if not isinstance(url, str) or not url:
        raise SettingsError(f"{stack_file} has no redis.url; {URI_HELP} or restart `apex-platform dev`")
    return parse_uri(url, graph=settings.name, origin=str(stack_file))


def redact(url: str) -> str:
    """`url` without its password."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URI>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{host}" if ":" in userinfo else f"{user}@{host}"
    query = "&".join(
        f"{k}=***" if k.lower() in {"password", "pass", "pwd"} else f"{k}={v}" if sep else k
        for k, sep, v in (p.partition("=") for p in parts.query.split("&") if p)
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))
