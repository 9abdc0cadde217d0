"""The names of every Redis key the sink writes, all under one prefix."""

from __future__ import annotations

from dataclasses import dataclass

from apex_platform.models import RecordKey


@dataclass(frozen=True, slots=True)
class KeySpace:
    """`{prefix}:rec:{source}:{id}` records, `{prefix}:lock:{source}:{id}` locks,
    `{prefix}:done:{idempotency key}` the commit ledger.

    A source never contains a colon (`Record.source` is `[a-z][a-z0-9_-]*`), so the
    first colon after `rec:` ends the source and the id may contain anything.
    """

    prefix: str

    def record(self, key: RecordKey) -> str:
        return f"{self.prefix}:rec:{key.source}:{key.id}"

    def lock(self, key: RecordKey) -> str:
        return f"{self.prefix}:lock:{key.source}:{key.id}"

    def committed(self, idempotency_key: str) -> str:
        return f"{self.prefix}:done:{idempotency_key}"
