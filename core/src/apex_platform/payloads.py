"""Strict decoding of JSON bodies from the outside (webhooks, vendor answers) into what
the platform can carry on, with a `PayloadError` that says exactly what is wrong.

Strict means: UTF-8 only; no NaN or Infinity (Python's json accepts them, they are not
JSON and cannot be re-encoded strictly); no nesting deeper than `max_depth` (a hostile
body could exhaust the recursion of the encoders that carry it through Temporal); no
unpaired UTF-16 surrogate escapes ("\\ud800" decodes to a string no store accepts).
"""

from __future__ import annotations

import json
from typing import Any

from apex_platform.errors import PayloadError

DEFAULT_MAX_DEPTH = 64


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


def decode_json_object(body: bytes, *, what: str, max_depth: int = DEFAULT_MAX_DEPTH) -> dict[str, Any]:
    """`body` as a JSON object, or `PayloadError` naming `what` ("Front webhook body") and the fault."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(f"{what} is not UTF-8 (invalid byte at offset {exc.start})") from None
    if not text.strip():
        raise PayloadError(f"{what} is empty; expected a JSON object")
    try:
        doc = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise PayloadError(f"{what} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise PayloadError(f"{what} nests deeper than {max_depth} levels") from None
    except ValueError as exc:  # NaN/Infinity, or an integer with thousands of digits
        raise PayloadError(f"{what} is not valid JSON: {exc}") from None
    check_json_structure(doc, what=what, max_depth=max_depth)
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


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")
