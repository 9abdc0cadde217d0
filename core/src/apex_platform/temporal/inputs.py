"""Workflow and activity inputs and results: one model each, so fields can be added
without breaking running workflows.  Pure data, safe to import from workflow code."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from apex_platform.models import InboundEvent, Record, WriteResult


class RecordBatch(BaseModel):
    """Records passed between activities, inline or (when large) by blob reference."""

    model_config = ConfigDict(frozen=True)

    source: str
    records: tuple[Record, ...] = ()
    ref: str | None = None
    count: int = 0
    record_ids: tuple[str, ...] = ()


class ActivityTimeouts(BaseModel):
    """Chosen by whoever starts the workflow (from settings): workflow code reads no env."""

    model_config = ConfigDict(frozen=True)

    start_to_close_seconds: float = 300.0
    heartbeat_seconds: float = 30.0


class IngestInput(BaseModel):
    model_config = ConfigDict(frozen=True)

    event: InboundEvent
    timeouts: ActivityTimeouts = ActivityTimeouts()


class ParseInput(BaseModel):
    model_config = ConfigDict(frozen=True)

    event: InboundEvent


class EnrichInput(BaseModel):
    model_config = ConfigDict(frozen=True)

    batch: RecordBatch


class SagaWriteInput(BaseModel):
    model_config = ConfigDict(frozen=True)

    batch: RecordBatch
    batch_id: str


class IngestResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    source: str
    event_id: str
    records: int
    record_ids: tuple[str, ...]
    write: WriteResult


class IngestStatus(BaseModel):
    model_config = ConfigDict(frozen=True)

    stage: str
    records: int = 0
    error: str | None = None
