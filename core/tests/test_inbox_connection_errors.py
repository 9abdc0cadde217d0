"""Every way the inbox's database can vanish mid-commit is "the inbox is unavailable"
(503 + Retry-After at the edge), never an unhandled error (500). The chaos harness
(tests/chaos) found asyncpg's InternalClientError ("cannot switch to state …"), raised
while a connection is released as PostgreSQL shuts down, answered 500."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from apex_platform.inbox import Delivery, Inbox, InboxSettings, InboxUnavailable


class _Vanishing:
    """A pool whose connection fails with `error` when the commit block is left."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def acquire(self, timeout: float | None = None) -> Any:
        error = self.error

        class _Acquired:
            async def __aenter__(self) -> Any:
                raise error

            async def __aexit__(self, *exc: object) -> None:
                return None

        return _Acquired()


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.InternalClientError("cannot switch to state 15; another operation (2) is in progress"),
        asyncpg.InterfaceError("cannot call Transaction.__aexit__(): the underlying connection is closed"),
        ConnectionResetError(104, "Connection reset by peer"),
    ],
)
async def test_a_commit_the_database_broke_off_is_unavailable_not_an_internal_error(error: BaseException) -> None:
    inbox = Inbox(InboxSettings(dsn="postgresql://nobody@127.0.0.1:9/none"))
    inbox._pool = _Vanishing(error)  # type: ignore[assignment]
    delivery = Delivery("frontapp", "evt_1", datetime.now(UTC), {}, b"{}")
    with pytest.raises(InboxUnavailable, match="could not commit"):
        await inbox.put(delivery)
