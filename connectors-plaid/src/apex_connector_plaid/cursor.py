"""The poll cursor: Plaid's opaque sync cursor plus the highest record version issued.

Plaid gives transactions no version, so `poll` stamps every record of a page with the
time it read the page, in microseconds. Clocks of different workers disagree a little;
carrying the last version issued inside the cursor keeps versions strictly increasing
along the cursor chain whichever worker reads the next page:
`version = max(now_us, floor + 1)`.

Format `apex1:<floor>:<plaid cursor>`. An empty Plaid cursor means "from the
beginning". A value without the prefix (set by hand) is taken as a bare Plaid cursor
with floor 0. Nothing secret is in it: it is kept in workflow history.
"""

from __future__ import annotations

from dataclasses import dataclass

PREFIX = "apex1"


@dataclass(frozen=True)
class SyncCursor:
    plaid: str = ""
    floor: int = 0

    @classmethod
    def decode(cls, value: str | None) -> SyncCursor:
        if not value:
            return cls()
        prefix, sep, rest = value.partition(":")
        if prefix == PREFIX and sep:
            floor, sep2, plaid = rest.partition(":")
            if sep2 and floor.isdigit() and len(floor) <= 20:
                return cls(plaid=plaid, floor=int(floor))
        return cls(plaid=value)

    def encode(self) -> str:
        return f"{PREFIX}:{self.floor}:{self.plaid}"

    def next_version(self, now_us: int) -> int:
        return max(now_us, self.floor + 1)
