"""The poll cursor of one QuickBooks company, kept in workflow history as a JSON string:
`{"v": 1, "since": {"Invoice": "<ISO time>", …}}`, the `changedSince` of each entity.

Entities usually share one time (one CDC call for all of them); they part only while one
of them is paged through more than a CDC answer holds. Nothing secret is in here.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from apex_connector_financial.cdc import parse_time
from apex_platform.errors import VendorError


class FinancialCursor(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    v: Literal[1] = 1
    since: dict[str, str] = {}

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
        return self.model_dump_json()


def decode(raw: str | None, *, where: str) -> FinancialCursor:
    if raw is None or raw == "":
        return FinancialCursor()
    try:
        return FinancialCursor.model_validate(json.loads(raw))
    except (ValueError, ValidationError) as exc:
        raise VendorError(
            f"{where}: the stored cursor is not a QuickBooks connector cursor: {exc}", retryable=False
        ) from exc
