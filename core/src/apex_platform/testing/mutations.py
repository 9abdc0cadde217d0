"""Mutated vendor documents for property tests of a connector's parsing, and a guard
against hangs. Needs `hypothesis` (the `testing` extra).

- `json_paths(doc)`: every path into a JSON document (the root `()` first).
- `JSON_VALUES`: JSON values of every type, nested a little.
- `mutated_docs(doc)`: a real document with a few values replaced by others of any type,
  or removed (what a vendor's bug, a proxy or an API change might send).
- `deadline(seconds)`: `TimeoutError` when the block runs longer (SIGALRM; main thread only).
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hypothesis import strategies as st

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)


def json_paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into `value` (keys and list indexes), `prefix` (the root) first."""
    out = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            out += json_paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out += json_paths(item, (*prefix, index))
    return out


@st.composite
def mutated_docs(draw: st.DrawFn, original: Any) -> Any:
    """`original` (a copy) with one to four values replaced by any JSON value, or removed."""
    doc: Any = json.loads(json.dumps(original))
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(json_paths(doc)))
        value = draw(JSON_VALUES)
        if not path:
            doc = value
            continue
        parent = doc
        for part in path[:-1]:
            parent = parent[part]
        if draw(st.booleans()) and isinstance(parent, dict):
            parent.pop(path[-1], None)
        else:
            parent[path[-1]] = value
        if not isinstance(doc, dict):
            break
    return doc


@contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Raise `TimeoutError` in the block once it has run `seconds` seconds: a hang fails
    the test instead of stalling the run."""

    def hang(*_: object) -> None:
        raise TimeoutError(f"took more than {seconds}s: a hang")

    old = signal.signal(signal.SIGALRM, hang)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
