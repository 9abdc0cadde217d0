"""A test plugin (loaded by the chaos run's workers with APEX_PLUGIN_MODULES) that adds a
sink named `flaky` whose behaviour a control file sets while the run goes on:

    {"mode": "ok"}                               every call succeeds
    {"mode": "fail", "p": 0.4}                   a share of writes and restores raise (transient)
    {"mode": "slow", "delay": 2.5}               every write and restore first waits
    {"mode": "fail_after_write", "p": 0.3}       a share of writes store, then raise

It keeps its records in memory (each worker its own): it stands for a store that fails
intermittently or slowly, so that the saga compensates the real stores (PostgreSQL, Redis,
the graph) and retries under load. The verdict checks the real stores only.
"""

from __future__ import annotations

import asyncio
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


class FlakySink(MemorySink):
    def __init__(self) -> None:
        super().__init__("flaky")
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

    async def write(self, records: Sequence[Record], *, writer: str | None = None) -> Previous:
        after = await self._misbehave("write")
        changed = await super().write(records, writer=writer)
        if after:
            raise SinkError("flaky: injected failure after the write")
        return changed

    async def restore(self, previous: Mapping[RecordKey, Record | None], *, writer: str | None = None) -> None:
        await self._misbehave("restore")
        await super().restore(previous, writer=writer)


@apex_platform.hookimpl
def apex_register_sinks(register):  # type: ignore[no-untyped-def]
    register(FlakySink())
