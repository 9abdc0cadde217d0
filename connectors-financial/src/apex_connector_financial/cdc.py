"""QuickBooks Online's change data capture and query answers, read defensively.

```
{"CDCResponse": [{"QueryResponse": [{"Invoice": [...], "startPosition": 1, "maxResults": 2},
                                    {"Customer": [...], ...}]}],
 "time": "2026-03-10T07:05:12.345-07:00"}
```

Deleted objects are `{"domain": "QBO", "status": "Deleted", "Id": "979",
"MetaData": {"LastUpdatedTime": …}}`. The query API answers
`{"QueryResponse": {"Invoice": [...], "startPosition": 1, "maxResults": 2}, "time": …}`
(`{"QueryResponse": {}}` when nothing matches, `{"QueryResponse": {"totalCount": 5}}` for
`select count(*)`), and never holds deleted objects. Shapes that are not QuickBooks' raise
`ShapeError`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

_ID = re.compile(r"^[0-9A-Za-z_-]{1,64}$")
_PAGING_KEYS = {"startPosition", "maxResults", "totalCount"}


class ShapeError(ValueError):
    """A QuickBooks answer does not have the documented shape."""


def parse_time(value: Any) -> datetime | None:
    """QuickBooks times: ISO 8601 with an offset (`2015-12-23T12:55:50-08:00`)."""
    if not isinstance(value, str) or not value or len(value) > 64:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def format_time(when: datetime) -> str:
    """`changedSince` as QuickBooks shows its own times: ISO 8601 with an explicit offset."""
    return when.astimezone(UTC).isoformat(timespec="milliseconds")


def whole_second(when: datetime) -> datetime:
    """`when` without its fraction: QuickBooks keeps `LastUpdatedTime` to the second."""
    return when.astimezone(UTC).replace(microsecond=0)


def query_time(when: datetime) -> str:
    """A time literal of the query language: `'2015-12-23T20:55:50+00:00'` (whole seconds)."""
    return "'" + whole_second(when).isoformat(timespec="seconds") + "'"


@dataclass(frozen=True)
class Change:
    """One changed (or deleted) object of one entity."""

    entity: str
    id: str
    updated: datetime
    deleted: bool
    sync_token: int | None
    body: dict[str, Any]


@dataclass(frozen=True)
class CdcAnswer:
    time: datetime
    changes: list[Change] = field(default_factory=list)

    def of(self, entity: str) -> list[Change]:
        return [c for c in self.changes if c.entity == entity]


def _change(entity: str, raw: Any, where: str) -> Change:
    if not isinstance(raw, dict):
        raise ShapeError(f"{where} is a {type(raw).__name__}, not an object")
    oid = raw.get("Id")
    if not isinstance(oid, str) or not _ID.match(oid):
        raise ShapeError(f"{where}.Id is missing or not a QuickBooks id: {str(oid)[:40]!r}")
    meta = raw.get("MetaData")
    updated = parse_time(meta.get("LastUpdatedTime")) if isinstance(meta, dict) else None
    if updated is None or updated.timestamp() < 0:
        raise ShapeError(f"{where}.MetaData.LastUpdatedTime is missing or not a time")
    token = raw.get("SyncToken")
    sync: int | None = None
    if isinstance(token, str) and token.isdigit() and len(token) < 12:
        sync = int(token)
    elif isinstance(token, int) and not isinstance(token, bool) and token >= 0:
        sync = token
    return Change(entity, oid, updated, raw.get("status") == "Deleted", sync, raw)


def parse_cdc(doc: Any, where: str) -> CdcAnswer:
    if not isinstance(doc, dict):
        raise ShapeError(f"{where}: the answer is not a JSON object")
    when = parse_time(doc.get("time"))
    if when is None:
        raise ShapeError(f"{where}: time is missing or not a time")
    outer = doc.get("CDCResponse")
    if not isinstance(outer, list):
        raise ShapeError(f"{where}: CDCResponse is {'missing' if outer is None else 'not a list'}")
    changes: list[Change] = []
    for i, block in enumerate(outer):
        responses = block.get("QueryResponse") if isinstance(block, dict) else None
        if responses is None:
            continue  # an empty CDCResponse entry: nothing changed
        if not isinstance(responses, list):
            raise ShapeError(f"{where}: CDCResponse[{i}].QueryResponse is not a list")
        for j, resp in enumerate(responses):
            if not isinstance(resp, dict):
                raise ShapeError(f"{where}: CDCResponse[{i}].QueryResponse[{j}] is not an object")
            for entity, items in resp.items():
                if entity in _PAGING_KEYS:
                    continue
                if not isinstance(items, list):
                    raise ShapeError(f"{where}: QueryResponse[{j}].{str(entity)[:40]} is not a list")
                changes += [_change(entity, item, f"{where}: {entity}[{k}]") for k, item in enumerate(items)]
    return CdcAnswer(when, changes)


@dataclass(frozen=True)
class QueryAnswer:
    time: datetime | None
    changes: list[Change] = field(default_factory=list)
    total_count: int | None = None


def parse_query(doc: Any, entity: str, where: str) -> QueryAnswer:
    """A query answer for one entity: its objects (never deleted ones), or `totalCount`."""
    if not isinstance(doc, dict):
        raise ShapeError(f"{where}: the answer is not a JSON object")
    resp = doc.get("QueryResponse")
    if not isinstance(resp, dict):
        raise ShapeError(f"{where}: QueryResponse is {'missing' if resp is None else 'not an object'}")
    total = resp.get("totalCount")
    if total is not None and (isinstance(total, bool) or not isinstance(total, int) or total < 0):
        raise ShapeError(f"{where}: QueryResponse.totalCount is not a count")
    items = resp.get(entity, [])
    if not isinstance(items, list):
        raise ShapeError(f"{where}: QueryResponse.{entity} is not a list")
    others = [str(k)[:40] for k in resp if k != entity and k not in _PAGING_KEYS]
    if others:
        raise ShapeError(f"{where}: QueryResponse holds {others[0]}, not the {entity} objects asked for")
    changes = [_change(entity, item, f"{where}: {entity}[{k}]") for k, item in enumerate(items)]
    if any(c.deleted for c in changes):
        raise ShapeError(f"{where}: the query answer holds a deleted {entity}, which the query API never returns")
    return QueryAnswer(parse_time(doc.get("time")), changes, total)
