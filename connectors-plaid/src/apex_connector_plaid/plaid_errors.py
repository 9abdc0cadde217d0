"""Plaid's error responses turned into the errors the poll workflow acts on.

Plaid answers errors with HTTP 400/401/404/429/5xx and a JSON body
`{error_type, error_code, error_message, display_message, request_id}`
(https://plaid.com/docs/errors/).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from apex_platform.errors import RestartPagination, VendorError
from apex_platform.vendor_http import redact

MUTATION_DURING_PAGINATION = "TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION"

#: error types whose cause is on Plaid's or the bank's side: trying again later can help
_RETRYABLE_TYPES = {"API_ERROR", "INSTITUTION_ERROR", "RATE_LIMIT_EXCEEDED"}
#: retryable codes inside otherwise permanent types
_RETRYABLE_CODES = {"PRODUCT_NOT_READY", "INTERNAL_SERVER_ERROR", "PLANNED_MAINTENANCE"}
_MAX_TEXT = 300


@dataclass(frozen=True)
class PlaidError:
    status: int
    error_type: str
    error_code: str
    error_message: str
    request_id: str

    @classmethod
    def from_response(cls, status: int, body: bytes) -> PlaidError:
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            doc = None
        if not isinstance(doc, dict):
            return cls(status, "", "", "", "")

        def text(key: str) -> str:
            value = doc.get(key)
            return value[:_MAX_TEXT] if isinstance(value, str) else ""

        return cls(status, text("error_type"), text("error_code"), text("error_message"), text("request_id"))

    @property
    def retryable(self) -> bool:
        if self.status == 429 or self.status >= 500:
            return True
        return self.error_type in _RETRYABLE_TYPES or self.error_code in _RETRYABLE_CODES


def to_exception(
    error: PlaidError,
    *,
    item_id: str,
    endpoint: str,
    retry_after: float | None,
    default_backoff: float,
    secrets: Iterable[str] = (),
) -> Exception:
    """The exception `poll` raises for one Plaid error answer."""
    code = error.error_code or f"HTTP {error.status}"
    detail = f"{error.error_type}/{code}" if error.error_type else code
    what = redact(error.error_message, secrets)
    rid = f" (request_id {error.request_id})" if error.request_id else ""
    message = f"plaid item {item_id}: POST {endpoint} failed: HTTP {error.status} {detail}"
    if what:
        message += f": {what}"
    message += rid
    if error.error_code == MUTATION_DURING_PAGINATION:
        return RestartPagination(message)
    if error.status == 429 or error.error_type == "RATE_LIMIT_EXCEEDED":
        return VendorError(message, retryable=True, retry_after=retry_after or default_backoff)
    if error.retryable:
        return VendorError(message, retryable=True, retry_after=retry_after)
    hint = _HINTS.get(error.error_code)
    return VendorError(message + (f" — {hint}" if hint else ""), retryable=False)


_HINTS = {
    "ITEM_LOGIN_REQUIRED": "the user must re-authenticate this Item through Link update mode",
    "INVALID_ACCESS_TOKEN": "check the Item's token in APEX_PLAID_ACCESS_TOKENS (or the token provider)",
    "INVALID_API_KEYS": "check APEX_PLAID_CLIENT_ID and APEX_PLAID_SECRET for this APEX_PLAID_BASE_URL",
    "ITEM_NOT_FOUND": "the Item was removed at Plaid; drop it from the configuration",
}
