"""The unit payload `envelope.py` builds, read back (and checked) on the parse side.

The payload crosses Temporal as JSON, so `parse` trusts nothing in it: anything out of
shape is a `PayloadError` naming what is wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from apex_platform.errors import PayloadError


class Seg:
    """One segment of a set: `values[0]` is the id, then elements (a composite is a list)."""

    __slots__ = ("values",)

    def __init__(self, values: list[str | list[str]]) -> None:
        self.values = values

    @property
    def id(self) -> str:
        first = self.values[0]
        return first if isinstance(first, str) else ""

    def el(self, index: int) -> str:
        """Element `index` (1-based), whitespace-trimmed; a composite gives its first component."""
        if index >= len(self.values) or index < 1:
            return ""
        value = self.values[index]
        if isinstance(value, list):
            return value[0].strip() if value else ""
        return value.strip()

    def components(self, index: int) -> list[str]:
        if index >= len(self.values) or index < 1:
            return []
        value = self.values[index]
        return [c.strip() for c in value] if isinstance(value, list) else [value.strip()]

    def __repr__(self) -> str:
        return f"Seg({self.values!r})"


@dataclass(frozen=True)
class SetPayload:
    interchange: Mapping[str, str]
    group: Mapping[str, str]
    type: str
    control_number: str
    segments: list[Seg]


def _strings(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise PayloadError(f"the unit's {what} is not an object of strings")
    return dict(value)


def read_payload(payload: Any) -> SetPayload:
    if not isinstance(payload, dict):
        raise PayloadError(f"an EDI unit payload must be an object, not {type(payload).__name__}")
    raw = payload.get("segments")
    if not isinstance(raw, list) or not raw:
        raise PayloadError("the unit has no segments")
    segments: list[Seg] = []
    for n, values in enumerate(raw, 1):
        if not isinstance(values, list) or not values or not isinstance(values[0], str):
            raise PayloadError(f"segment {n} of the unit is not a list of elements")
        for value in values:
            if not isinstance(value, str) and not (isinstance(value, list) and all(isinstance(c, str) for c in value)):
                raise PayloadError(f"segment {n} ({values[0][:10]}) has an element that is not text")
        segments.append(Seg(values))
    info = _strings(payload.get("set"), "set")
    return SetPayload(
        interchange=_strings(payload.get("interchange"), "interchange"),
        group=_strings(payload.get("group"), "group"),
        type=info.get("type") or segments[0].el(1),
        control_number=info.get("control_number") or segments[0].el(2),
        segments=segments,
    )
