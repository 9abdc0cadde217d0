"""Giving freed memory back to the operating system (glibc's `malloc_trim`).

A worker allocates and frees large blocks all the time: batches of multi-KB bodies, their
records, the stores' requests and answers. Blocks above pymalloc's 512 bytes come from
glibc's heap, which keeps what was freed for the next allocation and returns only the
top of the heap. Under a steady load the freed space is scattered, so a worker's RSS
creeps up for tens of minutes towards the high-water mark of its batches, although it
holds no more objects: in soak seed 4014 a worker rose from 204 to 244 MB over 7 minutes
and one `malloc_trim(0)` gave 40 MB back at once (`docs/reliability.md`, finding 15).

As Dask's workers do, the worker trims periodically (`APEX_TEMPORAL_MEMORY_TRIM_SECONDS`,
30 s by default, 0 to turn it off). Elsewhere than glibc (musl, macOS) it does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
from functools import cache
from typing import Any

log = logging.getLogger(__name__)


@cache
def _malloc_trim() -> Any | None:
    """glibc's `malloc_trim`, or None where there is none."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def available() -> bool:
    return _malloc_trim() is not None


def trim() -> bool:
    """Return freed heap memory to the operating system; True if any was returned (False
    also where glibc's `malloc_trim` does not exist)."""
    fn = _malloc_trim()
    return bool(fn(0)) if fn is not None else False


async def keep_trimmed(stop: asyncio.Event, interval: float) -> None:
    """`trim()` every `interval` seconds (in a thread: it walks the heap) until `stop` is set."""
    if interval <= 0 or not available():
        return
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
            return
        try:
            await asyncio.to_thread(trim)
        except Exception as exc:  # noqa: BLE001 - an optimisation only
            log.warning("malloc_trim failed (%s); not trimming any more", exc)
            return
