"""The calls to QuickBooks Online (change data capture and the query API), and
QuickBooks' faults as `VendorError`s.

A fault looks like `{"Fault": {"Error": [{"Message", "Detail", "code", "element"}],
"type": "ValidationFault"}, "time": …}` and may come with any status, 200 included.
429 and 5xx are retryable (5xx and connection failures get two quick retries in the
call first); a 401 refreshes the access token once and tries again; what is left is
non-retryable. Messages name the source, the company and the endpoint, never a token,
and end with the answer's `intuit_tid` header: Intuit asks for it in every support case.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx
from tenacity import wait_random_exponential

from apex_connector_financial.intuit_tid import intuit_tid, tid_note
from apex_connector_financial.tokens import TokenManager
from apex_platform.errors import VendorError
from apex_platform.vendor_http import TransientFailure, parse_retry_after, retry_transient

_USER_AGENT = "apex-connector-financial/0.1"
_MAX_MESSAGE = 300
_MAX_WAIT = 3600.0
_QUICK_RETRY_WAIT = wait_random_exponential(multiplier=0.2, max=2.0)


@dataclass(frozen=True)
class Answer:
    """A decoded QuickBooks answer: the JSON object, the endpoint and the `intuit_tid` for messages."""

    doc: dict[str, Any]
    where: str
    tid: str | None = None

    def error(self, problem: str, *, retryable: bool) -> VendorError:
        return VendorError(f"{self.where}: {problem}{tid_note(self.tid)}", retryable=retryable)


def fault_of(doc: Any) -> str | None:
    """`type code: Message (Detail)` of a QuickBooks fault body, or None when there is none."""
    fault = doc.get("Fault") if isinstance(doc, dict) else None
    if not isinstance(fault, dict):
        return None
    parts: list[str] = []
    errors = fault.get("Error")
    for err in errors if isinstance(errors, list) else []:
        if isinstance(err, dict):
            bits = [str(err.get(k)) for k in ("code", "Message", "Detail") if isinstance(err.get(k), str | int)]
            parts.append(" ".join(bits))
    kind = fault.get("type") if isinstance(fault.get("type"), str) else "Fault"
    return f"{kind}: {'; '.join(parts) or 'no detail'}"[:_MAX_MESSAGE]


def error_for(resp: httpx.Response, text: str, *, where: str, default_wait: float) -> VendorError:
    try:
        doc: Any = json.loads(text) if text else None
    except ValueError:
        doc = None
    detail = fault_of(doc) or (text.strip().replace("\n", " ")[:_MAX_MESSAGE] or "no body")
    status = resp.status_code
    tid = tid_note(intuit_tid(resp))
    if status == 429:
        wait = parse_retry_after(resp.headers.get("retry-after"), default=default_wait, cap=_MAX_WAIT)
        return VendorError(
            f"{where}: QuickBooks throttled the call (429, {detail}); retry in {wait:g}s{tid}",
            retryable=True,
            retry_after=wait,
        )
    if status == 401:
        return VendorError(
            f"{where}: QuickBooks rejected the access token even after a refresh (401, {detail}). The app may "
            f"have been disconnected from this company: reconnect it and update APEX_FINANCIAL_REFRESH_TOKENS{tid}",
            retryable=False,
        )
    if status == 403:
        return VendorError(
            f"{where}: QuickBooks refused the call (403, {detail}); the app needs the accounting scope{tid}",
            retryable=False,
        )
    if status >= 500 or status == 408:
        return VendorError(f"{where}: QuickBooks server error {status} ({detail}){tid}", retryable=True)
    return VendorError(f"{where}: QuickBooks answered {status} ({detail}){tid}", retryable=False)


class QboClient:
    def __init__(
        self,
        http: httpx.AsyncClient,
        tokens: TokenManager,
        realm: str,
        *,
        minor_version: int,
        rate_limit_backoff: float = 60.0,
        attempts: int = 3,
    ) -> None:
        self.http = http
        self.tokens = tokens
        self.realm = realm
        self.minor_version = minor_version
        self.rate_limit_backoff = rate_limit_backoff
        self.attempts = attempts

    def where(self, path: str) -> str:
        return f"financial {self.realm}: GET {path}"

    async def cdc(self, entities: list[str], changed_since: str) -> Answer:
        """`GET /v3/company/{realm}/cdc?entities=…&changedSince=…`: the decoded answer."""
        params = {"entities": ",".join(entities), "changedSince": changed_since}
        return await self._call(f"/v3/company/{self.realm}/cdc", params)

    async def query(self, statement: str) -> Answer:
        """`GET /v3/company/{realm}/query?query=<select statement>`: the decoded answer."""
        return await self._call(f"/v3/company/{self.realm}/query", {"query": statement})

    async def _call(self, path: str, params: dict[str, str]) -> Answer:
        params = {**params, "minorversion": str(self.minor_version)}
        where = self.where(path)
        return await retry_transient(
            lambda: self._authorised(path, params, where), attempts=self.attempts, wait=_QUICK_RETRY_WAIT
        )

    async def _authorised(self, path: str, params: dict[str, str], where: str) -> Answer:
        token = await self.tokens.access_token(self.realm, self.http)
        resp, text = await self._get(path, params, token, where)
        if resp.status_code == 401:
            # expired early or revoked: one fresh access token, one more try
            self.tokens.invalidate(self.realm, token)
            token = await self.tokens.access_token(self.realm, self.http)
            resp, text = await self._get(path, params, token, where)
        if resp.status_code >= 400:
            error = error_for(resp, text, where=where, default_wait=self.rate_limit_backoff)
            if resp.status_code >= 500:
                raise TransientFailure(error)
            raise error
        tid = intuit_tid(resp)
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise VendorError(
                f"{where}: QuickBooks' answer is not valid JSON ({exc}; {len(text)} characters, truncated or not "
                f"JSON){tid_note(tid)}",
                retryable=True,
            ) from exc
        fault = fault_of(doc)
        if fault is not None:  # QuickBooks may answer 200 with a fault in the body
            raise VendorError(
                f"{where}: QuickBooks answered with a fault ({fault}){tid_note(tid)}", retryable="SystemFault" in fault
            )
        if not isinstance(doc, dict):
            raise VendorError(
                f"{where}: QuickBooks' answer is a JSON {type(doc).__name__}, not an object{tid_note(tid)}",
                retryable=True,
            )
        return Answer(doc, where, tid)

    async def _get(self, path: str, params: dict[str, str], token: str, where: str) -> tuple[httpx.Response, str]:
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json", "User-Agent": _USER_AGENT}
        try:
            resp = await self.http.get(path, params=params, headers=headers)
            return resp, resp.text
        except httpx.TimeoutException as exc:
            raise TransientFailure(
                VendorError(f"{where}: QuickBooks did not answer in time ({type(exc).__name__})", retryable=True)
            ) from exc
        except httpx.TransportError as exc:
            raise TransientFailure(
                VendorError(f"{where}: cannot reach QuickBooks ({type(exc).__name__}: {exc})", retryable=True)
            ) from exc
