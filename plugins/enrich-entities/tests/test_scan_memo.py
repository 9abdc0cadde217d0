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
    memo = scan_memo.Memo()
    want = _joined(values)
    assert _remembered(values, memo) == want  # each string scanned
    assert _remembered(values, memo) == want  # from the memo
    assert _remembered(values[::-1], memo) == _joined(values[::-1])


def test_the_memo_is_bounded(monkeypatch: Any) -> None:
    monkeypatch.setattr(scan_memo, "MAX_ENTRIES", 3)
    memo = scan_memo.Memo()
    for i in range(10):
        _remembered([f"PRO# 0286-{i:05d}", "x" * (scan_memo.MAX_CHARS + 1)], memo)
        assert len(memo) <= 3
    assert all(len(key) <= scan_memo.MAX_CHARS for key in memo)


def test_a_string_that_comes_back_stays_while_strings_seen_once_pass_through(monkeypatch: Any) -> None:
    """Least recently used out: a status repeated every 20 strings is scanned once while
    2,000 strings never seen again go through a memo of 50 (the earlier memo emptied when
    full, and scanned the status again after every emptying)."""
    monkeypatch.setattr(scan_memo, "MAX_ENTRIES", 50)
    scanned: list[str] = []
    real = text.scan

    def counting(string: str, found: Found, region: str) -> None:
        scanned.append(string)
        real(string, found, region)

    monkeypatch.setattr(text, "scan", counting)
    memo = scan_memo.Memo()
    for i in range(2_000):
        strings = [f"Truck 12 at near Columbus, OH ({i / 10:.1f} mph)"]
        if i % 20 == 0:
            strings.append("Delivered - Atlanta, GA 30301")
        _remembered(strings, memo)
        assert len(memo) <= 50
    assert scanned.count("Delivered - Atlanta, GA 30301") == 1


def test_the_memo_of_a_feed_readers_strings_stays_small() -> None:
    """A worker reading Samsara's feed sees a new text in nearly every point (its speed,
    its time): 40,000 of them leave the memo at its cap, never more than a few MB (the earlier memo held
    32,768 such strings, ~17 MB, before it emptied)."""
    import tracemalloc

    memo = scan_memo.Memo()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(40_000):
            point = f"2026-03-10T12:{i // 600 % 60:02d}:{i // 10 % 60:02d}.{i % 1000:03d}Z"
            scan_memo.scan_strings(
                [f"Truck {i % 40} at near Columbus, OH ({i % 681 / 10:.1f} mph)", point],
                Found(frozenset(ENTITY_TYPES)),
                "US",
                memo,
            )
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20, f"{peak / 2**20:.1f} MB at the most"
    assert len(memo) == scan_memo.MAX_ENTRIES
