"""What may be stored as a graph property, and how entity references are read.

Both backends store only primitives and lists of primitives of one type as
properties (no maps, no nulls, no mixed lists), and both hold 64-bit integers.
Anything else an entity or relation carries is stored as its JSON text; the
record itself keeps every value exactly, in `record_json`.

No parameter may hold a NUL character (FalkorDB's query text ends there) or a lone
surrogate (no UTF-8 form, for either backend). The record's JSON escapes both, so
`record_json` keeps them exactly; the properties stored for search and display (the
record's `title`, entity and relation properties, their names included) hold a
sanitised copy, each NUL and lone surrogate replaced by U+FFFD (`clean_value`); in what
names a record or an entity (record id and kind, entity keys, relation ends) they are
refused (`check_identity`): a replacement would name another one.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from apex_platform.errors import SinkError

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

#: Labels and relationship types are written into the Cypher text (they cannot be
#: parameters), so only this shape is accepted, and it is backtick-quoted as well.
NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
MAX_NAME = 64

#: Longest entity key, as `Entity.key` allows. Relation ends follow the same limit:
#: FalkorDB's range index silently misses strings over 4,096 bytes (MERGE would then
#: duplicate the node) and Neo4j's index refuses keys over about 8 kB; 512 characters
#: are at most 2,048 bytes of UTF-8.
MAX_KEY = 512

#: The sink's own label and relationship type: entities and relations may not use them.
RECORD_LABEL = "Record"
MENTIONS = "MENTIONS"


def quote_name(name: str) -> str:
    """`name` as a backtick-quoted Cypher label or relationship type, after validation."""
    check_name(name, "label")
    return f"`{name}`"


def check_name(name: str, what: str) -> str:
    if not isinstance(name, str) or len(name) > MAX_NAME or not NAME.fullmatch(name):
        raise SinkError(f"{what} {_label(name)} is not a name like Shipment or CARRIED_BY ([A-Za-z][A-Za-z0-9_]*)")
    return name


def parse_ref(ref: str) -> tuple[str, str]:
    """`"Type:key"` -> `("Type", "key")`; the key is everything after the first colon."""
    label, sep, key = ref.partition(":")
    if not sep or not key:
        raise SinkError(f"entity reference {_label(ref)} is not of the form Type:key")
    if len(key) > MAX_KEY:
        raise SinkError(f"entity reference {_label(ref)} has a key longer than {MAX_KEY} characters")
    return entity_label(label), key


def entity_label(name: str) -> str:
    """An entity type fit to be a label: a valid name other than the records' own label."""
    check_name(name, "entity type")
    if name == RECORD_LABEL:
        raise SinkError(f"entity type {RECORD_LABEL!r} is reserved for record nodes")
    return name


def property_value(value: Any) -> Any:
    """`value` as a storable property, or None to leave it out (null is not storable)."""
    if value is None:
        return None
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value if INT64_MIN <= value <= INT64_MAX else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else json.dumps(value)
    if isinstance(value, list | tuple):
        kinds = {_scalar_kind(item) for item in value}
        if len(kinds) <= 1 and None not in kinds:
            return list(value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)


def _scalar_kind(item: Any) -> type | None:
    if isinstance(item, bool | str):
        return type(item)
    if isinstance(item, int) and INT64_MIN <= item <= INT64_MAX:
        return int
    if isinstance(item, float) and math.isfinite(item):
        return float
    return None


def flatten(
    properties: Mapping[str, Any], reserved: frozenset[str], reserved_prefix: str | None = None
) -> dict[str, Any]:
    """The storable properties of an entity or relation.

    Left out: null values, names the sink uses itself (`reserved`, and names starting
    with `reserved_prefix`), and names that are empty or contain a backtick (FalkorDB's
    parameter syntax cannot carry those).
    """
    flat: dict[str, Any] = {}
    for name, value in properties.items():
        if not isinstance(name, str) or not name or "`" in name or name in reserved:
            continue
        if reserved_prefix is not None and name.startswith(reserved_prefix):
            continue
        stored = property_value(value)
        if stored is not None:
            flat[name] = stored
    return flat


#: How much of a name or reference a message quotes.
LABEL_WIDTH = 80


def _label(name: Any) -> str:
    """A name, key or reference for a message: repr (so NUL and lone surrogates are
    escaped, never copied into the message), at most `LABEL_WIDTH` characters of it."""
    text = name if isinstance(name, str) else str(name)
    return repr(text[:LABEL_WIDTH]) + ("..." if len(text) > LABEL_WIDTH else "")


def _text_problem(value: Any, path: str, *, nul: bool = True) -> str | None:
    if isinstance(value, str):
        if nul and "\x00" in value:
            return f"{path}: text contains a NUL character, which the graph cannot store"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return f"{path}: text is not valid Unicode (lone surrogate)"
    elif isinstance(value, Mapping):
        for key, item in value.items():
            problem = _text_problem(key, f"{path}: property name {_label(key)}", nul=nul) or _text_problem(
                item, f"{path}[{_label(key)}]", nul=nul
            )
            if problem:
                return problem
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            problem = _text_problem(item, f"{path}[{index}]", nul=nul)
            if problem:
                return problem
    return None


def check_text(value: Any, where: str, path: str = "value") -> None:
    """Refuse strings a graph parameter cannot carry: NUL characters (FalkorDB's query
    text ends there) and lone surrogates (not UTF-8). The message names `path` (e.g.
    `title`, `entity Shipment properties['note']`), never the offending text."""
    problem = _text_problem(value, path)
    if problem:
        raise SinkError(f"{where}: {problem}")


def check_unicode(value: Any, where: str, path: str = "value") -> None:
    """Refuse lone surrogates anywhere (they have no UTF-8 form, so neither the record's
    JSON nor its hash can be made); NUL characters are left to `check_text`."""
    problem = _text_problem(value, path, nul=False)
    if problem:
        raise SinkError(f"{where}: {problem}")


def _finite_problem(value: Any, path: str) -> str | None:
    if isinstance(value, float):
        if not math.isfinite(value):
            return f"{path}: {value} cannot be stored (not a finite number)"
    elif isinstance(value, Mapping):
        for key, item in value.items():
            problem = _finite_problem(item, f"{path}[{_label(key)}]")
            if problem:
                return problem
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            problem = _finite_problem(item, f"{path}[{index}]")
            if problem:
                return problem
    return None


def check_finite(value: Any, where: str, path: str = "value") -> None:
    """Refuse NaN and infinities: JSON has no spelling for them, so `record_json` could not
    give the record back equal. The message names `path` (e.g. `attributes['x']`)."""
    problem = _finite_problem(value, path)
    if problem:
        raise SinkError(f"{where}: {problem}")


#: What a NUL or a lone surrogate becomes in a sanitised copy.
REPLACEMENT = "\ufffd"


def is_clean(text: str) -> bool:
    """Whether a graph parameter can carry `text` as it is (no NUL, valid UTF-8)."""
    return _text_problem(text, "") is None


def clean(text: str) -> str:
    """`text` with every NUL and every lone surrogate replaced by U+FFFD."""
    if is_clean(text):
        return text
    return "".join(REPLACEMENT if c == "\x00" or 0xD800 <= ord(c) <= 0xDFFF else c for c in text)


def clean_value(value: Any) -> Any:
    """`value` with every string `clean`ed, dictionary keys included. Two keys that only
    differ by what was replaced keep the value of the one that needed no replacing
    (else of the first)."""
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, Mapping):
        cleaned: dict[Any, Any] = {}
        exact = {key for key in value if not isinstance(key, str) or is_clean(key)}
        for key, item in value.items():
            name = clean(key) if isinstance(key, str) else key
            if key in exact:
                cleaned[name] = clean_value(item)
            elif name not in exact:
                cleaned.setdefault(name, clean_value(item))
        return cleaned
    if isinstance(value, list | tuple):
        return [clean_value(item) for item in value]
    return value


def check_identity(value: str, where: str, path: str) -> None:
    """Refuse a NUL character or a lone surrogate in what names a record or an entity:
    no parameter can carry it, and a replacement character would name another one."""
    problem = _text_problem(value, path)
    if problem:
        raise SinkError(f"{where}: {problem}, and a replacement character would change the identity")


def shown(text: str) -> str:
    """`text` for a message: as it is when clean, else with NUL and surrogates escaped."""
    return text if is_clean(text) else text.encode("unicode_escape").decode("ascii")
