"""The needle shortcuts of `text`: a pattern skipped for want of its needles could not have matched.

A needle pattern (`text.*_HINT`) that finds nothing in `t` must imply the pattern finds nothing in `t`. Checked on
texts built from the patterns' own pieces (labels, suffixes, currencies, digits,
separators) in every letter case, and on characters whose case folds onto ASCII
letters under `re.IGNORECASE` (long s, dotless i, Kelvin sign, dotted capital I).
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apex_enricher_entities import text

PIECES = [
    *text.AMOUNT_NEEDLES, *text.ID_LABEL_NEEDLES, *text.UNIT_NEEDLES, *text.ORG_NEEDLES,
    "phone", "Tel", "TELEPHONE", "cell", "Mobile", "MOB", "fax", "Ph", "pH", "P.O", "B/L", "Bill of Lading",
    "Purchase Order", "Corporation", "Co", "Co.", "Inc.", "L.L.C.", "LLP", "Ltd.", "CORP",
    "US$", "C$", "12", "1,234.50", "1.234,50", "404", "555-1234",
    " ", ", ", "#", ":", "No.", "number", "ID", "-", ".", "\n", "\u017f", "\u0131", "\u0130", "\u212a", "\u2160",
]  # fmt: skip
CASES = [
    (text.AMOUNT_HINT, text.AMOUNT_BEFORE_RE, False),
    (text.AMOUNT_HINT, text.AMOUNT_AFTER_RE, False),
    (text.ID_LABEL_HINT, text.LABELLED_ID_RE, False),
    (text.UNIT_HINT, text.UNIT_RE, False),
    (text.ORG_HINT, text.ORG_RE, False),
    (text.PHONE_LABEL_HINT, text.LABELLED_PHONE_RE, True),
]
NAMES = ["amount before", "amount after", "labelled id", "unit", "organisation", "labelled phone"]

texts = st.lists(st.sampled_from(PIECES) | st.text(max_size=3), max_size=12).map("".join)


def _case_variants(value: str) -> list[str]:
    return [value, value.lower(), value.upper(), value.title(), value.swapcase()]


@pytest.mark.parametrize(("hint", "pattern", "lowered"), CASES, ids=NAMES)
@settings(max_examples=150, deadline=None)
@given(value=texts)
def test_no_needle_no_match(hint: re.Pattern[str], pattern: re.Pattern[str], lowered: bool, value: str) -> None:
    for variant in _case_variants(value):
        if hint.search(variant.lower() if lowered else variant) is None:
            assert pattern.search(variant) is None, variant


@pytest.mark.parametrize(("hint", "pattern", "lowered"), CASES, ids=NAMES)
def test_every_piece_alone_and_labelled(hint: re.Pattern[str], pattern: re.Pattern[str], lowered: bool) -> None:
    for piece in PIECES:
        for variant in _case_variants(piece):
            for candidate in (variant, f"{variant} 12345", f"{variant}: 1234-5678", f"12 {variant}", f"Acme {variant}"):
                if hint.search(candidate.lower() if lowered else candidate) is None:
                    assert pattern.search(candidate) is None, candidate
