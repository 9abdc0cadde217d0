"""decode_json / decode_json_object: every hostile or broken body is a PayloadError that
says what is wrong (the one strict decoder every connector's receive goes through)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apex_platform.errors import PayloadError
from apex_platform.payloads import (
    REDACTED,
    check_json_structure,
    decode_json,
    decode_json_object,
    json_type,
    redact_json_keys,
)
from apex_platform.testing.hostile_json import hostile_bodies

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


@pytest.mark.parametrize("digits", [101, 4_300, 4_301, 5_000, 100_000])
def test_an_integer_longer_than_the_limit_is_refused_naming_the_limit(digits: int) -> None:
    # Python's own limit (4,300 digits) is never what answers: the message names ours
    for sign in (b"", b"-"):
        body = b'{"a": ' + sign + b"9" * digits + b"}"
        assert refusal(body) == f"{WHAT} has an integer of {digits} digits; at most 100 are accepted"


def test_the_integer_limit_is_inclusive_and_configurable() -> None:
    assert decode_json_object(b'{"a": -' + b"9" * 100 + b"}", what=WHAT) == {"a": -int("9" * 100)}
    assert decode_json(b"12345", what=WHAT, max_int_digits=5) == 12345
    with pytest.raises(PayloadError, match=r"^Acme webhook body has an integer of 6 digits; at most 5 are accepted$"):
        decode_json(b"[123456]", what=WHAT, max_int_digits=5)


@pytest.mark.parametrize("literal", [b"1e999", b"-1e999", b"1E400", b"1.5e+309", b"9" * 400 + b".0"])
def test_a_number_out_of_float_range_is_refused_not_decoded_to_infinity(literal: bytes) -> None:
    message = refusal(b'{"a": [' + literal + b"]}")
    assert message.startswith(f"{WHAT} has a number out of range: ")
    assert message.endswith(" is beyond what a 64-bit float holds")


def test_tiny_numbers_and_long_fractions_are_ordinary_floats() -> None:
    assert decode_json(b"[1e-999, 0.1000000000000000055511151231257827, -0.0, 1.7976931348623157e308]", what=WHAT) == [
        0.0,
        0.1,
        -0.0,
        1.7976931348623157e308,
    ]


@pytest.mark.parametrize("body", [b'{"a": 1, "a": 1}', b'{"x": [{"k": 1, "j": 2, "k": 3}]}', b'{"a": 1, "\\u0061": 2}'])
def test_duplicate_keys_are_refused_naming_the_key(body: bytes) -> None:
    message = refusal(body)
    assert message.startswith(f"{WHAT} has the key ")
    assert message.endswith(" twice in one object (duplicate keys are refused)")


def test_equal_keys_in_different_objects_are_fine() -> None:
    assert decode_json_object(b'{"a": {"a": 1}, "b": [{"a": 2}, {"a": 3}]}', what=WHAT)["b"][1] == {"a": 3}


def test_decode_json_takes_any_value_and_applies_every_rule() -> None:
    assert decode_json(b"[1, 2]", what=WHAT) == [1, 2]
    assert decode_json(b'"text"', what=WHAT) == "text"
    with pytest.raises(PayloadError, match="surrogate"):
        decode_json(b'["\\ud800"]', what=WHAT)
    with pytest.raises(PayloadError, match="NaN is not valid JSON"):
        decode_json(b"[NaN]", what=WHAT)


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


@settings(max_examples=300)
@given(st.dictionaries(st.text(max_size=8), json_values, min_size=1, max_size=5).flatmap(lambda d: hostile_bodies([d])))
def test_a_hostile_literal_anywhere_is_refused_naming_its_reason(case: tuple[bytes, str, str]) -> None:
    body, name, phrase = case
    message = refusal(body)
    assert message.startswith(f"{WHAT} ")
    assert phrase in message, (name, message)


_TOKENS = [
    "{", "}", "[", "]", ",", ":", '"a"', '"b"', "1", "-", "0.5", "1e999", "1e-999", "NaN", "Infinity",
    "true", "null", '"\\ud800"', '"\\ud83d\\ude00"', "9" * 120, " ", '"\\u0000"', "\\", '"',
]  # fmt: skip


@settings(max_examples=500)
@given(st.lists(st.sampled_from(_TOKENS), max_size=30))
def test_any_token_soup_decodes_or_is_refused_with_a_reason(tokens: list[str]) -> None:
    body = "".join(tokens).encode()
    try:
        doc: object = decode_json(body, what=WHAT)
    except PayloadError as exc:
        message = str(exc)
        assert message.startswith(f"{WHAT} ")
        assert len(message) > len(WHAT) + 10
        return
    # what decodes is strict JSON: re-encoding it without NaN/Infinity and as UTF-8 works
    json.dumps(doc, allow_nan=False).encode("utf-8")


# -- values a connector says must never be kept -------------------------------------------------

KEYS = frozenset({"public_token", "public_tokens"})


def test_redact_json_keys_replaces_every_string_under_the_keys_at_any_depth() -> None:
    body = (
        b'{"public_token": "public-1", "public_tokens": ["public-2", {"x": "public-3"}, 7],'
        b' "nested": [{"public_token": "public-4", "keep": "\\u00e9"}], "n": 1.5}'
    )
    doc = json.loads(redact_json_keys(body, KEYS, what=WHAT))
    assert doc == {
        "public_token": REDACTED,
        "public_tokens": [REDACTED, {"x": REDACTED}, 7],
        "nested": [{"public_token": REDACTED, "keep": "é"}],
        "n": 1.5,
    }
    assert b"public-" not in redact_json_keys(body, KEYS, what=WHAT)


def test_a_body_without_the_keys_is_kept_byte_for_byte() -> None:
    body = b'{\n  "webhook_type": "ITEM",\n  "token_count": 2\n}'
    assert redact_json_keys(body, KEYS, what=WHAT) is body
    assert redact_json_keys(b"not json at all", frozenset(), what=WHAT) == b"not json at all"


def test_an_escaped_key_is_still_the_key() -> None:
    body = b'{"public\\u005ftoken": "public-1"}'
    assert json.loads(redact_json_keys(body, KEYS, what=WHAT)) == {"public_token": REDACTED}


def test_a_body_that_does_not_decode_strictly_is_not_stored_as_is() -> None:
    with pytest.raises(PayloadError, match="NaN is not valid JSON"):
        redact_json_keys(b'{"public_token": "public-1", "x": NaN}', KEYS, what=WHAT)
