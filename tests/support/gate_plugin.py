"""A test plugin (loaded with APEX_PLUGIN_MODULES) whose sink blocks inside `write` until
a release file exists, and tells the test it got there by writing a marker file.

It lets a chaos test kill a worker in the middle of a saga write, deterministically."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from pathlib import Path

import apex_platform
from apex_platform.contracts import Previous
from apex_platform.models import Record
from apex_platform.testing.sinks import MemorySink


class GateSink(MemorySink):
    def __init__(self) -> None:
        super().__init__("gate")
        self.dir = Path(os.environ["APEX_TEST_GATE_DIR"])

    async def open(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)

    async def write(self, records: Sequence[Record], *, writer: str | None = None) -> Previous:
        (self.dir / f"entered-{os.getpid()}").write_text(",".join(r.id for r in records))
        stubborn = os.environ.get("APEX_TEST_GATE_IGNORE_CANCEL") == "1"  # a sink that ignores cancellation
        while not (self.dir / "release").exists():
            try:
                await asyncio.sleep(0.05)
            except asyncio.CancelledError:
                if not stubborn:
                    raise
        return await super().write(records, writer=writer)


@apex_platform.hookimpl
def apex_register_sinks(register):  # type: ignore[no-untyped-def]
    register(GateSink())
