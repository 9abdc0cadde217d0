"""Malformed variants of a valid JSON body, for the totality checks of `receive` and `parse`.

Deterministic (the same body gives the same variants in the same order), so a failure
names a variant that fails again: each value removed, nulled or of the wrong type, each
container emptied, the hostile literals of `hostile_json` spliced in, and bodies that
are not a JSON object at all.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from apex_platform.testing.hostile_json import HOSTILE, inject

#: bodies that are not a JSON object: (description, body)
NOT_AN_OBJECT: tuple[tuple[str, bytes], ...] = (
    ("an empty body", b""),
    ("whitespace", b"  \n"),
    ("not JSON", b"this is not json"),
    ("invalid UTF-8", b'{"a": "\xff\xfe"}'),
    ("JSON null", b"null"),
    ("a JSON array", b"[]"),
    ("a JSON string", b'"text"'),
    ("a JSON number", b"42"),
    ("an empty object", b"{}"),
    ("an object nested 10,000 deep", b'{"a":' * 10_000 + b"1" + b"}" * 10_000),
)


def _path_text(path: tuple[Any, ...]) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


def _wrong_type(value: Any) -> Any:
    if isinstance(value, bool):
        return "true"
    if isinstance(value, int | float):
        return "not a number"
    if isinstance(value, str):
        return 12345
    if isinstance(value, list):
        return {"not": "a list"}
    if isinstance(value, dict):
        return ["not", "an", "object"]
    return {"unexpected": True}


def _replaced(doc: Any, path: tuple[Any, ...], value: Any, *, delete: bool = False) -> Any:
    copy = json.loads(json.dumps(doc))
    target = copy
    for part in path[:-1]:
        target = target[part]
    if delete:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return copy


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*prefix, key), item
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value[:3]):  # the first items stand for the rest
            yield (*prefix, index), item
            yield from _paths(item, (*prefix, index))


def variants(body: bytes, *, limit: int = 250, hostile: bool = True) -> list[tuple[str, bytes]]:
    """(what was done, malformed body) for `body`, at most `limit` of them, spread over
    the whole document when it has more paths than that. `hostile=False` leaves out what
    the platform's strict JSON decoder refuses (NaN, overflowing numbers, lone surrogates,
    duplicate keys): the variants of a document that was decoded already."""
    out: list[tuple[str, bytes]] = list(NOT_AN_OBJECT)
    out.append(("the body cut in half", body[: len(body) // 2]))
    try:
        doc = json.loads(body)
    except ValueError:
        return out
    if not isinstance(doc, dict):
        return out
    for name, (literal, _) in sorted(HOSTILE.items()) if hostile else ():
        out.append((f"{name} added to the top object", inject(doc, (), literal, as_member=True)))
    per_path: list[tuple[str, bytes]] = []
    for path, value in _paths(doc):
        where = _path_text(path)

        def encode(new: Any) -> bytes:
            return json.dumps(new, ensure_ascii=False).encode("utf-8")

        if isinstance(path[-1], str):
            per_path.append((f"{where} removed", encode(_replaced(doc, path, None, delete=True))))
        per_path.append((f"{where} set to null", encode(_replaced(doc, path, None))))
        per_path.append((f"{where} of the wrong type", encode(_replaced(doc, path, _wrong_type(value)))))
        if isinstance(value, dict | list) and value:
            per_path.append((f"{where} emptied", encode(_replaced(doc, path, type(value)()))))
        if isinstance(value, str):
            per_path.append((f"{where} 100,000 characters long", encode(_replaced(doc, path, value[:1] * 100_000))))
            if hostile:
                literal, _ = HOSTILE["lone high surrogate"]
                per_path.append((f"{where} an unpaired surrogate", inject(doc, path, literal)))
        if isinstance(value, int | float) and not isinstance(value, bool):
            if hostile:
                literal, _ = HOSTILE["overflowing exponent"]
                per_path.append((f"{where} an overflowing number", inject(doc, path, literal)))
            per_path.append((f"{where} negative", encode(_replaced(doc, path, -abs(value) - 1))))
            per_path.append((f"{where} huge", encode(_replaced(doc, path, 10**30))))
    room = max(0, limit - len(out))
    if len(per_path) > room and room:
        step = len(per_path) / room
        per_path = [per_path[int(i * step)] for i in range(room)]
    return out + per_path[:room]
