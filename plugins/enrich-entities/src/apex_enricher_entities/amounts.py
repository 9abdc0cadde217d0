"""Money amounts: currency codes and symbols, and the `USD 1234.50` key."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


#: ISO 4217 codes recognised in text (before or after a number).
CODES: frozenset[str] = _words(
    "USD CAD MXN EUR GBP CHF JPY CNY AUD NZD SEK NOK DKK PLN CZK HUF INR BRL ZAR SGD HKD KRW"
)

#: Symbols with one clear meaning here. '$' alone is read as USD (this is a US freight
#: platform); '¥' (yen or yuan) and 'R$'-style symbols that are not listed are ignored.
SYMBOLS: dict[str, str] = {
    "US$": "USD",
    "$": "USD",
    "CA$": "CAD",
    "C$": "CAD",
    "MX$": "MXN",
    "AU$": "AUD",
    "A$": "AUD",
    "NZ$": "NZD",
    "€": "EUR",
    "£": "GBP",
}

_ZERO_DECIMALS = frozenset({"JPY", "KRW"})
# Currencies written with a decimal comma, where "1.234" is ambiguous.
_DECIMAL_COMMA = frozenset({"EUR", "BRL", "PLN", "CZK", "DKK", "SEK", "NOK", "CHF", "HUF"})


def parse_number(text: str, currency: str) -> Decimal | None:
    """The value of a number as written in text: '1,234.50', '1.234,50', '1234', '12,50'."""
    if "," in text and "." in text:
        if (text.rfind(",") > text.rfind(".")) != (currency in _DECIMAL_COMMA):
            return None  # "$1.234,50" or "€1,234.50": the writer's convention is not the currency's
        decimal_comma = text.rfind(",") > text.rfind(".")  # 1.234,50 rather than 1,234.50
        text = text.replace(".", "").replace(",", ".") if decimal_comma else text.replace(",", "")
    elif "," in text:
        head, _, tail = text.rpartition(",")
        if len(tail) == 2 and head.count(",") == 0 and currency in _DECIMAL_COMMA:  # 12,50
            text = f"{head}.{tail}"
        elif len(tail) == 3:  # 1,234 or 1,234,567
            text = text.replace(",", "")
        else:
            return None
    elif "." in text:
        _, _, tail = text.rpartition(".")
        if text.count(".") > 1:  # 1.234.567 (thousands dots, no decimals)
            if currency not in _DECIMAL_COMMA or any(len(g) != 3 for g in text.split(".")[1:]):
                return None
            text = text.replace(".", "")
        elif len(tail) == 3 and currency in _DECIMAL_COMMA:
            return None  # "€1.234": a thousand or one point two? Left out.
    try:
        return Decimal(text)
    except InvalidOperation:
        return None


def amount_key(currency: str, value: Decimal) -> str:
    """`USD 1234.50`: the code, a space, the value with at least the currency's minor digits."""
    places = 0 if currency in _ZERO_DECIMALS else 2
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and -exponent < places:
        value = value.quantize(Decimal(1).scaleb(-places))
    if value == 0:
        value = abs(value)
    return f"{currency} {value:f}"


def from_number(value: object, currency: str) -> str | None:
    """Key of an amount given as a JSON number or numeric string in attributes."""
    if isinstance(value, bool) or currency not in CODES:
        return None
    if isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return None
        number = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            return None
        if not number.is_finite():
            return None
    else:
        return None
    if abs(number) >= Decimal(10) ** 15:
        return None
    return amount_key(currency, number)
