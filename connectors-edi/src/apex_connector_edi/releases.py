"""X12 releases (GS08) and the layout each gives the elements this connector reads.

The rule: every set is read with the layouts of its own functional group's release
(GS08, e.g. `003070`, `004010VICS`). What changes between the releases carriers send,
for the segments read here (from the per-release segment dictionaries of the
bots-edi/bots-grammars project, `x12/<release>/records00<release>.py`):

| segment | before 004010 | 004010 on |
|---|---|---|
| AT7 (214) | none before 003070; 003070: 05 YYMMDD, 06 century, 07 time, 08 time code | 05 CCYYMMDD, 06 time, 07 code |
| Q5 (214 status, 003040-003060) | 02 date YYMMDD, 03 time, 04 time code | 02 date CCYYMMDD (same places) |
| MS1 | 003070: no direction elements (MS1-06/07 came with 004010) | 06 E/W, 07 N/S; 004030: 08 zip |
| B3 (210) | 06, 09, 12 dates YYMMDD (no century element) | CCYYMMDD |
| G62 | 02 date YYMMDD, 06 century | 02 date CCYYMMDD |
| B10, L11, N9, R3, MS3, L0, L1, L3 | same positions in every release (elements are appended) | |

A group whose GS08 is not a release this module knows (not six digits, or before
003040) is read by the shape of each segment (`status._at7_fits`) and its records say so
(`envelope.release_note`); a segment whose shape contradicts its release (a 003070
AT7 in a group that says 004010) is read with the layout it fits and the record
says which (`status.layout_note`). Nothing is read with a layout it does not fit
without the record saying so.
"""

from __future__ import annotations

from dataclasses import dataclass

#: the earliest release whose layouts were checked (bots-grammars starts at 003040)
FIRST_KNOWN = 3040
#: releases from 004010 on use CCYYMMDD dates; later releases (005030 was the last checked,
#: 008010's AT7 and 008050's MS1 were checked in the published dictionaries) keep them
FULL_DATES_FROM = 4010


@dataclass(frozen=True)
class At7Layout:
    """Where AT7's date, century, time and time code are (1-based), and the date's digits."""

    name: str
    date: int
    century: int | None
    time: int
    zone: int
    date_digits: int


#: 003070: AT7-05 YYMMDD, AT7-06 century, AT7-07 time, AT7-08 time code
AT7_003070 = At7Layout("003070", date=5, century=6, time=7, zone=8, date_digits=6)
#: 004010 and later: AT7-05 CCYYMMDD, AT7-06 time, AT7-07 time code
AT7_004010 = At7Layout("004010", date=5, century=None, time=6, zone=7, date_digits=8)


@dataclass(frozen=True)
class Release:
    """A functional group's release, read from GS08 (version, release, industry id)."""

    gs08: str
    #: 3070 for "003070", 4010 for "004010VICS"; None when GS08 is not a release code
    number: int | None
    #: what follows the six digits (an industry identifier such as VICS or UCS)
    industry: str = ""

    @classmethod
    def of(cls, gs08: str) -> Release:
        text = gs08.strip()
        head = text[:6]
        if len(head) == 6 and head.isdigit() and int(head) > 0:
            return cls(gs08=text, number=int(head), industry=text[6:].strip())
        return cls(gs08=text, number=None)

    @property
    def known(self) -> bool:
        return self.number is not None and self.number >= FIRST_KNOWN

    @property
    def full_dates(self) -> bool | None:
        """True: CCYYMMDD dates (004010 on); False: YYMMDD (before); None: not known."""
        if not self.known or self.number is None:
            return None
        return self.number >= FULL_DATES_FROM

    @property
    def date_digits(self) -> int | None:
        full = self.full_dates
        return None if full is None else 8 if full else 6

    @property
    def at7(self) -> At7Layout | None:
        """The AT7 layout of this release; None when the release has no AT7 (before
        003070) or is not known."""
        if not self.known or self.number is None or self.number < 3070:
            return None
        return AT7_003070 if self.number < FULL_DATES_FROM else AT7_004010

    @property
    def ms1_directions(self) -> bool | None:
        """Whether MS1 has its E/W and N/S elements (MS1-06/07, from 004010)."""
        return self.full_dates

    def note(self) -> str | None:
        """What a record should say about this release, when it is not one the layouts know."""
        if self.known:
            return None
        if self.number is None:
            shown = repr(self.gs08) if self.gs08 else "empty"
            return f"GS08 {shown} is not an X12 release code; each segment was read by the layout its data fits"
        return (
            f"release {self.gs08} is older than the earliest release whose layouts are known "
            f"({FIRST_KNOWN:06d}); each segment was read by the layout its data fits"
        )


def label(number: int) -> str:
    return f"{number:06d}"
