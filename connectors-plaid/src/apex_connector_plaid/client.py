"""HTTP calls to Plaid: `/transactions/sync` (async) and `/webhook_verification_key/get` (sync)."""

from __future__ import annotations

import json
from typing import Any

import httpx
from tenacity import wait_exponential, wait_random

from apex_connector_plaid.plaid_errors import PlaidError, to_exception
from apex_connector_plaid.settings import PlaidSettings
from apex_platform.errors import SignatureError, VendorError, VerificationUnavailable
from apex_platform.payloads import decode_json_object
from apex_platform.vendor_http import TransientFailure, parse_retry_after, redact, retry_transient

SYNC_PATH = "/transactions/sync"
KEY_PATH = "/webhook_verification_key/get"
_USER_AGENT = "apex-connector-plaid/0.1"
#: Plaid does not document a Retry-After; one that is sent is honoured up to an hour
_MAX_RETRY_AFTER = 3600.0


def _credentials(settings: PlaidSettings, item_id: str | None = None) -> tuple[str, str]:
    where = f"plaid item {item_id}: " if item_id else "plaid: "
    if not settings.client_id or settings.secret is None:
        raise VendorError(
            f"{where}APEX_PLAID_CLIENT_ID and APEX_PLAID_SECRET must be set to call Plaid", retryable=False
        )
    return settings.client_id, settings.secret.get_secret_value()


async def transactions_sync(
    settings: PlaidSettings,
    item_id: str,
    access_token: str,
    cursor: str,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> dict[str, Any]:
    """One `/transactions/sync` page as decoded JSON.

    Connection failures and 5xx answers get two quick retries here; what is left becomes
    a `VendorError` (or `RestartPagination`) for the workflow to act on.
    """
    client_id, secret = _credentials(settings, item_id)
    body = {
        "client_id": client_id,
        "secret": secret,
        "access_token": access_token,
        "cursor": cursor,
        "count": settings.page_size,
    }
    hidden = (secret, access_token)
    url = settings.base_url + SYNC_PATH

    async with httpx.AsyncClient(
        timeout=settings.timeout_seconds, transport=transport, headers={"User-Agent": _USER_AGENT}
    ) as http:

        async def once() -> dict[str, Any]:
            try:
                resp = await http.post(url, json=body)
            except httpx.HTTPError as exc:
                # httpx messages hold the URL at most, never the request body.
                raise TransientFailure(
                    VendorError(
                        f"plaid item {item_id}: POST {SYNC_PATH} at {settings.base_url} failed: "
                        f"{type(exc).__name__}: {redact(str(exc), hidden)}",
                        retryable=True,
                    )
                ) from None
            if resp.status_code == 200:
                # the strict decoder of the edges: a lone surrogate, 1e999, NaN, a duplicate key
                # or a 5,000-digit integer is refused naming it (resp.json() let them through,
                # and a lone surrogate then crashed the record builders)
                return decode_json_object(resp.content, what=f"plaid item {item_id}: {SYNC_PATH} answer (200)")
            error = to_exception(
                PlaidError.from_response(resp.status_code, resp.content),
                item_id=item_id,
                endpoint=SYNC_PATH,
                retry_after=parse_retry_after(resp.headers.get("retry-after"), default=None, cap=_MAX_RETRY_AFTER),
                default_backoff=settings.rate_limit_backoff_seconds,
                secrets=hidden,
            )
            if resp.status_code >= 500:
                raise TransientFailure(error)
            raise error

        return await retry_transient(
            once, attempts=3, wait=wait_exponential(multiplier=0.2, max=2.0) + wait_random(0, 0.2)
        )


def fetch_verification_key(
    settings: PlaidSettings, key_id: str, *, transport: httpx.BaseTransport | None = None
) -> dict[str, Any] | None:
    """The JWK for `key_id`, or None when Plaid does not know that key id.

    Synchronous on purpose: `verify` is synchronous in the connector protocol. The call
    has a short timeout and runs once per key id (keys are cached by the caller).
    """
    if not settings.client_id or settings.secret is None:
        raise SignatureError(
            "Plaid webhook rejected: APEX_PLAID_CLIENT_ID and APEX_PLAID_SECRET are needed to fetch "
            "the webhook verification key"
        )
    body = {"client_id": settings.client_id, "secret": settings.secret.get_secret_value(), "key_id": key_id}
    try:
        with httpx.Client(
            timeout=settings.key_fetch_timeout_seconds, transport=transport, headers={"User-Agent": _USER_AGENT}
        ) as http:
            resp = http.post(settings.base_url + KEY_PATH, json=body)
    except httpx.HTTPError as exc:
        raise VerificationUnavailable(
            f"Plaid webhook not verified yet: could not fetch verification key {key_id!r} from "
            f"{settings.base_url}: {type(exc).__name__}; send it again"
        ) from None
    if resp.status_code != 200:
        error = PlaidError.from_response(resp.status_code, resp.content)
        if error.error_code == "INVALID_API_KEYS":
            raise SignatureError(
                "Plaid webhook rejected: Plaid refused APEX_PLAID_CLIENT_ID / APEX_PLAID_SECRET while fetching "
                f"the verification key (INVALID_API_KEYS at {settings.base_url})"
            )
        if resp.status_code in (400, 404):
            return None  # Plaid does not know this key id
        if resp.status_code == 429 or resp.status_code >= 500:
            retry_after = parse_retry_after(resp.headers.get("retry-after"), default=None, cap=_MAX_RETRY_AFTER)
            raise VerificationUnavailable(
                f"Plaid webhook not verified yet: {KEY_PATH} answered HTTP {resp.status_code} "
                f"{error.error_code or ''}".rstrip()
                + "; send it again",
                retry_after=retry_after if retry_after is not None else 10.0,
            )
        raise SignatureError(
            f"Plaid webhook rejected: {KEY_PATH} answered HTTP {resp.status_code} {error.error_code or ''}".rstrip()
        )
    try:
        doc = json.loads(resp.content)
    except ValueError:
        raise SignatureError(f"Plaid webhook rejected: {KEY_PATH} answered with a body that is not JSON") from None
    key = doc.get("key") if isinstance(doc, dict) else None
    if not isinstance(key, dict):
        raise SignatureError(f"Plaid webhook rejected: {KEY_PATH} answered without a 'key' object")
    return key
