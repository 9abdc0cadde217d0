"""US states: two-letter codes and names, for places written `City, ST`."""

from __future__ import annotations


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


STATES: dict[str, str] = {
    "AL": "Alabama", "AK": "Alaska", "AZ": "Arizona", "AR": "Arkansas", "CA": "California",
    "CO": "Colorado", "CT": "Connecticut", "DE": "Delaware", "FL": "Florida", "GA": "Georgia",
    "HI": "Hawaii", "ID": "Idaho", "IL": "Illinois", "IN": "Indiana", "IA": "Iowa",
    "KS": "Kansas", "KY": "Kentucky", "LA": "Louisiana", "ME": "Maine", "MD": "Maryland",
    "MA": "Massachusetts", "MI": "Michigan", "MN": "Minnesota", "MS": "Mississippi", "MO": "Missouri",
    "MT": "Montana", "NE": "Nebraska", "NV": "Nevada", "NH": "New Hampshire", "NJ": "New Jersey",
    "NM": "New Mexico", "NY": "New York", "NC": "North Carolina", "ND": "North Dakota", "OH": "Ohio",
    "OK": "Oklahoma", "OR": "Oregon", "PA": "Pennsylvania", "RI": "Rhode Island", "SC": "South Carolina",
    "SD": "South Dakota", "TN": "Tennessee", "TX": "Texas", "UT": "Utah", "VT": "Vermont",
    "VA": "Virginia", "WA": "Washington", "WV": "West Virginia", "WI": "Wisconsin", "WY": "Wyoming",
    "DC": "District of Columbia", "PR": "Puerto Rico",
}  # fmt: skip

_BY_NAME = {name.lower(): code for code, name in STATES.items()}

#: Capitalised words that start sentences or greetings and end up before a comma:
#: "Hello, OK", "Thanks, ME". Dropped from the front of a city; nothing left, no place.
NOT_CITY_WORDS = _words(
    """
    a an and also again are as asap at but by call dear delivery deliver delivered destination
    eta fyi from good great hello hey hi in is it its let me monday tuesday wednesday thursday
    friday saturday sunday near no note ok okay on or origin our per pick pickup please regards
    shipped shipping so sorry sure thank thanks the this to today tomorrow update via we well yes
    yesterday you your january february march april may june july august september october
    november december
    """
)


def state_code(value: str) -> str | None:
    """The two-letter code of a state given as a code or a name ('GA', 'ga', 'Georgia')."""
    text = " ".join(value.split())
    if len(text) == 2 and text.upper() in STATES:
        return text.upper()
    return _BY_NAME.get(text.lower())


def city_name(words: list[str]) -> str | None:
    """The city from the capitalised words before `, ST`, leading sentence words removed."""
    while words and words[0].lower().rstrip(".") in NOT_CITY_WORDS:
        words = words[1:]
    if not words:
        return None
    name = " ".join(words)
    letters = sum(c.isalpha() for c in name)
    if letters < 3:
        return None
    return name
