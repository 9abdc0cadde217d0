"""The fenced Sink contract, on the testing kit's MemorySink (the reference the saga tests use)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from apex_platform.contracts import Sink
from apex_platform.testing.sink_contract import SINK_CHECKS
from apex_platform.testing.sinks import MemorySink


@pytest.mark.parametrize("check", SINK_CHECKS, ids=lambda c: c.__name__)
async def test_fenced_contract(check: Callable[[Sink], Awaitable[None]]) -> None:
    await check(MemorySink())
