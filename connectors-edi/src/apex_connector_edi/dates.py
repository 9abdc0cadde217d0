"""X12 dates, times and time codes (element 623) to aware UTC datetimes and versions.

| code | meaning | offset |
|---|---|---|
| UT, GM | universal / Greenwich time | UTC |
| ES / ED | Eastern standard / daylight | -05:00 / -04:00 |
| CS / CD | Central standard / daylight | -06:00 / -05:00 |
| MS / MD | Mountain standard / daylight | -07:00 / -06:00 |
| PS / PD | Pacific standard / daylight | -08:00 / -07:00 |
| AS / AD | Alaska standard / daylight | -09:00 / -08:00 |
| HS / HD | Hawaii-Aleutian standard / daylight | -10:00 / -09:00 |
| TS / TD | Atlantic standard / daylight | -04:00 / -03:00 |
| NS / ND | Newfoundland standard / daylight | -03:30 / -02:30 |
| ET, CT, MT, PT | Eastern, Central, Mountain, Pacific time | the zone's offset on that date |
| AT, HT, TT, NT | Alaska, Hawaii-Aleutian, Atlantic, Newfoundland time | the zone's offset on that date |
| 01 … 12 | "equivalent to ISO P01 … P12" | +01:00 … +12:00 |
| 13 … 24 | "equivalent to ISO M12 … M01" | -12:00 … -01:00 |
| LT, absent, unknown | local time, offset not sent | unknown: the record says so (`utc_offset: "unknown"`) |

X12 says an absent time code means local time ("If AT707 is not present then AT706
represents local time of the status"), so LT and no code are the same: the offset is
not known, and no offset is made up for it.

The generic codes use the IANA zones America/New_York, America/Chicago, America/Denver,
America/Los_Angeles, America/Anchorage, Pacific/Honolulu, America/Halifax and
America/St_Johns (so daylight saving time applies by date; Arizona's MT is off by an
hour in summer), or their standard offsets where no tz database is installed.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_FIXED_HOURS: dict[str, float] = {
    "UT": 0, "GM": 0,
    "ES": -5, "ED": -4, "CS": -6, "CD": -5, "MS": -7, "MD": -6, "PS": -8, "PD": -7,
    "AS": -9, "AD": -8, "HS": -10, "HD": -9, "TS": -4, "TD": -3, "NS": -3.5, "ND": -2.5,
    # element 623's numeric codes: 01-12 = ISO P01-P12, 13-24 = ISO M12-M01
    **{f"{n:02d}": n for n in range(1, 13)},
    **{f"{n:02d}": n - 25 for n in range(13, 25)},
}  # fmt: skip
#: generic zone codes: the IANA zone, and its standard offset if the tz database is missing
_ZONES: dict[str, tuple[str, float]] = {
    "ET": ("America/New_York", -5),
    "CT": ("America/Chicago", -6),
    "MT": ("America/Denver", -7),
    "PT": ("America/Los_Angeles", -8),
    "AT": ("America/Anchorage", -9),
    "HT": ("Pacific/Honolulu", -10),
    "TT": ("America/Halifax", -4),
    "NT": ("America/St_Johns", -3.5),
}
#: not X12 codes (element 623 has two characters) but sent by some carriers, and
#: unambiguous: read as the X12 code they spell (AST/ADT are left out: Alaska or Atlantic?)
ALIASES: dict[str, str] = {
    "EST": "ES", "EDT": "ED", "CST": "CS", "CDT": "CD", "MST": "MS", "MDT": "MD", "PST": "PS", "PDT": "PD",
    "AKST": "AS", "AKDT": "AD", "HST": "HS", "UTC": "UT", "GMT": "GM",
}  # fmt: skip


def zone(code: str) -> tzinfo | None:
    """The zone of an X12 time code (or of an alias above); None when unknown (LT,
    absent, anything else)."""
    code = code.strip().upper()
    code = ALIASES.get(code, code)
    if code in _FIXED_HOURS:
        return timezone(timedelta(hours=_FIXED_HOURS[code]))
    if code in _ZONES:
        name, standard = _ZONES[code]
        try:
            return ZoneInfo(name)
        except ZoneInfoNotFoundError:  # no tz database on this machine: standard time
            return timezone(timedelta(hours=standard))
    return None


def parse_date(value: str, century: str = "") -> date | None:
    """CCYYMMDD, or YYMMDD with its century element (AT7-06, G62-06 before 004010), or
    YYMMDD alone (00-49 → 20xx, 50-99 → 19xx); None when not a date."""
    value = value.strip()
    century = century.strip()
    if not value.isdigit():
        return None
    if len(value) == 6:
        if len(century) == 2 and century.isdigit():
            value = century + value
        else:
            yy = int(value[:2])
            value = f"{2000 + yy if yy < 50 else 1900 + yy}{value[2:]}"
    if len(value) != 8:
        return None
    try:
        return date(int(value[:4]), int(value[4:6]), int(value[6:8]))
    except ValueError:
        return None


def parse_time(value: str) -> time | None:
    """HHMM, HHMMSS, HHMMSSD, HHMMSSDD; None when absent or not a time."""
    value = value.strip()
    if not value.isdigit() or len(value) not in (4, 6, 7, 8):
        return None
    try:
        hour, minute = int(value[:2]), int(value[2:4])
        second = int(value[4:6]) if len(value) >= 6 else 0
        fraction = value[6:]
        micro = int(fraction.ljust(6, "0")) if fraction else 0
        if hour == 24 and minute == 0 and second == 0:
            return time(23, 59, 59, 999_999)  # "end of day" some carriers send
        return time(hour, minute, second, micro)
    except ValueError:
        return None


def is_time(value: str) -> bool:
    return parse_time(value) is not None


def to_utc(day: date, at: time | None, code: str) -> tuple[datetime, bool]:
    """The UTC instant of a local date and time; True when the offset is not known (LT,
    no code, an unknown code): the instant is then the local wall clock read as UTC, for
    ordering only, and the caller must say so."""
    tz = zone(code)
    local = datetime.combine(day, at or time(0, 0))
    if tz is None:
        return local.replace(tzinfo=UTC), True
    return local.replace(tzinfo=tz).astimezone(UTC), False


def micros(moment: datetime) -> int:
    """Microseconds since 1970 (never negative: versions are >= 0)."""
    delta = moment - EPOCH
    return max(0, (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds)
