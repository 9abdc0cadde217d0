"""A test plugin (loaded by the chaos run's workers with APEX_PLUGIN_MODULES) that adds a
sink named `flaky` whose behaviour a control file sets while the run goes on:

    {"mode": "ok"}                               every call succeeds
    {"mode": "fail", "p": 0.4}                   a share of writes and restores raise (transient)
    {"mode": "slow", "delay": 2.5}               every write and restore first waits
    {"mode": "fail_after_write", "p": 0.3}       a share of writes store, then raise

It keeps its records in memory (each worker its own): it stands for a store that fails
intermittently or slowly, so that the saga compensates the real stores (PostgreSQL, Redis,
the graph) and retries under load. The verdict checks the real stores only.

It keeps the `MAX_ROWS` keys written last and forgets older ones, as a cache that evicts
does: a forgotten key the saga meets again is read-repaired like a store that lost its
data. Unbounded, it held every record a worker ever wrote — about 17 KB each with its
embedding — and was the workers' memory growth of the soak (seed 4004: 151 → 2,288 MB).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import apex_platform
from apex_platform.contracts import Previous
from apex_platform.errors import SinkError
from apex_platform.models import Record, RecordKey
from apex_platform.testing.sinks import MemorySink

CONTROL_ENV = "APEX_CHAOS_FLAKY_FILE"


#: keys the flaky sink keeps: one saga call's worth (1,000 records). At 5,000 it was the
#: soak's one-time step of worker RSS (seed 4006: 159 -> 278-298 MB while it filled)
MAX_ROWS = 1_000


class FlakySink(MemorySink):
    def __init__(self, max_rows: int = MAX_ROWS) -> None:
        super().__init__("flaky")
        self.max_rows = max_rows
        self.control = Path(os.environ.get(CONTROL_ENV, "/nonexistent"))
        self._stamp: float | None = None
        self._mode: dict[str, Any] = {"mode": "ok"}
        self._rng = random.Random(os.getpid())

    def _current(self) -> dict[str, Any]:
        try:
            stamp = self.control.stat().st_mtime
        except OSError:
            return {"mode": "ok"}
        if stamp != self._stamp:
            try:
                self._mode = json.loads(self.control.read_text())
                self._stamp = stamp
            except (OSError, ValueError):
                pass  # half-written: keep the last mode, read it again next call
        return self._mode

    async def _misbehave(self, what: str) -> bool:
        """Wait or raise as the control file says; True: fail after doing the work."""
        mode = self._current()
        kind = mode.get("mode", "ok")
        if kind == "slow":
            await asyncio.sleep(float(mode.get("delay", 1.0)))
        elif kind == "fail" and self._rng.random() < float(mode.get("p", 0.5)):
            raise SinkError(f"flaky: injected intermittent {what} failure")
        elif kind == "fail_after_write" and what == "write" and self._rng.random() < float(mode.get("p", 0.5)):
            return True
        return False

    def _forget_oldest(self) -> None:
        """Drop the keys written longest ago beyond `max_rows` (rows are kept in write order)."""
        excess = len(self.rows) - self.max_rows
        if excess > 0:
            for key in list(itertools.islice(self.rows, excess)):
                del self.rows[key]
                self.tokens.pop(key, None)

    async def write(self, records: Sequence[Record], *, writer: str | None = None) -> Previous:
        after = await self._misbehave("write")
        for record in records:  # written again: the newest of all, the last to be forgotten
            if (row := self.rows.pop(record.key, None)) is not None:
                self.rows[record.key] = row
        changed = await super().write(records, writer=writer)
        self._forget_oldest()
        if after:
            raise SinkError("flaky: injected failure after the write")
        return changed

    async def restore(self, previous: Mapping[RecordKey, Record | None], *, writer: str | None = None) -> None:
        await self._misbehave("restore")
        await super().restore(previous, writer=writer)
        self._forget_oldest()


@apex_platform.hookimpl
def apex_register_sinks(register):  # type: ignore[no-untyped-def]
    register(FlakySink())
