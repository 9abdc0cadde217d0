"""Entities in free text: compiled patterns, each a linear scan.

Every repeat in these patterns is bounded and every pattern starts at a token boundary
(a negative look-behind), so a hostile input (a long run of digits, dashes, spaces or
'@') costs each pattern a bounded amount of work per character: no catastrophic
backtracking, no quadratic scans.
"""

from __future__ import annotations

import re

from apex_enricher_entities import amounts, names, phones, places, vin
from apex_enricher_entities.found import Found

# -- emails -----------------------------------------------------------------------------------

_EMAIL_BODY = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,64}(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,64}){0,8}"
_DOMAIN = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,8}[A-Za-z]{2,24}"
EMAIL_RE = re.compile(rf"(?<![A-Za-z0-9.!#$%&'*+/=?^_`{{|}}~-])({_EMAIL_BODY}@{_DOMAIN})(?![A-Za-z0-9-]|\.[A-Za-z0-9])")
EMAIL_FULL_RE = re.compile(rf"{_EMAIL_BODY}@{_DOMAIN}")

# "Ann Shipper <ann@example.com>": a name stated next to its address.
_NAME_WORD = names.NAME_WORD
NAMED_EMAIL_RE = re.compile(
    rf"(?<![\w.'-])\"?({_NAME_WORD}(?: [A-Z]\.)?(?: {_NAME_WORD}){{1,2}})\"? {{0,2}}<({_EMAIL_BODY}@{_DOMAIN})>"
)

# -- phones -----------------------------------------------------------------------------------

_SEP = r"[ .\-\u2010\u2011\u2013]"
PHONE_RE = re.compile(
    r"(?<![\w+\-.\u2010\u2011\u2013/])"
    r"("
    # North American, with separators: (404) 555-1234, 404-555-1234, +1 404.555.1234, 1-800-555-1234
    rf"(?:\+?1{_SEP}?)?(?:\(\d{{3}}\) ?|\d{{3}}{_SEP})\d{{3}}{_SEP}\d{{4}}"
    # International, always with '+': +44 20 7946 0958, +49 (0)30 1234567. Possessive
    # repeats: a long run of digits is split one way only, never re-partitioned.
    rf"|\+[1-9]\d{{0,3}}+(?:{_SEP}?\(?\d{{1,5}}+\)?){{1,6}}+"
    r")"
    r"(?![\w\-\u2010\u2011\u2013]|[.,/]\d)"
)
LABELLED_PHONE_RE = re.compile(
    r"(?<![\w])(?i:phone|tel|telephone|cell|mobile|mob|fax|ph)\.?(?: ?(?:#|no\.?))? {0,3}[:.]? {0,3}"
    r"(\+?\(?\d[\d ().\-]{5,20}\d)(?![\d\-])"
)

# -- amounts ----------------------------------------------------------------------------------

_NUMBER = (
    r"(\d{1,3}(?:,\d{3}){1,5}(?:\.\d{1,4})?"  # 1,234.50
    r"|\d{1,3}(?:\.\d{3}){1,5},\d{2}"  # 1.234,50
    r"|\d{1,15},\d{2}"  # 12,50
    r"|\d{1,15}(?:\.\d{1,4})?)"  # 1234.50
    r"(?!\d|[.,]\d)"
)
_SYMBOL = "|".join(re.escape(s) for s in sorted(amounts.SYMBOLS, key=len, reverse=True))
_CODE = "|".join(sorted(amounts.CODES))
AMOUNT_BEFORE_RE = re.compile(rf"(?<![A-Za-z0-9$€£])(?:({_SYMBOL})|({_CODE}) ?\$?) ?{_NUMBER}(?![A-Za-z])")
AMOUNT_AFTER_RE = re.compile(rf"(?<![\w.,$€£]){_NUMBER} ?(?:({_CODE})(?![A-Za-z])|(€|£))")

# -- labelled identifiers ---------------------------------------------------------------------

_MARK = r"(?P<mark> {0,3}(?:#|[Nn]o\.|[Nn]o\b|NO\b|[Nn]umber|NUMBER|[Nn]um\.|ID\b|Id\b)? {0,3}[:#]?)"
_ID = r"(?P<id>[A-Za-z0-9](?:[A-Za-z0-9-]{0,38}[A-Za-z0-9])?)(?![\w-])"
LABELLED_ID_RE = re.compile(
    r"(?<![\w/.-])(?P<label>"
    r"PRO|Pro|pro|LOAD|Load|load|SHIPMENT|Shipment|shipment|BOL|Bol|bol|B/L|BL|"
    r"Bill [Oo]f [Ll]ading|BILL OF LADING|bill of lading|PO|P\.O\.|Purchase [Oo]rder|PURCHASE ORDER|"
    r"purchase order|INVOICE|Invoice|invoice|INV|Inv|inv)(?![A-Za-z])"
    rf"{_MARK} {{0,3}}{_ID}"
)
INVOICE_TOKEN_RE = re.compile(r"(?<![\w/.-])(INV-\d[A-Z0-9-]{0,30}[A-Z0-9]|INV-\d)(?![\w-])")

#: label (lower-case) → (entity type, scheme); the scheme goes into the properties.
_LABELS: dict[str, tuple[str, str | None]] = {
    "pro": ("Shipment", "PRO"),
    "load": ("Shipment", "LOAD"),
    "shipment": ("Shipment", "SHIPMENT"),
    "bol": ("BillOfLading", None),
    "b/l": ("BillOfLading", None),
    "bl": ("BillOfLading", None),
    "bill of lading": ("BillOfLading", None),
    "po": ("PurchaseOrder", None),
    "p.o.": ("PurchaseOrder", None),
    "purchase order": ("PurchaseOrder", None),
    "invoice": ("Invoice", None),
    "inv": ("Invoice", None),
}
# Labels that are also ordinary words or too short to trust alone count only with a mark
# (#, No., number, ID, ':'); so does every all-lower-case label ("load 12 ...").
_NEEDS_MARK = frozenset({"Pro", "Shipment", "Bol", "BL", "Inv", "INV"})
# "load 1200 lbs", "PO 12 pallets", "load 10 am": quantities and times, not identifiers.
_QUANTITY_AFTER = re.compile(
    r" {0,2}(?i:lbs?|pounds?|kgs?|kilos?|pallets?|plts?|pcs|pieces?|cases?|boxes|cartons?|tons?|units?|"
    r"skids?|ft|feet|miles?|mi|am|pm|a\.m\.|p\.m\.|hrs?|hours?|mins?|minutes?|days?|%)(?![A-Za-z])"
)

# -- vehicles and carriers --------------------------------------------------------------------

VIN_RE = re.compile(r"(?<![A-Za-z0-9])([A-HJ-NPR-Z0-9]{17})(?![A-Za-z0-9])")
UNIT_RE = re.compile(
    r"(?<![\w-])(?P<label>Truck|TRUCK|truck|Tractor|TRACTOR|tractor|Unit|UNIT|unit|Trailer|TRAILER|trailer)"
    r"(?P<mark> {0,3}(?:#|[Nn]o\.|[Nn]umber|NUMBER)? {0,3}[:#]?) {0,3}"
    r"(?P<id>[A-Za-z0-9](?:[A-Za-z0-9-]{0,14}[A-Za-z0-9])?)(?![\w-])"
)
# "123 Main St Unit 4", "Suite 200, Unit 4": an address, not a truck.
_ADDRESS_BEFORE = re.compile(
    r"(?i:\b(?:st|street|ave|avenue|rd|road|blvd|dr|drive|ln|lane|way|hwy|highway|pkwy|ct|court|suite|ste|apt|"
    r"building|bldg|floor)\.?,?(?: #?\d{1,6}[A-Z]?,?)? {0,3})$"
)
DOT_RE = re.compile(
    r"(?<![\w-])(?:US ?DOT|USDOT|U\.S\. ?DOT|DOT)(?: {0,3}(?:#|[Nn]o\.|[Nn]umber|NUMBER))? {0,3}[:#]? {0,3}"
    r"(\d{5,8})(?![\w-])"
)
MC_RE = re.compile(
    r"(?<![\w-])(?:MC|ICC MC)(?: {0,3}(?:#|[Nn]o\.|[Nn]umber|NUMBER))? {0,3}[:#-]? {0,3}(\d{5,8})(?![\w-])"
)
SCAC_RE = re.compile(r"(?<![\w-])SCAC(?: {0,3}(?:[Cc]ode|CODE))? {0,3}[:#]? {0,3}([A-Z]{2,4})(?![\w-])")

# -- places -----------------------------------------------------------------------------------

_CITY_REST = r"[A-Za-z]{0,20}(?:['-][A-Za-z]{1,20}){0,2}\.?"  # of a word, after its capital
_CITY_WORD = rf"[A-Z]{_CITY_REST}"
# The look-behind comes after the city's first capital (`[A-Z](?<![\w'.-][A-Z])`, the same
# condition on the character before it): a pattern that starts with a character class lets
# the engine skip to the next capital in C instead of trying the look-behind everywhere.
PLACE_RE = re.compile(
    rf"(?P<city>[A-Z](?<![\w'.-][A-Z]){_CITY_REST}(?: {_CITY_WORD}){{0,3}})"
    r"(?:, {1,2}(?P<state>[A-Z]{2})(?: {1,2}(?P<zip>\d{5})(?:-\d{4})?)?"
    r"| (?P<state2>[A-Z]{2}) {1,2}(?P<zip2>\d{5})(?:-\d{4})?)"
    r"(?![\w-])"
)

# -- people and organisations ------------------------------------------------------------------

SIGNATURE_RE = re.compile(
    r"(?m)^[ \t]{0,8}(?i:thanks|thank you|thx|regards|best regards|kind regards|warm regards|best|"
    r"sincerely|cheers|respectfully|cordially)"
    r"(?:[ \t]{0,2}[,.!\u2014-][ \t]{0,4}(?:\r?\n[ \t]{0,8})?|[ \t]{0,4}\r?\n[ \t]{0,8})"
    rf"(?P<name>{_NAME_WORD}(?: [A-Z]\.)?(?: {_NAME_WORD}){{1,2}})[ \t]{{0,8}}\r?$"
)
_ORG_WORD = r"[A-Z][A-Za-z0-9'.&-]{0,30}"
ORG_RE = re.compile(
    rf"(?<![\w&'.-])(?P<name>{_ORG_WORD}(?: (?:{_ORG_WORD}|&|and|of|the|de)){{0,5}})"
    r",? (?P<suffix>Inc\.?|INC\.?|LLC|L\.L\.C\.|Corp\.?|CORP\.?|Corporation|Ltd\.?|LTD\.?|LLP|Co\.)(?![\w&-])"
)


# -- what a pattern cannot match without ------------------------------------------------------
# Each pattern below needs one of these literal strings in the text to match at all (its
# currency, label or suffix); one alternation of literals finds them several times faster
# than the pattern finds nothing, so a text without any skips the pattern. Only a shortcut:
# where a needle is present the pattern runs as before. tests/test_needles.py checks every
# needle set against its pattern.

#: AMOUNT_BEFORE_RE (a symbol or a code) and AMOUNT_AFTER_RE (a code, '€' or '£')
AMOUNT_NEEDLES: tuple[str, ...] = ("$", "€", "£", *sorted(amounts.CODES))
#: LABELLED_ID_RE's labels (a stem of each)
ID_LABEL_NEEDLES = (
    "PRO", "Pro", "pro", "LOAD", "Load", "load", "SHIPMENT", "Shipment", "shipment", "BOL", "Bol", "bol",
    "B/L", "BL", "Bill", "BILL", "bill", "PO", "P.O.", "Purchase", "PURCHASE", "purchase", "INV", "Inv", "inv",
)  # fmt: skip
#: UNIT_RE's labels
UNIT_NEEDLES = ("Truck", "TRUCK", "truck", "Tractor", "TRACTOR", "tractor", "Unit", "UNIT", "unit", "Trailer",
                "TRAILER", "trailer")  # fmt: skip
#: ORG_RE's legal suffixes (Corporation starts with Corp)
ORG_NEEDLES = ("Inc", "INC", "LLC", "L.L.C.", "Corp", "CORP", "Ltd", "LTD", "LLP", "Co.")
#: LABELLED_PHONE_RE's labels, in the lower-cased text (its labels are case-insensitive;
#: none of these letters has a case variant outside ASCII, unlike i, k and s)
PHONE_LABEL_NEEDLES = ("ph", "tel", "cell", "mob", "fax")


def needle_pattern(needles: tuple[str, ...]) -> re.Pattern[str]:
    """A pattern that finds any of `needles` (literally, case-sensitive)."""
    return re.compile("|".join(re.escape(needle) for needle in needles))


AMOUNT_HINT = needle_pattern(AMOUNT_NEEDLES)
ID_LABEL_HINT = needle_pattern(ID_LABEL_NEEDLES)
UNIT_HINT = needle_pattern(UNIT_NEEDLES)
ORG_HINT = needle_pattern(ORG_NEEDLES)
PHONE_LABEL_HINT = needle_pattern(PHONE_LABEL_NEEDLES)  # searched in text.lower()


# -- scanning ---------------------------------------------------------------------------------

#: How far back from the limit `clip` looks for a space to cut at.
_CUT_WINDOW = 256


def clip(text: str, limit: int) -> str:
    """At most `limit` characters, cut at a space so that no token is taken by halves.

    With no space in the last 256 characters before the limit the text is cut there
    anyway (no entity is that long); a shorter limit with no space gives nothing.
    """
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", max(0, limit - _CUT_WINDOW), limit + 1)
    if cut >= 0:
        return text[:cut]
    return text[:limit] if limit >= _CUT_WINDOW else ""


def scan(text: str, found: Found, region: str) -> None:
    """Add every entity of an enabled type that `text` mentions to `found`."""
    if not text:
        return
    want = found.wants
    if "@" in text and (want("Email") or want("Person")):
        _emails(text, found)
    if want("Phone"):
        _phones(text, found, region)
    if want("Amount"):
        _amounts(text, found)
    if want("Shipment") or want("Invoice") or want("PurchaseOrder") or want("BillOfLading"):
        _labelled_ids(text, found)
    if want("Vehicle"):
        _vehicles(text, found)
    if want("Carrier"):
        _carriers(text, found)
    if want("Place"):
        _places(text, found)
    if want("Person"):
        _signatures(text, found)
    if want("Organization"):
        _organisations(text, found)


def _emails(text: str, found: Found) -> None:
    found.step(0)
    for match in EMAIL_RE.finditer(text):
        found.add("Email", match.group(1).lower())
    if not found.wants("Person"):
        return
    found.step(1)
    for match in NAMED_EMAIL_RE.finditer(text):
        name = names.person_name(match.group(1))
        if name is None:
            continue
        email = match.group(2).lower()
        person = found.add("Person", name, email=email)
        found.relate(person, "HAS_EMAIL", found.add("Email", email))


def _phones(text: str, found: Found, region: str) -> None:
    found.step(2)
    for match in PHONE_RE.finditer(text):
        number = phones.normalize(match.group(1), region)
        if number is not None:
            found.add("Phone", number)
    if PHONE_LABEL_HINT.search(text.lower()) is None:
        return
    found.step(3)
    for match in LABELLED_PHONE_RE.finditer(text):
        number = phones.normalize(match.group(1), region)
        if number is not None:
            found.add("Phone", number)


def _amounts(text: str, found: Found) -> None:
    if AMOUNT_HINT.search(text) is None:
        return
    found.step(4)
    for match in AMOUNT_BEFORE_RE.finditer(text):
        symbol, code, number = match.group(1), match.group(2), match.group(3)
        currency = amounts.SYMBOLS[symbol] if symbol else code
        _amount(found, currency, number)
    found.step(5)
    for match in AMOUNT_AFTER_RE.finditer(text):
        number, code, symbol = match.group(1), match.group(2), match.group(3)
        currency = code if code else amounts.SYMBOLS[symbol]
        _amount(found, currency, number)


def _amount(found: Found, currency: str, number: str) -> None:
    value = amounts.parse_number(number, currency)
    if value is not None:
        key = amounts.amount_key(currency, value)
        found.add("Amount", key, currency=currency, amount=key.split(" ", 1)[1])


def _identifier(raw: str) -> str | None:
    ident = raw.upper()
    if len(ident) < 3 or not any(c.isdigit() for c in ident):
        return None
    return ident


def _labelled_ids(text: str, found: Found) -> None:
    found.step(6)
    for match in LABELLED_ID_RE.finditer(text) if ID_LABEL_HINT.search(text) else ():
        label = match.group("label")
        mark = match.group("mark").strip()
        if not mark and (label in _NEEDS_MARK or label.islower()):
            continue
        type_, scheme = _LABELS[label.lower()]
        if not found.wants(type_):
            continue
        ident = _identifier(match.group("id"))
        if ident is None or _QUANTITY_AFTER.match(text, match.end()):
            continue
        found.add(type_, ident, **({"scheme": scheme} if scheme else {}))
    if found.wants("Invoice") and "INV-" in text:
        found.step(7)
        for match in INVOICE_TOKEN_RE.finditer(text):
            found.add("Invoice", match.group(1))


def _vehicles(text: str, found: Found) -> None:
    found.step(8)
    for match in VIN_RE.finditer(text):
        candidate = match.group(1)
        if vin.is_vin(candidate):
            found.add("Vehicle", candidate, vin=candidate)
    found.step(9)
    for match in UNIT_RE.finditer(text) if UNIT_HINT.search(text) else ():
        label = match.group("label")
        mark = match.group("mark").strip()
        if label.islower() and not mark:
            continue
        ident = match.group("id").upper()
        if not any(c.isdigit() for c in ident) or _QUANTITY_AFTER.match(text, match.end()):
            continue
        if label.lower() == "unit" and _ADDRESS_BEFORE.search(text, max(0, match.start() - 24), match.start()):
            continue
        kind = "trailer" if label.lower() == "trailer" else "unit"
        found.add("Vehicle", f"{kind}:{ident}", unit=ident, kind=kind)


def _carriers(text: str, found: Found) -> None:
    if "DOT" in text:
        found.step(10)
        for match in DOT_RE.finditer(text):
            found.add("Carrier", f"DOT:{match.group(1)}", scheme="DOT", number=match.group(1))
    if "MC" in text:
        found.step(11)
        for match in MC_RE.finditer(text):
            found.add("Carrier", f"MC:{match.group(1)}", scheme="MC", number=match.group(1))
    if "SCAC" in text:
        found.step(12)
        for match in SCAC_RE.finditer(text):
            found.add("Carrier", f"SCAC:{match.group(1)}", scheme="SCAC", scac=match.group(1))


def _places(text: str, found: Found) -> None:
    found.step(13)
    for match in PLACE_RE.finditer(text):
        state = match.group("state") or match.group("state2")
        if state not in places.STATES:
            continue
        city = places.city_name(match.group("city").split(" "))
        if city is None:
            continue
        found.add("Place", f"{city}, {state}", city=city, state=state, zip=match.group("zip") or match.group("zip2"))


def _signatures(text: str, found: Found) -> None:
    found.step(14)
    for match in SIGNATURE_RE.finditer(text):
        name = names.person_name(match.group("name"))
        if name is not None:
            found.add("Person", name)


def _organisations(text: str, found: Found) -> None:
    if ORG_HINT.search(text) is None:
        return
    found.step(15)
    for match in ORG_RE.finditer(text):
        key = names.org_key(match.group("name").split(" "), match.group("suffix"))
        if key is not None:
            found.add("Organization", key, name=key)
