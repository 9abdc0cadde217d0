"""`intuit_tid`: the transaction id Intuit puts in a header of every answer. Intuit's
support asks for it, so every error about an answer of Intuit's ends with it."""

from __future__ import annotations

import httpx

_MAX_TID = 100


def intuit_tid(resp: httpx.Response | None) -> str | None:
    """The `intuit_tid` header of an Intuit answer (its transaction id), or None."""
    value = resp.headers.get("intuit_tid") if resp is not None else None
    if not value:
        return None
    shown = "".join(ch for ch in value.strip()[:_MAX_TID] if ch.isprintable())
    return shown or None


def tid_note(tid: str | None) -> str:
    """` (intuit_tid …)`, the suffix of every message about an Intuit answer; "" without one."""
    return f" (intuit_tid {tid})" if tid else ""
