"""The fenced Sink contract (apex_platform.contracts.Sink) against the real store."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from apex_platform.contracts import Sink
from apex_platform.testing.sink_contract import SINK_CHECKS


@pytest.mark.parametrize("check", SINK_CHECKS, ids=lambda c: c.__name__)
async def test_fenced_contract(sink: Sink, check: Callable[[Sink], Awaitable[None]]) -> None:
    await check(sink)
