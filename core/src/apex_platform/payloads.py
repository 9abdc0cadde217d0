"""Strict decoding of JSON bodies from the outside (webhooks, pushes) into what the
platform can carry on, with a `PayloadError` that says exactly what is wrong.

Every connector decodes what arrives at the edge through `decode_json` (or
`decode_json_object`), so every source refuses the same things with the same reasons:

- not UTF-8, empty, or not JSON at all (with the line and column);
- `NaN`, `Infinity` and `-Infinity`: Python's json accepts them, they are not JSON and
  cannot be re-encoded strictly;
- a number out of range: `1e999` would decode to infinity (the same trouble as
  `Infinity`, with a valid spelling);
- an integer longer than `max_int_digits` digits (default 100): no store keeps such a
  number as a number, and Python's own int limit (4,300 digits) would otherwise surface
  as an unexplained error;
- an object with the same key twice: RFC 8259 leaves the meaning open, decoders differ
  (Python keeps the last value, others the first or fail), so a body whose signature
  was checked could mean two things; refused rather than silently resolved;
- nesting deeper than `max_depth` (a hostile body could exhaust the recursion of the
  encoders that carry it through Temporal);
- unpaired UTF-16 surrogate escapes (`"\\ud800"` decodes to a string no store and no
  UTF-8 encoder accepts).
"""

from __future__ import annotations

import json
import math
import re
import sys
from typing import Any

from apex_platform.errors import PayloadError

DEFAULT_MAX_DEPTH = 64
#: the longest integer literal accepted (digits, sign not counted)
DEFAULT_MAX_INT_DIGITS = 100
_SHOWN = 40


def json_type(value: object) -> str:
    """The JSON name of a decoded value's type (`array`, `null` …), for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


class _Refused(Exception):
    """Raised by the decoding hooks; becomes a `PayloadError` naming the body."""


def _shown(literal: str) -> str:
    return literal if len(literal) <= _SHOWN else literal[:_SHOWN] + "…"


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


def decode_json(
    body: bytes,
    *,
    what: str,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_int_digits: int = DEFAULT_MAX_INT_DIGITS,
) -> Any:
    """`body` as a JSON value, or `PayloadError` naming `what` ("Front webhook body") and the fault."""
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
        # json's own limit is the interpreter's recursion limit: name whichever is lower
        limit = min(max_depth, sys.getrecursionlimit())
        raise PayloadError(f"{what} nests deeper than {limit} levels") from None
    except ValueError as exc:  # nothing known reaches here; still the client's body, never a 500
        raise PayloadError(f"{what} is not valid JSON: {exc}") from None
    if _may_break_structure(text, max_depth):
        check_json_structure(doc, what=what, max_depth=max_depth)
    return doc


#: the start of a `\\u` escape of a UTF-16 surrogate (D800-DFFF), upper or lower case
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")


def _may_break_structure(text: str, max_depth: int) -> bool:
    """Whether the document decoded from `text` could fail `check_json_structure`; when
    not, walking every value of it (the costliest part of decoding a webhook) is skipped.

    A decoded string can hold a surrogate only through a `\\uD800`-`\\uDFFF` escape: `text`
    is valid UTF-8, and UTF-8 has no surrogates. Each array or object opens with a `[` or
    `{` of `text` (those inside strings only add to the count), so a document with at most
    `max_depth` of them cannot nest deeper. Either test may answer "could" in vain (an
    escaped backslash before `u`, brackets inside strings): the walk then decides.
    """
    if "\\u" in text and _SURROGATE_ESCAPE.search(text):
        return True
    return text.count("[") + text.count("{") > max_depth


def decode_json_object(
    body: bytes,
    *,
    what: str,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_int_digits: int = DEFAULT_MAX_INT_DIGITS,
) -> dict[str, Any]:
    """`decode_json`, and the body must be a JSON object."""
    doc = decode_json(body, what=what, max_depth=max_depth, max_int_digits=max_int_digits)
    if not isinstance(doc, dict):
        raise PayloadError(f"{what} must be a JSON object, got {json_type(doc)}")
    return doc


def check_json_structure(doc: object, *, what: str, max_depth: int = DEFAULT_MAX_DEPTH) -> None:
    """Refuse nesting deeper than `max_depth` and strings or keys with unpaired surrogates.

    For documents decoded elsewhere (e.g. `httpx.Response.json()`). Iterative, so a deep
    document cannot exhaust the recursion of the check itself.
    """
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


def _check_string(value: str, what: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise PayloadError(f"{what} contains an unpaired UTF-16 surrogate escape") from None


#: what a redacted value becomes in a stored body
REDACTED = "[redacted]"


def redact_json_keys(body: bytes, keys: frozenset[str], *, what: str) -> bytes:
    """`body` with every string under one of `keys` (at any depth, in lists and objects
    under it too) replaced by `REDACTED`; the body itself when none is there.

    For what the inbox keeps of a delivery (a connector's `redacted_keys`): a value such
    as Plaid's `public_token` can be exchanged for an access token and must not be kept.
    A redacted body is re-encoded compactly as UTF-8 (valid, strict JSON); the rest of the
    content is unchanged. A body that does not decode strictly raises `PayloadError`
    (it is not stored: nothing could say it holds no secret).
    """
    if not keys:
        return body
    doc = decode_json(body, what=what, max_depth=10_000)
    changed = False
    stack: list[tuple[Any, bool]] = [(doc, False)]
    while stack:
        value, hidden = stack.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                if (hidden or key in keys) and isinstance(item, str):
                    value[key] = REDACTED
                    changed = True
                else:
                    stack.append((item, hidden or key in keys))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if hidden and isinstance(item, str):
                    value[index] = REDACTED
                    changed = True
                else:
                    stack.append((item, hidden))
    if not changed:
        return body
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")
