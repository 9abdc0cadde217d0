"""Turvo timestamps (ISO 8601 strings, sometimes epoch numbers) as integer microseconds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Seconds past this are milliseconds (2286-11-20 in seconds); a real time is never that far.
_MS_THRESHOLD = 10_000_000_000
_MAX_SECONDS = 253_402_300_799  # 9999-12-31


def to_us(value: object) -> int | None:
    """Microseconds since the epoch of an ISO string or epoch number, or None when not a time."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        seconds = float(value) / 1000 if abs(value) >= _MS_THRESHOLD else float(value)
        if not 0 <= seconds <= _MAX_SECONDS:
            return None
        return round(seconds * 1_000_000)
    if isinstance(value, str):
        text = value.strip()
        if not text or len(text) > 64:
            return None
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)  # Turvo sends UTC unless it says otherwise
        return (parsed - EPOCH) // timedelta(microseconds=1)
    if isinstance(value, dict):
        # Turvo wraps many dates as {"date": "...", "timeZone": "..."}
        return to_us(value.get("date"))
    return None


def from_us(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def iso(us: int | None) -> str | None:
    return None if us is None else from_us(us).isoformat().replace("+00:00", "Z")
