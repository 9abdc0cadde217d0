"""Vehicle identification numbers (ISO 3779 / 49 CFR 565) and their check digit."""

from __future__ import annotations

_VALUES = {
    **{str(d): d for d in range(10)},
    **dict(zip("ABCDEFGH", range(1, 9), strict=True)),
    **dict(zip("JKLMN", range(1, 6), strict=True)),
    "P": 7,
    "R": 9,
    **dict(zip("STUVWXYZ", range(2, 10), strict=True)),
}
_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)


def check_digit(vin: str) -> str | None:
    """The check digit ('0'-'9' or 'X') a 17-character VIN must carry at position 9."""
    if len(vin) != 17:
        return None
    total = 0
    for char, weight in zip(vin, _WEIGHTS, strict=True):
        value = _VALUES.get(char)
        if value is None:
            return None
        total += value * weight
    rest = total % 11
    return "X" if rest == 10 else str(rest)


def is_vin(candidate: str) -> bool:
    """A 17-character upper-case VIN with a letter, a digit and a valid check digit.

    Requiring the check digit leaves out most European VINs (which need not carry one):
    a false vehicle pollutes the graph more than a missed one.
    """
    if len(candidate) != 17 or not candidate.isascii():
        return False
    if not any(c.isalpha() for c in candidate) or not any(c.isdigit() for c in candidate):
        return False
    return check_digit(candidate) == candidate[8]
