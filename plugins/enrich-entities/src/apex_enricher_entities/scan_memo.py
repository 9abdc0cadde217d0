"""The text scan of many short strings, each string's findings remembered.

A source's records repeat most of their attribute strings (statuses, times, names,
addresses, a route shared by every stop event), so each string is scanned once per
enricher and what the scan added is replayed after. The result is exactly the scan of
the strings joined by blank lines (which no pattern crosses: none matches two line
breaks in a row, and every look-around treats a line break as it treats the end of a
string): the scan runs its patterns one after the other over the whole text, so the
findings are replayed in the same order — pattern by pattern, and within a pattern
string by string.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from apex_enricher_entities import text
from apex_enricher_entities.found import Found

#: Only strings this short are remembered, and at most this many per enricher (the least
#: recently used go first). An entry takes ~0.5 KB, so the memo stays under ~5 MB.
MAX_CHARS = 512
MAX_ENTRIES = 8_192

#: (pattern number, ("add", type, key, properties) | ("relate", src, type, dst))
Call = tuple[int, tuple[Any, ...]]


class Memo:
    """The scans of strings seen, least recently used first out.

    Strings that come back (statuses, names, addresses, a route shared by every stop
    event) stay; those that never do (a feed point's time, its speed in its text) pass
    through. The earlier memo of 32,768 strings emptied when full: on a worker reading
    Samsara's feed it took ~25 minutes of a soak at 4x to fill, 20-28 MB that looked like
    a leak to the soak's verdict (`docs/reliability.md`, finding 14)."""

    def __init__(self) -> None:
        self._scans: OrderedDict[str, tuple[Call, ...]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._scans)

    def __iter__(self) -> Iterator[str]:
        return iter(self._scans)

    def get(self, string: str) -> tuple[Call, ...] | None:
        known = self._scans.get(string)
        if known is not None:
            self._scans.move_to_end(string)
        return known

    def remember(self, string: str, calls: tuple[Call, ...]) -> None:
        if len(string) > MAX_CHARS:
            return
        self._scans[string] = calls
        if len(self._scans) > MAX_ENTRIES:
            self._scans.popitem(last=False)


class Recorder(Found):
    """Stands in for `Found` during one string's scan and keeps its calls, in order."""

    def __init__(self, enabled: frozenset[str]) -> None:
        super().__init__(enabled)
        self.calls: list[Call] = []
        self._step = 0

    def step(self, step: int) -> None:
        self._step = step

    def add(self, type_: str, key: str, **properties: Any) -> str | None:
        self.calls.append((self._step, ("add", type_, key, properties)))
        return self.ref(type_, key)

    def relate(self, src: str | None, type_: str, dst: str | None) -> None:
        self.calls.append((self._step, ("relate", src, type_, dst)))


def scan_strings(strings: list[str], found: Found, region: str, memo: Memo) -> None:
    """`text.scan("\\n\\n".join(strings), found, region)`, from `memo` where it can."""
    calls: list[Call] = []
    for string in strings:
        if not string:
            continue
        known = memo.get(string)
        if known is None:
            recorder = Recorder(found.enabled)
            text.scan(string, recorder, region)
            known = tuple(recorder.calls)
            memo.remember(string, known)
        calls.extend(known)
    calls.sort(key=_pattern)  # stable: string by string within a pattern
    for _, call in calls:
        if call[0] == "add":
            found.add(call[1], call[2], **call[3])
        else:
            found.relate(call[1], call[2], call[3])


def _pattern(call: Call) -> int:
    return call[0]
