"""What one record's scan found: entities merged by (type, key), relations deduplicated."""

from __future__ import annotations

from typing import Any

#: Entity.key allows 512 characters; anything longer than this is not a name we trust.
MAX_KEY_CHARS = 200


class Found:
    """Entities and relations collected for one record, in the order they were first seen.

    Only types in `enabled` are kept; the first properties seen for a key win, later
    ones only add missing fields (so the result does not depend on dict iteration luck).
    """

    def __init__(self, enabled: frozenset[str]) -> None:
        self.enabled = enabled
        self.entities: dict[tuple[str, str], dict[str, Any]] = {}
        self.relations: dict[tuple[str, str, str], None] = {}

    def wants(self, type_: str) -> bool:
        return type_ in self.enabled

    def step(self, step: int) -> None:
        """The text scan starts its pattern number `step` (read by `scan_memo.Recorder`)."""

    def ref(self, type_: str, key: str) -> str | None:
        """The `Type:key` reference `add` returns, or None when it would skip the entity."""
        if type_ not in self.enabled or not key or len(key) > MAX_KEY_CHARS:
            return None
        return f"{type_}:{key}"

    def add(self, type_: str, key: str, **properties: Any) -> str | None:
        """Add an entity; return its `Type:key` reference, or None when skipped."""
        if type_ not in self.enabled or not key or len(key) > MAX_KEY_CHARS:
            return None
        props = self.entities.setdefault((type_, key), {})
        for name, value in properties.items():
            if value is not None and value != "":
                props.setdefault(name, value)
        return f"{type_}:{key}"

    def relate(self, src: str | None, type_: str, dst: str | None) -> None:
        if src is not None and dst is not None and src != dst:
            self.relations.setdefault((src, type_, dst), None)
