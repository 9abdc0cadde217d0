"""Phone numbers: a conservative shape check, then E.164 when the country is known.

With the optional `phonenumbers` package (extra `[phone]`) every candidate is parsed and
validated for its region and formatted as E.164. Without it, North American numbers
(+1, NANP rules) and numbers written with an explicit `+country code` become E.164;
anything else is dropped rather than guessed.
"""

from __future__ import annotations

from functools import lru_cache
from types import ModuleType


@lru_cache(maxsize=1)
def _library() -> ModuleType | None:
    try:
        import phonenumbers
    except ImportError:
        return None
    return phonenumbers


def has_library() -> bool:
    """Whether `phonenumbers` is installed (normalisation then covers every country)."""
    return _library() is not None


def _nanp(digits: str) -> str | None:
    if len(digits) == 11 and digits[0] == "1":
        digits = digits[1:]
    if len(digits) != 10:
        return None
    # Area code and exchange never start with 0 or 1; N11 area codes are service codes.
    if digits[0] in "01" or digits[3] in "01" or digits[1:3] == "11":
        return None
    return "+1" + digits


@lru_cache(maxsize=8192)
def normalize(raw: str, region: str = "US", *, use_library: bool = True) -> str | None:
    """E.164 form of a phone number written in `raw`, or None when it is not one.

    `region` is the country assumed for numbers written without `+`. Cached: parsing
    with `phonenumbers` costs far more than finding the candidate.
    """
    explicit = raw.lstrip().startswith("+")
    digits = "".join(c for c in raw if c.isdigit())
    if not 7 <= len(digits) <= 15:
        return None
    library = _library() if use_library else None
    if library is not None:
        try:
            parsed = library.parse(raw, None if explicit else region)
        except library.NumberParseException:
            return None
        if not library.is_valid_number(parsed):
            return None
        return str(library.format_number(parsed, library.PhoneNumberFormat.E164))
    if explicit:
        if digits[0] == "1":
            return _nanp(digits)
        return "+" + digits if 8 <= len(digits) <= 15 and digits[0] != "0" else None
    if region in ("US", "CA"):
        return _nanp(digits)
    return None
