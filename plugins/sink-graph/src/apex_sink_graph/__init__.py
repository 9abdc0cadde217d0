"""Apex graph sink: records, entities and relations in FalkorDB or Neo4j."""

from __future__ import annotations

from apex_sink_graph.settings import GraphSinkSettings, GraphTarget, parse_uri, resolve_target
from apex_sink_graph.sink import GraphEntity, GraphRelation, GraphSink

__all__ = [
    "GraphEntity",
    "GraphRelation",
    "GraphSink",
    "GraphSinkSettings",
    "GraphTarget",
    "parse_uri",
    "resolve_target",
]
