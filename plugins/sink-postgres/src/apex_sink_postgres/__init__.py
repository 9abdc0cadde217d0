"""Apex PostgreSQL sink: records, pgvector embeddings and the dead-letter table."""

from __future__ import annotations

from apex_sink_postgres.dead_letters import DeadLetterStatus, DeadLetterStore, StoredDeadLetter
from apex_sink_postgres.settings import PostgresSinkSettings
from apex_sink_postgres.sink import PostgresSink

__all__ = [
    "DeadLetterStatus",
    "DeadLetterStore",
    "PostgresSink",
    "PostgresSinkSettings",
    "StoredDeadLetter",
]
