"""`scan_memo.scan_strings` is the scan of the strings joined by blank lines: the same
entities and relations in the same order, whether each string is scanned afresh or
replayed from the memo, and whatever the strings start or end with."""

from __future__ import annotations

from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from apex_enricher_entities import scan_memo, text
from apex_enricher_entities.found import Found
from apex_enricher_entities.settings import ENTITY_TYPES

PIECES = [
    "Thanks,", "Thanks", "Best regards", "\n", "\r", "\r\n", " ", "\t", "Ann Shipper", "Mary-Jane O'Neil",
    "Ann Shipper <ann@shipper.example>", "dispatch@apex.example", "PRO# 0286-55431", "Load", " No. ", "4471823",
    "(404) 555-1234", "+44 20 7946 0958", "fax:", "212 555 0199", "$1,250.00", "12 EUR", "USD", "€", "lbs",
    "Truck #42", "123 Main St", " Unit 4", "VIN 1FUJGLDR5CLBP8835", "USDOT 1234567", "MC-765432", "SCAC: ABCD",
    "Atlanta, GA 30301", "Dallas", ", TX", "Acme Freight, Inc.", " LLC", "INV-2031", "P.O. 7781-22", "-", ".",
]  # fmt: skip
strings = st.lists(st.sampled_from(PIECES) | st.text(max_size=4), max_size=6).map("".join)


def _joined(strings: list[str]) -> tuple[Any, ...]:
    found = Found(frozenset(ENTITY_TYPES))
    text.scan("\n\n".join(s for s in strings if s), found, "US")
    return list(found.entities.items()), list(found.relations)


def _remembered(strings: list[str], memo: scan_memo.Memo) -> tuple[Any, ...]:
    found = Found(frozenset(ENTITY_TYPES))
    scan_memo.scan_strings(strings, found, "US", memo)
    return list(found.entities.items()), list(found.relations)


@settings(max_examples=200, deadline=None)
@example(values=["Atlanta, GA 30301 Truck #42", "Thanks,", "Ann Shipper", "PRO# 0286-55431 $5.00"])
@example(values=["Ann <ann@a.example> 404-555-1234", "Ann Shipper <ann@shipper.example>", "Dallas, TX"])
@given(values=st.lists(strings, max_size=8))
def test_strings_scanned_apart_and_remembered_find_what_the_joined_scan_finds(values: list[str]) -> None:
    memo: scan_memo.Memo = {}
    want = _joined(values)
    assert _remembered(values, memo) == want  # each string scanned
    assert _remembered(values, memo) == want  # from the memo
    assert _remembered(values[::-1], memo) == _joined(values[::-1])


def test_the_memo_is_bounded(monkeypatch: Any) -> None:
    monkeypatch.setattr(scan_memo, "MAX_ENTRIES", 3)
    memo: scan_memo.Memo = {}
    for i in range(10):
        _remembered([f"PRO# 0286-{i:05d}", "x" * (scan_memo.MAX_CHARS + 1)], memo)
        assert len(memo) <= 3
    assert all(len(key) <= scan_memo.MAX_CHARS for key in memo)
