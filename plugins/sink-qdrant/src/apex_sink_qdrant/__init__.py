"""Apex Qdrant sink: one point per record, for vector search over the latest versions."""

from __future__ import annotations

from apex_sink_qdrant.points import APEX_NAMESPACE, VECTOR_NAME, point_id
from apex_sink_qdrant.settings import QdrantSinkSettings
from apex_sink_qdrant.sink import QdrantSink, SearchHit

__all__ = [
    "APEX_NAMESPACE",
    "VECTOR_NAME",
    "QdrantSink",
    "QdrantSinkSettings",
    "SearchHit",
    "point_id",
]
