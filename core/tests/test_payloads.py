"""decode_json_object: every hostile or broken body is a PayloadError that says what is wrong."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apex_platform.errors import PayloadError
from apex_platform.payloads import check_json_structure, decode_json_object, json_type

WHAT = "Acme webhook body"


def refusal(body: bytes, max_depth: int = 64) -> str:
    with pytest.raises(PayloadError) as info:
        decode_json_object(body, what=WHAT, max_depth=max_depth)
    return str(info.value)


def nested(levels: int) -> bytes:
    return b'{"a":' * (levels - 1) + b"{}" + b"}" * (levels - 1)


def test_an_object_decodes() -> None:
    body = '{"id": "evt_1", "n": 1.5, "ok": true, "none": null, "list": [1, "é"]}'.encode()
    assert decode_json_object(body, what=WHAT) == json.loads(body)


def test_surrounding_whitespace_and_a_bom_free_utf8_body_are_fine() -> None:
    assert decode_json_object(b' \n {"a": "\xe2\x82\xac"} \n', what=WHAT) == {"a": "€"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", f"{WHAT} is empty; expected a JSON object"),
        (b" \r\n\t", f"{WHAT} is empty; expected a JSON object"),
        (b'{"a": "\xff"}', f"{WHAT} is not UTF-8 (invalid byte at offset 7)"),
        (
            b"\xef\xbb\xbf{}",
            f"{WHAT} is not valid JSON: Unexpected UTF-8 BOM (decode using utf-8-sig) at line 1 column 1",
        ),
        (b'{"a": 1,\n "b": }', f"{WHAT} is not valid JSON: Expecting value at line 2 column 7"),
        (b'{"a": 1', f"{WHAT} is not valid JSON: Expecting ',' delimiter at line 1 column 8"),
        (b'{"a": NaN}', f"{WHAT} is not valid JSON: NaN is not valid JSON"),
        (b'{"a": -Infinity}', f"{WHAT} is not valid JSON: -Infinity is not valid JSON"),
        (b"[1, 2]", f"{WHAT} must be a JSON object, got array"),
        (b'"text"', f"{WHAT} must be a JSON object, got string"),
        (b"42", f"{WHAT} must be a JSON object, got number"),
        (b"true", f"{WHAT} must be a JSON object, got boolean"),
        (b"null", f"{WHAT} must be a JSON object, got null"),
        (b'{"a": "\\ud800"}', f"{WHAT} contains an unpaired UTF-16 surrogate escape"),
        (b'{"\\udfff": 1}', f"{WHAT} contains an unpaired UTF-16 surrogate escape"),
    ],
)
def test_broken_bodies_say_what_is_wrong(body: bytes, message: str) -> None:
    assert refusal(body) == message


def test_a_paired_surrogate_escape_is_a_character() -> None:
    assert decode_json_object(b'{"a": "\\ud83d\\ude00"}', what=WHAT) == {"a": "\U0001f600"}


def test_an_integer_with_thousands_of_digits_is_refused() -> None:
    assert refusal(b'{"a": ' + b"9" * 5000 + b"}").startswith(f"{WHAT} is not valid JSON: ")


def test_depth_limit_is_inclusive() -> None:
    assert decode_json_object(nested(8), what=WHAT, max_depth=8)
    assert refusal(nested(9), max_depth=8) == f"{WHAT} nests deeper than 8 levels"
    assert refusal(b'{"a": ' + b"[" * 9 + b"]" * 9 + b"}", max_depth=8) == f"{WHAT} nests deeper than 8 levels"
    assert refusal(b"[" * 9 + b"]" * 9, max_depth=8) == f"{WHAT} nests deeper than 8 levels"


@pytest.mark.parametrize("levels", [100, 5_000, 100_000])
def test_absurd_nesting_is_refused_without_recursion_trouble(levels: int) -> None:
    deep_objects = b'{"a":' * levels + b"1" + b"}" * levels
    deep_arrays = b'{"a":' + b"[" * levels + b"]" * levels + b"}"
    assert refusal(deep_objects) == refusal(deep_arrays) == f"{WHAT} nests deeper than 64 levels"


def test_check_json_structure_checks_documents_decoded_elsewhere() -> None:
    check_json_structure([{"a": ["b"]}], what="answer", max_depth=3)
    with pytest.raises(PayloadError, match=r"^answer nests deeper than 2 levels$"):
        check_json_structure([{"a": ["b"]}], what="answer", max_depth=2)
    with pytest.raises(PayloadError, match=r"^answer contains an unpaired UTF-16 surrogate escape$"):
        check_json_structure({"a": [{"b": "\udc00"}]}, what="answer")


@pytest.mark.parametrize(
    ("value", "name"),
    [(None, "null"), (True, "boolean"), (0, "number"), (1.5, "number"), ("", "string"), ([], "array"), ({}, "object")],
)
def test_json_type_names(value: Any, name: str) -> None:
    assert json_type(value) == name


@given(st.binary(max_size=200))
def test_any_bytes_decode_to_an_object_or_a_payload_error(body: bytes) -> None:
    try:
        doc: object = decode_json_object(body, what=WHAT)
    except PayloadError as exc:
        doc = exc
    assert isinstance(doc, dict) or str(doc).startswith(f"{WHAT} ")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.text(), json_values, max_size=5))
def test_every_valid_object_round_trips(doc: dict[str, Any]) -> None:
    assert decode_json_object(json.dumps(doc).encode(), what=WHAT) == doc
