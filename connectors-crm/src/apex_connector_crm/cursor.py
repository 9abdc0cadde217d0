"""The poll cursor of one HubSpot object type, kept in workflow history as a JSON string.

Search paging is by key, not by HubSpot's `after` offset: each page asks again for
objects modified at or after the last modification time seen (`since`), skipping the
ids already written at exactly that time (`ids_at_since`). Offsets shift when an object
is modified while a query is being paged (an unmodified object can then be skipped for
good), and HubSpot refuses to page a search beyond 10,000 results; keyed queries have
neither problem. When one millisecond holds a full page of objects, the cursor pages
through that millisecond by object id (`tie_after`).

The archived sweep pages HubSpot's archived listing with its own `after` token.

Nothing secret is in here: only times, object ids and HubSpot's paging tokens.
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from apex_platform.errors import VendorError

#: the most ids remembered at `since`; more means a tie page, which pages by id instead
MAX_IDS_AT_SINCE = 200


class CrmCursor(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    v: Literal[1] = 1
    #: last modification time written, in ms since the epoch
    since: int = Field(default=0, ge=0)
    #: ids written whose modification time is exactly `since`
    ids_at_since: tuple[str, ...] = Field(default=(), max_length=MAX_IDS_AT_SINCE)
    #: every object modified at exactly `since` is written: ask for later ones only
    strict: bool = False
    #: paging by id inside the millisecond `since` (None: not inside a tie)
    tie_after: str | None = None
    tie: bool = False
    phase: Literal["search", "archived"] = "search"
    #: HubSpot's paging token of the archived listing (phase "archived")
    after: str | None = None
    #: objects archived at or before this (ms, HubSpot's clock) were written by an earlier sweep
    archived_since: int = Field(default=0, ge=0)
    #: the latest archive time seen by the current sweep (ms, HubSpot's clock)
    sweep_max: int | None = None
    #: when the current sweep began / the last sweep completed (ms, the worker's clock: scheduling only)
    sweep_started: int | None = None
    swept_at: int | None = None

    def encode(self) -> str:
        return self.model_dump_json(exclude_defaults=False)


def decode(raw: str | None, *, where: str) -> CrmCursor:
    if raw is None or raw == "":
        return CrmCursor()
    try:
        doc = json.loads(raw)
        return CrmCursor.model_validate(doc)
    except (ValueError, ValidationError) as exc:
        # Only Apex writes this cursor; a cursor it cannot read is a bug, not a vendor hiccup.
        raise VendorError(
            f"{where}: the stored cursor is not a HubSpot connector cursor: {exc}", retryable=False
        ) from exc
