"""Apex: durable, exactly-once-in-effect ingestion of logistics events into memory stores."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from apex_platform.hookspecs import PLUGIN_API_VERSION, hookimpl, hookspec
from apex_platform.models import Entity, InboundEvent, Page, Record, RecordKey, Relation

try:
    __version__ = version("apex-platform")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "PLUGIN_API_VERSION",
    "Entity",
    "InboundEvent",
    "Page",
    "Record",
    "RecordKey",
    "Relation",
    "__version__",
    "hookimpl",
    "hookspec",
]
