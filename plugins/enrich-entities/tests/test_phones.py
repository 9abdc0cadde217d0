"""Phone normalisation with and without the optional `phonenumbers` package."""

from __future__ import annotations

import pytest

from apex_enricher_entities import phones


@pytest.mark.parametrize("use_library", [True, False], ids=["phonenumbers", "fallback"])
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("(404) 555-1234", "+14045551234"),
        ("1-404-555-1234", "+14045551234"),
        ("+1 404 555 1234", "+14045551234"),
        ("+44 20 7946 0958", "+442079460958"),
        ("123-456-7890", None),
        ("555-1234", None),
        ("+1 (111) 555-1234", None),
    ],
)
def test_normalize(raw: str, expected: str | None, use_library: bool) -> None:
    if use_library and not phones.has_library():
        pytest.skip("phonenumbers is not installed (extra [phone])")
    assert phones.normalize(raw, "US", use_library=use_library) == expected


def test_region_for_national_numbers() -> None:
    if not phones.has_library():
        pytest.skip("phonenumbers is not installed (extra [phone])")
    assert phones.normalize("020 7946 0958", "GB") == "+442079460958"
    assert phones.normalize("020 7946 0958", "US") is None


def test_fallback_without_library_knows_only_nanp_and_explicit_codes() -> None:
    assert phones.normalize("020 7946 0958", "GB", use_library=False) is None
    assert phones.normalize("404 555 1234", "CA", use_library=False) == "+14045551234"
