"""A retried drain batch is smaller: a batch that cannot finish in time (a heartbeat timeout
on a starved machine) must not be retried at the same size forever."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from apex_platform.inbox import Delivery, Inbox, StoredDelivery
from apex_platform.temporal.activities import MAX_BATCH_HALVINGS, IngestActivities, batch_limits
from apex_platform.temporal.inputs import DrainBatchInput

pytestmark = pytest.mark.timeout(120)


def test_each_retry_halves_the_batch_down_to_a_floor() -> None:
    assert batch_limits(1000, 8 << 20, 1) == (1000, 8 << 20)
    assert batch_limits(1000, 8 << 20, 2) == (500, 4 << 20)
    assert batch_limits(1000, 8 << 20, 3) == (250, 2 << 20)
    floor = batch_limits(1000, 8 << 20, 1 + MAX_BATCH_HALVINGS)
    assert batch_limits(1000, 8 << 20, 50) == floor
    assert floor[0] == 1000 >> MAX_BATCH_HALVINGS
    assert batch_limits(3, 1000, 9) == (1, 1000)  # never none; a small byte limit is kept as is


@pytest.fixture
def inbox(apex_inbox: Inbox) -> Inbox:
    return apex_inbox


@pytest.mark.parametrize(("attempt", "taken"), [(1, 8), (2, 4), (3, 2), (4, 1)])
async def test_a_retried_drain_attempt_takes_a_smaller_batch_from_the_inbox(
    inbox: Inbox, attempt: int, taken: int
) -> None:
    now = datetime.now(UTC)
    for i in range(12):
        await inbox.put(Delivery(source="src", event_id=f"e{i}", received_at=now, headers={}, body=b'{"n": %d}' % i))
    acts = IngestActivities(None, None, None, inbox)  # type: ignore[arg-type]
    seen: list[int] = []

    async def parse(source: str, rows: Sequence[StoredDelivery]) -> Any:
        seen.append(len(rows))
        raise ApplicationError("stop after reading the batch", non_retryable=True)

    acts._parse_deliveries = parse  # type: ignore[method-assign]
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, attempt=attempt)
    with pytest.raises(ApplicationError):
        await env.run(
            acts.drain_inbox, DrainBatchInput(source="src", max_count=8, max_bytes=1 << 20, idle_wait_seconds=0)
        )
    assert seen == [taken]
