"""decode_json skips its walk over every value when the text shows the walk cannot fail
(issue 15: the walk was half the cost of decoding a webhook). Pinned here: on every body,
the decoder gives exactly what the decoder before that change gave — the same value (types,
key order, -0.0) or the same `PayloadError` message. `reference_decode_json` is that
decoder, copied verbatim."""

from __future__ import annotations

import json
import math
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apex_platform import payloads
from apex_platform.errors import PayloadError
from apex_platform.payloads import decode_json
from apex_platform.testing.hostile_json import HOSTILE, hostile_bodies

# -- the decoder as it was (apex_platform/payloads.py before the walk could be skipped) ----


class _Refused(Exception):
    pass


def _shown(literal: str) -> str:
    return literal if len(literal) <= 40 else literal[:40] + "…"


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise _Refused(f"has a number out of range: {_shown(literal)} is beyond what a 64-bit float holds")
    return value


def _int_parser(max_digits: int) -> Any:
    def parse(literal: str) -> int:
        digits = len(literal) - (literal[0] == "-")
        if digits > max_digits:
            raise _Refused(f"has an integer of {digits} digits; at most {max_digits} are accepted")
        return int(literal)

    return parse


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    doc = dict(pairs)
    if len(doc) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Refused(f"has the key {_shown(key)!r} twice in one object (duplicate keys are refused)")
            seen.add(key)
    return doc


def _reject_constant(name: str) -> Any:
    raise _Refused(f"is not valid JSON: {name} is not valid JSON")


def _check_string(value: str, what: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise PayloadError(f"{what} contains an unpaired UTF-16 surrogate escape") from None


def _check_json_structure(doc: object, *, what: str, max_depth: int) -> None:
    stack: list[tuple[object, int]] = [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            _check_string(value, what)
            continue
        if not isinstance(value, dict | list):
            continue
        if depth > max_depth:
            raise PayloadError(f"{what} nests deeper than {max_depth} levels")
        if isinstance(value, dict):
            for key, item in value.items():
                _check_string(key, what)
                stack.append((item, depth + 1))
        else:
            stack.extend((item, depth + 1) for item in value)


def reference_decode_json(body: bytes, *, what: str, max_depth: int = 64, max_int_digits: int = 100) -> Any:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(f"{what} is not UTF-8 (invalid byte at offset {exc.start})") from None
    if not text.strip():
        raise PayloadError(f"{what} is empty; expected a JSON object")
    try:
        doc = json.loads(
            text,
            parse_constant=_reject_constant,
            parse_float=_finite_float,
            parse_int=_int_parser(max_int_digits),
            object_pairs_hook=_unique_keys,
        )
    except _Refused as exc:
        raise PayloadError(f"{what} {exc}") from None
    except json.JSONDecodeError as exc:
        raise PayloadError(f"{what} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        limit = min(max_depth, sys.getrecursionlimit())
        raise PayloadError(f"{what} nests deeper than {limit} levels") from None
    except ValueError as exc:
        raise PayloadError(f"{what} is not valid JSON: {exc}") from None
    _check_json_structure(doc, what=what, max_depth=max_depth)
    return doc


# -- the comparison -----------------------------------------------------------------------

WHAT = "Acme webhook body"


def outcome(decoder: Any, body: bytes, **limits: int) -> tuple[str, str]:
    """("ok", repr of the value) — repr tells 1 from 1.0 and True, -0.0 from 0.0, and shows
    key order — or ("refused", the message)."""
    try:
        return "ok", repr(decoder(body, what=WHAT, **limits))
    except PayloadError as exc:
        return "refused", str(exc)


def assert_same(body: bytes, **limits: int) -> tuple[str, str]:
    now = outcome(decode_json, body, **limits)
    assert now == outcome(reference_decode_json, body, **limits), body[:200]
    return now


def nested(levels: int, inner: bytes = b"1") -> bytes:
    return b'{"a":' * levels + inner + b"}" * levels


@pytest.mark.parametrize(
    "body",
    [
        b'{"a": "\\ud800"}',
        b'{"a": "\\uD800"}',
        b'{"a": "\\uDfFf"}',
        b'{"\\udc00": 1}',
        b'["x\\ud83d"]',
        b'["\\ude00\\ud83d"]',
        b'{"a": "\\ud83d\\ude00"}',  # a pair: a character, accepted
        b'{"a": "\\uD83D\\uDE00"}',
        b'{"a": "\\\\ud800"}',  # an escaped backslash, then "ud800": no escape, accepted
        b'{"a": "\\\\\\ud800"}',  # backslash, then a lone surrogate: refused
        b'{"a": "\\u00e9\\u0041"}',
        b'{"a": "\\udbff\\udfff", "b": "\\ud7ff"}',
        nested(64),
        nested(65),
        nested(63, b'"\\ud800"'),
        nested(200),
        b'{"a": "' + b"[" * 100 + b'"}',  # brackets inside a string: the walk runs, and accepts
        b'{"a": "' + b"{" * 100 + b'", "b": "\\ud800"}',
        b"[" * 64 + b"]" * 64,
        b"[" * 65 + b"]" * 65,
        b'{"a": [' + b"{}," * 70 + b"{}]}",  # many containers, shallow: accepted
        b'{"a": 1, "a": 2}',
        b'{"a": 1e999}',
        b'{"a": NaN}',
        b'{"a": ' + b"9" * 101 + b"}",
        b'{"a": -0.0, "b": 0, "c": 1.0, "d": true, "e": null, "f": 1e-999}',
        b" \n\t ",
        b"\xff",
        b'"just a string with \\ud800"',
        b"[1, 2",
    ],
)
def test_edge_cases_decode_as_before(body: bytes) -> None:
    assert_same(body)


@pytest.mark.parametrize("max_depth", [1, 2, 3, 8, 64])
def test_the_depth_limit_decides_as_before_at_every_limit(max_depth: int) -> None:
    for levels in range(max_depth + 3):
        assert_same(nested(levels), max_depth=max_depth)
        assert_same(b"[" * levels + b"]" * levels, max_depth=max_depth)
        assert_same(nested(levels, b'["\\ud800"]'), max_depth=max_depth)
        assert_same(nested(levels, b'"' + b"[" * (max_depth + 1) + b'"'), max_depth=max_depth)


def test_the_walk_is_skipped_only_where_it_could_not_refuse(monkeypatch: pytest.MonkeyPatch) -> None:
    walked: list[object] = []
    real = payloads.check_json_structure

    def counting(doc: object, *, what: str, max_depth: int = 64) -> None:
        walked.append(doc)
        real(doc, what=what, max_depth=max_depth)

    monkeypatch.setattr(payloads, "check_json_structure", counting)
    decode_json(b'{"id": "evt_1", "n": [1, 2.5, {"x": "\\u00e9"}]}', what=WHAT)
    assert walked == []  # no surrogate escape, 3 brackets: nothing to walk
    for body in (b'{"a": "\\ud83d\\ude00"}', nested(65)):  # a surrogate escape; 65 brackets
        assert_same(body)
    assert len(walked) == 2


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from('[]{}\\"u')),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=30,
)


@settings(max_examples=200)
@given(json_values, st.booleans(), st.integers(min_value=1, max_value=8))
def test_any_valid_document_decodes_as_before(doc: Any, ascii_only: bool, max_depth: int) -> None:
    body = json.dumps(doc, ensure_ascii=ascii_only).encode()
    assert_same(body)
    assert_same(body, max_depth=max_depth)


@settings(max_examples=100)
@given(st.dictionaries(st.text(max_size=8), json_values, min_size=1, max_size=5).flatmap(lambda d: hostile_bodies([d])))
def test_a_hostile_literal_anywhere_is_refused_as_before(case: tuple[bytes, str, str]) -> None:
    body, name, phrase = case
    kind, message = assert_same(body)
    assert kind == "refused", (name, message)
    assert phrase in message, (name, message)


_TOKENS = [
    "{", "}", "[", "]", ",", ":", '"a"', '"b"', "1", "-", "0.5", "1e999", "1e-999", "NaN", "Infinity",
    "true", "null", '"\\ud800"', '"\\ud83d\\ude00"', '"\\uDC00"', '"\\\\u"', "9" * 120, " ", '"\\u0000"',
    "\\", '"', "u", "d8", "00",
]  # fmt: skip


@settings(max_examples=500)
@given(st.lists(st.sampled_from(_TOKENS), max_size=40), st.integers(min_value=1, max_value=6))
def test_any_token_soup_decodes_or_is_refused_as_before(tokens: list[str], max_depth: int) -> None:
    body = "".join(tokens).encode()
    assert_same(body)
    assert_same(body, max_depth=max_depth)


@settings(max_examples=200)
@given(st.binary(max_size=120))
def test_any_bytes_decode_or_are_refused_as_before(body: bytes) -> None:
    assert_same(body)


def test_every_hostile_literal_alone_is_refused_as_before() -> None:
    for literal, _phrase in HOSTILE.values():
        assert assert_same(literal)[0] == "refused"
        assert assert_same(b'{"k": [' + literal + b"]}")[0] == "refused"
