"""People and organisations: what a name looks like, and the keys they get."""

from __future__ import annotations

import re
from functools import lru_cache


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


#: Legal suffixes that make a capitalised phrase an organisation, and their key form.
ORG_SUFFIXES: dict[str, str] = {
    "inc": "Inc",
    "llc": "LLC",
    "l.l.c": "LLC",
    "corp": "Corp",
    "corporation": "Corporation",
    "ltd": "Ltd",
    "llp": "LLP",
    "co": "Co",
}

#: Words that never belong to a person's name: mailboxes, teams, roles.
NOT_PERSON_WORDS = _words(
    """
    accounting accounts admin administrator billing bot carrier claims customer department dept
    desk dispatch dock driver help inbox info logistics noreply no-reply notifications office ops
    operations payable receivable reply sales service services shipping support system team
    tracking warehouse freight trucking transport group company
    """
)

#: Words dropped from the front of an organisation name found in running text.
_LEADING_NOISE = _words(
    """
    a an and at by call contact dear for from hi hello in of on our per regards the thanks this
    that to via with your their its
    """
)

#: One word of a person's name: Ann, Mary-Jane, O'Neil, D'Angelo, McDonald, MacLeod.
NAME_WORD = r"(?:Ma?c|[OD]')?[A-Z][a-z]{1,24}(?:-[A-Z][a-z]{1,24})?"
_PERSON_WORD = re.compile(rf"{NAME_WORD}|[A-Z]\.")
_SUFFIX_AT_END = re.compile(r",?\s+(Inc|LLC|L\.L\.C|Corp|Corporation|Ltd|LLP|Co)\.?$", re.IGNORECASE)


def clean(value: str) -> str:
    """Whitespace collapsed, surrounding quotes and punctuation trimmed."""
    return " ".join(value.split()).strip(" \"'`,;:")


def person_name(value: str) -> str | None:
    """`value` as a person's name key when it looks like one: 2-4 capitalised words."""
    name = clean(value)
    words = name.split(" ")
    if not 2 <= len(words) <= 4 or len(name) > 80:
        return None
    if not all(_PERSON_WORD.fullmatch(word) for word in words):
        return None
    if words[0].endswith(".") and words[-1].endswith("."):
        return None
    if any(word.lower().rstrip(".") in NOT_PERSON_WORDS for word in words):
        return None
    if any(word.lower() in _LEADING_NOISE for word in words):
        return None
    return name


def org_key(words: list[str], suffix: str) -> str | None:
    """The key of an organisation found in text: its words and the normalised suffix."""
    while words and words[0].lower() in _LEADING_NOISE:
        words = words[1:]
    if not words or not words[0][:1].isupper():
        return None
    if not any(c.isalpha() for c in "".join(words)):
        return None
    canonical = ORG_SUFFIXES.get(suffix.lower().rstrip("."))
    if canonical is None:
        return None
    return " ".join(words) + " " + canonical


def org_name(value: str) -> str | None:
    """An organisation named in an attribute: the value cleaned, a legal suffix normalised."""
    name = clean(value)
    if not 2 <= len(name) <= 120 or "@" in name or "://" in name or "\n" in value:
        return None
    if not any(c.isalpha() for c in name):
        return None
    match = _SUFFIX_AT_END.search(name)
    if match is not None:
        head = name[: match.start()].rstrip(" ,")
        if head:
            return f"{head} {ORG_SUFFIXES[match.group(1).lower()]}"
    return name


def has_org_suffix(value: str) -> bool:
    """Whether `value` ends in a legal suffix. Asked of every `name` field of every record
    (tags, stops, inboxes have names too), so short values are remembered."""
    if len(value) <= 256:
        return _has_org_suffix(value)
    return _SUFFIX_AT_END.search(clean(value)) is not None


@lru_cache(maxsize=8192)
def _has_org_suffix(value: str) -> bool:
    return _SUFFIX_AT_END.search(clean(value)) is not None
