"""Log context and JSON lines (`APEX_LOG_FORMAT=json`).

Intake, the drain and the saga set what they are working on — source, record id (where
there is one), delivery key (the event id) and workflow id — in context variables
(`log_context`); `ContextFilter`, on every handler the platform installs, copies them
onto each log record (`record.source`, `record.record_id`, `record.event_id`,
`record.workflow_id`; None when not known), so any line — text or JSON — says which
delivery it is about. Context variables follow asyncio tasks, so the saga's concurrent
sink calls and the SDK's activity tasks keep the context they were started in.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings

from apex_platform.settings import apex_config, load

#: the fields every record carries (None when not known where it was logged)
FIELDS = ("source", "record_id", "event_id", "workflow_id")

_context: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar("apex_log_context", default=None)


def current() -> dict[str, str]:
    return dict(_context.get() or {})


@contextlib.contextmanager
def log_context(**fields: str | None) -> Iterator[None]:
    """Add these fields (None leaves a field as it was) to every record logged in the block."""
    merged = {**(_context.get() or {}), **{k: str(v) for k, v in fields.items() if v is not None}}
    token = _context.set(merged)
    try:
        yield
    finally:
        _context.reset(token)


class ContextFilter(logging.Filter):
    """Copies the log context onto every record (never drops one). A field the call set
    itself (`extra={"source": ...}`) is kept."""

    def filter(self, record: logging.LogRecord) -> bool:
        ctx = _context.get() or {}
        for name in FIELDS:
            if getattr(record, name, None) is None:
                setattr(record, name, ctx.get(name))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, the context
    fields, and the exception's traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                doc[name] = value
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False, default=str)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class LogSettings(BaseSettings):
    model_config = apex_config("APEX_LOG_")

    format: Literal["text", "json"] = Field(default="text", description="json: one JSON object per line")

    @field_validator("format", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value


def log_format() -> str:
    """`APEX_LOG_FORMAT`; a wrong value is a `SettingsError` naming the variable."""
    return load(LogSettings).format


def install(handler: logging.Handler | None = None, fmt: str | None = None) -> logging.Handler:
    """Put the context filter and the formatter of `fmt` (default `APEX_LOG_FORMAT`) on
    `handler` (default: every handler of the root logger; one is added if it has none)."""
    chosen = fmt or log_format()
    formatter: logging.Formatter = JsonFormatter() if chosen == "json" else logging.Formatter(TEXT_FORMAT)
    root = logging.getLogger()
    handlers = [handler] if handler is not None else list(root.handlers)
    if not handlers:
        handlers = [logging.StreamHandler()]
        root.addHandler(handlers[0])
    for h in handlers:
        if not any(isinstance(f, ContextFilter) for f in h.filters):
            h.addFilter(ContextFilter())
        h.setFormatter(formatter)
    return handlers[0]
