"""What PostgreSQL cannot hold as it is, and how the sink keeps it anyway.

PostgreSQL `text` and `jsonb` refuse the NUL character (`jsonb` refuses even its
escape, `\\u0000`), and UTF-8 has no form for a lone surrogate (`\\ud800`; `jsonb`
refuses its escape too). So:

- the record itself (`records.record`, dead-letter payloads) is kept faithfully: as
  plain `jsonb` when it holds neither, else in the envelope
  `{"encoding": "json+base64", "data": base64(JSON with ASCII escapes, keys sorted)}`
  (`encode_payload`), which `decode_payload` turns back into the same JSON values —
  deterministic, so an identical rewrite stores the identical envelope;
- copies kept for search and display (`title`, `text`, `attributes`, `entities`,
  `relations`, dead-letter keys and errors) are sanitised: every NUL and every lone
  surrogate becomes U+FFFD (`clean`).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

#: How a value jsonb cannot hold is kept: `{"encoding": ENCODED, "data": base64(JSON)}`.
ENCODED = "json+base64"
#: What a NUL or a lone surrogate becomes in a sanitised copy.
REPLACEMENT = "\ufffd"


def encode_payload(payload: Mapping[str, Any]) -> dict[str, str]:
    """A reversible encoding for JSON values with NUL characters or lone surrogates:
    their JSON with `\\u0000` and `\\ud800` kept as escapes (pure ASCII), in base64. Keys
    are sorted, so equal values give equal envelopes."""
    raw = json.dumps(dict(payload), ensure_ascii=True, allow_nan=False, sort_keys=True, separators=(",", ":"))
    return {"encoding": ENCODED, "data": base64.b64encode(raw.encode("ascii")).decode("ascii")}


def decode_payload(stored: Any) -> Any:
    """`stored` as it was before `encode_payload` (anything else is returned as it is).
    Parsed by the stdlib `json`, which gives lone surrogates back (pydantic's parser refuses them)."""
    if isinstance(stored, dict) and stored.get("encoding") == ENCODED and isinstance(stored.get("data"), str):
        return json.loads(base64.b64decode(stored["data"], validate=True))
    return stored


def is_clean(text: str) -> bool:
    """Whether PostgreSQL text can hold `text` as it is (no NUL, valid UTF-8)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def clean(text: str) -> str:
    """`text` with every NUL and every lone surrogate replaced by U+FFFD."""
    if is_clean(text):
        return text
    text = text.replace("\x00", REPLACEMENT)
    return "".join(REPLACEMENT if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)


def clean_value(value: Any) -> Any:
    """A JSON value with every string (keys included) `clean`ed. Two keys that only
    differ by what was replaced keep the value of the one that needed no replacing
    (else of the first)."""
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, dict):
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


def problem(value: Any) -> str | None:
    """What PostgreSQL text cannot hold in the string `value`: None if nothing."""
    if "\x00" in value:
        return "a NUL character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "a lone surrogate"
    return None


def shown(text: str) -> str:
    """`text` for a message: as it is when clean, else with NUL and surrogates escaped."""
    return text if is_clean(text) else text.encode("unicode_escape").decode("ascii")
