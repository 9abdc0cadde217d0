"""`apex_platform.memory`: freed heap memory goes back to the system, periodically in a worker."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import time
from typing import Any

import pytest

from apex_platform import memory
from apex_platform.settings import TemporalSettings

pytestmark = pytest.mark.skipif(not memory.available(), reason="glibc's malloc_trim is not available here")

FRAGMENT = textwrap.dedent(
    """
    import json, psutil
    from apex_platform import memory
    proc = psutil.Process()
    # what a worker's batches do: many multi-KB blocks, a few of them kept a while
    blocks = [bytes(2048 + i % 512) for i in range(150_000)]
    kept = blocks[::25]
    del blocks
    before = proc.memory_info().rss
    trimmed = memory.trim()
    after = proc.memory_info().rss
    print(json.dumps({"before": before, "after": after, "trimmed": trimmed, "kept": len(kept)}))
    """
)


def test_trim_gives_freed_heap_memory_back() -> None:
    """~330 MB of 2-2.5 KB blocks, one in 25 kept: glibc keeps the freed ones resident
    (the kept blocks pin the heap) until `trim()`, which returns most of them."""
    out = subprocess.run([sys.executable, "-c", FRAGMENT], capture_output=True, text=True, check=True, timeout=120)
    doc = __import__("json").loads(out.stdout)
    assert doc["trimmed"] is True
    assert doc["before"] - doc["after"] > 150 * 2**20, doc


async def test_the_worker_loop_trims_every_interval_and_stops_with_the_worker(monkeypatch: Any) -> None:
    calls: list[float] = []
    monkeypatch.setattr(memory, "trim", lambda: calls.append(time.monotonic()) or True)
    stop = asyncio.Event()
    task = asyncio.create_task(memory.keep_trimmed(stop, 0.05))
    await asyncio.sleep(0.4)
    stop.set()
    await asyncio.wait_for(task, 2)
    assert len(calls) >= 3
    settled = len(calls)
    await asyncio.sleep(0.15)
    assert len(calls) == settled


async def test_zero_turns_it_off(monkeypatch: Any) -> None:
    monkeypatch.setattr(memory, "trim", lambda: pytest.fail("trimmed although turned off"))
    await asyncio.wait_for(memory.keep_trimmed(asyncio.Event(), 0), 1)
    monkeypatch.setenv("APEX_TEMPORAL_MEMORY_TRIM_SECONDS", "0")
    assert TemporalSettings().memory_trim_seconds == 0
    monkeypatch.setenv("APEX_TEMPORAL_MEMORY_TRIM_SECONDS", "-1")
    with pytest.raises(ValueError, match="memory_trim_seconds"):
        TemporalSettings()
