"""What is embedded for a record: its title, its text and a few attributes, as one string."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

from apex_platform.models import Record


def _value(value: object) -> str | None:
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list | tuple):
        parts = [p for p in (_value(v) for v in value[:20]) if p]
        return ", ".join(parts) or None
    return None


def embedding_input(record: Record, fields: Sequence[str], max_chars: int) -> str:
    """Title, text and `field: value` lines for the chosen attributes, NFC-normalised.

    Empty when the record has neither title nor text: attributes alone get no embedding.
    """
    title, text = record.title.strip(), record.text.strip()
    if not title and not text:
        return ""
    parts = [p for p in (title, text) if p]
    for name in fields:
        value = _value(record.attributes.get(name))
        if value:
            parts.append(f"{name}: {value}")
    joined = unicodedata.normalize("NFC", "\n".join(parts))
    return joined[:max_chars]
