"""Polling a source from a test the way `PollWorkflow` does, without Temporal."""

from __future__ import annotations

from typing import Any

from apex_platform.models import Page, Record


async def drain_poll(
    source: Any, account: str, cursor: str | None = None, *, limit: int = 200
) -> tuple[list[Record], str | None]:
    """Poll `account` page by page from `cursor` until `has_more` is false: every record of
    the run and the cursor it ends on (a page without `next_cursor` keeps the cursor).
    `AssertionError` when the run takes more than `limit` pages."""
    records: list[Record] = []
    for _ in range(limit):
        page: Page = await source.poll(account, cursor)
        records.extend(page.records)
        cursor = page.next_cursor if page.next_cursor is not None else cursor
        if not page.has_more:
            return records, cursor
    raise AssertionError(f"the poll of {account!r} did not finish within {limit} pages")
