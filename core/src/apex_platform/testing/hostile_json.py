"""Hostile JSON for property tests of the strict decoder and of every connector's receive.

`HOSTILE` lists literals that a lenient decoder accepts or chokes on, with the words the
refusal of `apex_platform.payloads.decode_json` must contain. `hostile_bodies(docs)`
(hypothesis) puts one of them at a random place of a real body: as a value anywhere in
the document, or as a key. Needs `hypothesis` (the `testing` extra).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from typing import Any

from hypothesis import strategies as st

from apex_platform.testing.mutations import json_paths

# random per process: no generated document can hold them already (hypothesis draws the
# string constants of the code it tests)
_TAG = secrets.token_hex(8)
_MARK = f"\x00apex-hostile-{_TAG}\x00"
_MEMBER = f"apex-hostile-member-{_TAG}"
_VALUE = f"apex-hostile-value-{_TAG}"

#: name → (raw JSON literal, a phrase the refusal names)
HOSTILE: dict[str, tuple[bytes, str]] = {
    "overflowing exponent": (b"1e999", "number out of range"),
    "negative overflow": (b"-1.5E400", "number out of range"),
    "integer of 5,000 digits": (b"9" * 5000, "integer of 5000 digits"),
    "integer just over the limit": (b"-" + b"1" * 101, "integer of 101 digits"),
    "NaN literal": (b"NaN", "NaN is not valid JSON"),
    "Infinity literal": (b"-Infinity", "Infinity is not valid JSON"),
    "lone high surrogate": (b'"a\\ud800b"', "unpaired UTF-16 surrogate"),
    "lone low surrogate": (b'"\\udfff"', "unpaired UTF-16 surrogate"),
    "reversed pair": (b'"\\ude00\\ud83d"', "unpaired UTF-16 surrogate"),
    "duplicate keys": (b'{"k": 1, "k": 2}', "twice in one object"),
    "surrogate in a key": (b'{"\\ud800": 1}', "unpaired UTF-16 surrogate"),
}


def inject(doc: dict[str, Any], path: tuple[Any, ...], literal: bytes, *, as_member: bool = False) -> bytes:
    """`doc` as JSON with the value at `path` replaced by the raw `literal`. With
    `as_member`, the literal is added as a member of the object at `path` (or of the top
    object) instead: an object literal's members are spliced in, another literal becomes
    the value of a new key."""
    copy: Any = json.loads(json.dumps(doc))
    parent: Any = None
    target: Any = copy
    for part in path:
        parent, target = target, target[part]
    marker = json.dumps(_MARK).encode()
    if as_member or not path:
        holder = target if isinstance(target, dict) else copy
        holder[_MEMBER] = _MARK
        text = json.dumps(copy, ensure_ascii=False).encode()
        members = literal[1:-1] if literal.startswith(b"{") else json.dumps(_VALUE).encode() + b": " + literal
        return text.replace(json.dumps(_MEMBER).encode() + b": " + marker, members)
    parent[path[-1]] = _MARK
    return json.dumps(copy, ensure_ascii=False).encode().replace(marker, literal)


@st.composite
def hostile_bodies(draw: st.DrawFn, docs: Sequence[dict[str, Any]]) -> tuple[bytes, str, str]:
    """(body, hostile name, phrase the refusal must contain): a real body with one hostile literal."""
    doc = draw(st.sampled_from(list(docs)))
    name = draw(st.sampled_from(sorted(HOSTILE)))
    literal, phrase = HOSTILE[name]
    path = draw(st.sampled_from(json_paths(doc)))
    as_member = draw(st.booleans())
    return inject(doc, path, literal, as_member=as_member), name, phrase
