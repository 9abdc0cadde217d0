"""The poll cursor of one QuickBooks company, kept in workflow history as a JSON string:
`{"v": 1, "since": {"Invoice": "<ISO time>", …}, "windows": {…}}`.

`since` is the `changedSince` of each entity. Entities usually share one time (one CDC
call for all of them); they part only while one of them has more changes than a CDC
answer holds. Such an entity has a window in `windows` while it is read through the query
API: `start` (the next page starts there, inclusive), `until` (the window's end,
inclusive) and `deletions_since` (where its CDC answers began to be full: CDC is the only
route to deletions). Nothing secret is in here.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from apex_connector_financial.cdc import parse_time
from apex_platform.errors import VendorError


def _time(value: str, what: str) -> datetime:
    when = parse_time(value)
    if when is None:
        raise ValueError(f"{what} is not a time")
    return when


class Window(BaseModel):
    """One entity's changes between `start` and `until`, read a page at a time by the query API."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: str
    until: str
    deletions_since: str

    @model_validator(mode="after")
    def _times(self) -> Window:
        start = _time(self.start, "start")
        until = _time(self.until, "until")
        deletions = _time(self.deletions_since, "deletions_since")
        if start > until:
            raise ValueError("start is after until")
        if deletions > start:
            raise ValueError("deletions_since is after start")
        return self

    @property
    def start_time(self) -> datetime:
        return _time(self.start, "start")

    @property
    def until_time(self) -> datetime:
        return _time(self.until, "until")

    @property
    def deletions_time(self) -> datetime:
        return _time(self.deletions_since, "deletions_since")


class FinancialCursor(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    v: Literal[1] = 1
    since: dict[str, str] = {}
    windows: dict[str, Window] = {}

    @field_validator("since")
    @classmethod
    def _times(cls, value: dict[str, str]) -> dict[str, str]:
        for entity, when in value.items():
            if parse_time(when) is None:
                raise ValueError(f"since[{entity!r}] is not a time")
        return value

    def of(self, entity: str) -> datetime | None:
        text = self.since.get(entity)
        return parse_time(text) if text else None

    def encode(self) -> str:
        # without windows the cursor reads as it did before windows existed
        return self.model_dump_json(exclude=None if self.windows else {"windows"})


def decode(raw: str | None, *, where: str) -> FinancialCursor:
    if raw is None or raw == "":
        return FinancialCursor()
    try:
        return FinancialCursor.model_validate(json.loads(raw))
    except (ValueError, ValidationError) as exc:
        raise VendorError(
            f"{where}: the stored cursor is not a QuickBooks connector cursor: {exc}", retryable=False
        ) from exc
