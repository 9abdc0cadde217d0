"""A test plugin (loaded with APEX_PLUGIN_MODULES) whose sink blocks inside `write` until
a release file exists, and tells the test it got there by writing a marker file.

It lets a chaos test kill a worker in the middle of a saga write, deterministically."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import apex_platform
from apex_platform.models import Record, RecordKey


class GateSink:
    name = "gate"

    def __init__(self) -> None:
        self.dir = Path(os.environ["APEX_TEST_GATE_DIR"])
        self.rows: dict[RecordKey, Record] = {}

    async def open(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)

    async def close(self) -> None:
        return None

    async def health(self) -> None:
        return None

    async def write(self, records: Sequence[Record]) -> None:
        (self.dir / f"entered-{os.getpid()}").write_text(",".join(r.id for r in records))
        while not (self.dir / "release").exists():
            await asyncio.sleep(0.05)
        for r in records:
            self.rows[r.key] = r

    async def read(self, keys: Sequence[RecordKey]) -> dict[RecordKey, Record]:
        return {k: self.rows[k] for k in keys if k in self.rows}

    async def restore(self, previous: Mapping[RecordKey, Record | None]) -> None:
        for key, record in previous.items():
            if record is None:
                self.rows.pop(key, None)
            else:
                self.rows[key] = record


@apex_platform.hookimpl
def apex_register_sinks(register):  # type: ignore[no-untyped-def]
    register(GateSink())
