"""A fake Plaid API server for tests and the demo (Litestar, served by uvicorn).

It serves the documented shapes of:
- `POST /transactions/sync` `{client_id, secret, access_token, cursor, count}` →
  `{added, modified, removed, next_cursor, has_more, accounts, transactions_update_status, request_id}`
  from a scripted change log per Item (opaque cursors; a page never repeats a transaction);
- `POST /webhook_verification_key/get` `{client_id, secret, key_id}` → `{key: JWK, request_id}`;
- `POST /sandbox/item/fire_webhook` `{client_id, secret, access_token, webhook_code}`: posts a signed
  webhook to `FakePlaid.webhook_url`, as Plaid's sandbox does;
- Plaid's error bodies `{error_type, error_code, error_message, display_message, request_id}` with
  HTTP 400/429/500, on demand (`fail_on_call`, `mutation_on_page`), and slow answers (`stall_on_call`).

It signs webhooks the way Plaid does: a `Plaid-Verification` ES256 JWT with `kid` in its
header and `iat` and `request_body_sha256` in its claims, made with an EC P-256 key whose
public JWK the key endpoint serves. Not Plaid: nothing here talks to a bank.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from litestar import Litestar, Request, Response, post

from apex_platform.testing import vendor_server

Change = tuple[str, dict[str, Any]]  # ("added" | "modified" | "removed", transaction or {transaction_id, account_id})


@dataclass
class FakeItem:
    item_id: str
    access_token: str
    accounts: list[dict[str, Any]] = field(default_factory=list)
    log: list[Change] = field(default_factory=list)


@dataclass
class _Failure:
    on_call: int
    kind: str
    then: Callable[[], None] | None = None


@dataclass
class _Key:
    private: ec.EllipticCurvePrivateKey
    jwk: dict[str, Any]


_ERRORS: dict[str, tuple[int, str, str, str]] = {
    "mutation": (
        400,
        "TRANSACTIONS_ERROR",
        "TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION",
        "Underlying transaction data changed since last page was fetched. Please restart pagination from last update.",
    ),
    "rate_limit": (429, "RATE_LIMIT_EXCEEDED", "TRANSACTIONS_SYNC_LIMIT", "rate limit exceeded for /transactions/sync"),
    "login_required": (
        400,
        "ITEM_ERROR",
        "ITEM_LOGIN_REQUIRED",
        "the login details of this item have changed (credentials, MFA, or required user action) "
        "and a user login is required to update this information.",
    ),
    "server_error": (500, "API_ERROR", "INTERNAL_SERVER_ERROR", "an unexpected error occurred"),
}


def _request_id() -> str:
    return secrets.token_urlsafe(11)[:15]


def _error(
    status: int, error_type: str, code: str, message: str, headers: dict[str, str] | None = None
) -> Response[Any]:
    body = {
        "error_type": error_type,
        "error_code": code,
        "error_message": message,
        "display_message": None,
        "request_id": _request_id(),
    }
    return Response(body, status_code=status, headers=headers or {})


class FakePlaid:
    """The fake's state; thread-safe, changed by tests while the server runs."""

    def __init__(self, client_id: str, secret: str, *, echo_secrets: bool = False) -> None:
        self.client_id = client_id
        self.secret = secret
        #: a misbehaving vendor that echoes the access token in error messages (redaction tests)
        self.echo_secrets = echo_secrets
        self.items: dict[str, FakeItem] = {}
        self.webhook_url: str | None = None
        self.sync_calls: dict[str, list[int]] = {}
        self.key_fetches = 0
        #: /webhook_verification_key/get requests received (held ones included)
        self.key_requests = 0
        #: while set, key requests are held unanswered (a slow or rate-limited Plaid)
        self.key_hold = threading.Event()
        #: while set, key requests answer this HTTP status (500 INTERNAL_SERVER_ERROR or 429
        #: RATE_LIMIT_EXCEEDED, as Plaid's error reference shows them): a failing Plaid
        self.key_outage: int | None = None
        self.rate_limit_retry_after: str | None = "1"
        self._failures: dict[str, list[_Failure]] = {}
        self._stalls: dict[str, dict[int, float]] = {}
        self._calls: dict[str, int] = {}
        self._keys: dict[str, _Key] = {}
        self._lock = threading.RLock()
        self.current_kid = self.rotate_key()

    # -- set-up --------------------------------------------------------------------------

    def add_item(self, item: FakeItem) -> FakeItem:
        with self._lock:
            self.items[item.item_id] = item
        return item

    def append(self, item_id: str, *changes: Change) -> None:
        """New data arrives at the bank: more changes at the end of the Item's log."""
        with self._lock:
            self.items[item_id].log.extend(changes)

    def fail_on_call(self, item_id: str, on_call: int, kind: str, then: Callable[[], None] | None = None) -> None:
        """The `on_call`-th sync call for the Item from now (1 = the next) fails once with
        `kind` (mutation, rate_limit, login_required, server_error); `then` runs when it does."""
        if kind not in _ERRORS:
            raise ValueError(f"unknown failure {kind!r}; choose among {', '.join(_ERRORS)}")
        with self._lock:
            done = self._calls.get(item_id, 0)
            self._failures.setdefault(item_id, []).append(_Failure(done + on_call, kind, then))

    def mutation_on_page(self, item_id: str, page: int, *changes: Change, vanish: Iterable[str] = ()) -> None:
        """The `page`-th page of the next sync loop answers TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION
        once; `changes` (the mutation) are appended to the log at that moment.

        `vanish`: transaction ids whose every change leaves the log at that moment, as a
        pending transaction that posted under a new id is no longer reported at all to a
        client whose cursor predates both. Only pages already read (void) held them; the
        positions after them shift, so only cursors before them stay valid (a restarted
        loop begins before them)."""
        gone = set(vanish)

        def mutate() -> None:
            with self._lock:
                log = self.items[item_id].log
                log[:] = [change for change in log if change[1]["transaction_id"] not in gone]
                log.extend(changes)

        self.fail_on_call(item_id, page, "mutation", then=mutate if changes or gone else None)

    def stall_on_call(self, item_id: str, on_call: int, seconds: float) -> None:
        """The `on_call`-th sync call for the Item from now (1 = the next) is answered only
        after `seconds` (it counts as made, in `sync_calls`, at once): time for a test to
        stop the worker that is waiting for it."""
        with self._lock:
            done = self._calls.get(item_id, 0)
            self._stalls.setdefault(item_id, {})[done + on_call] = seconds

    def loop_pages(self, item_id: str, count: int) -> list[list[str]]:
        """The transaction ids each page of one sync loop from the empty cursor lists now
        (`count` per page), as `/transactions/sync` would answer them."""
        with self._lock:
            log = list(self.items[item_id].log)
        pages: list[list[str]] = []
        for start in range(0, len(log), count):
            added, modified, removed = _collapse(log[start : start + count])
            pages.append([doc["transaction_id"] for doc in [*added, *modified, *removed]])
        return pages

    def final_state(self, item_id: str) -> dict[str, dict[str, Any]]:
        """What a client that applied every page holds: live transactions by id."""
        state: dict[str, dict[str, Any]] = {}
        with self._lock:
            for what, doc in self.items[item_id].log:
                if what == "removed":
                    state.pop(doc["transaction_id"], None)
                else:
                    state[doc["transaction_id"]] = doc
        return state

    # -- keys and signatures -------------------------------------------------------------

    def rotate_key(self, *, expire_previous: bool = False, at: float | None = None) -> str:
        """A new signing key becomes current; the previous one stays valid until expired
        (`expire_previous`: Plaid sets its `expired_at` to `at`, default now, at once)."""
        private = ec.generate_private_key(ec.SECP256R1())
        kid = str(uuid.uuid4())
        jwk = json.loads(ECAlgorithm.to_jwk(private.public_key()))
        jwk.update({"alg": "ES256", "kid": kid, "use": "sig", "created_at": int(time.time()), "expired_at": None})
        with self._lock:
            previous = getattr(self, "current_kid", None)
            self._keys[kid] = _Key(private, jwk)
            self.current_kid = kid
        if expire_previous and previous is not None:
            self.expire_key(previous, at=at)
        return kid

    def expire_key(self, kid: str, at: float | None = None) -> None:
        with self._lock:
            self._keys[kid].jwk["expired_at"] = int(time.time() if at is None else at)

    def sign(
        self,
        body: bytes,
        *,
        iat: float | None = None,
        kid: str | None = None,
        private_key: Any = None,
        algorithm: str = "ES256",
        claims: dict[str, Any] | None = None,
    ) -> dict[str, str]:
        """The headers Plaid sends with `body`: `Plaid-Verification` (a JWT) and Content-Type."""
        kid = kid or self.current_kid
        with self._lock:
            key = private_key if private_key is not None else self._keys[kid].private
        payload = {
            "iat": int(time.time() if iat is None else iat),
            "request_body_sha256": hashlib.sha256(body).hexdigest(),
        }
        payload.update(claims or {})
        token = jwt.encode(payload, key, algorithm=algorithm, headers={"kid": kid})
        return {"Plaid-Verification": token, "Content-Type": "application/json"}

    # -- the API ---------------------------------------------------------------------------

    def _auth(self, doc: dict[str, Any]) -> Response[Any] | None:
        if doc.get("client_id") != self.client_id or doc.get("secret") != self.secret:
            return _error(400, "INVALID_INPUT", "INVALID_API_KEYS", "invalid client_id or secret provided")
        return None

    def _item_for(self, token: object) -> FakeItem | Response[Any]:
        with self._lock:
            for item in self.items.values():
                if isinstance(token, str) and secrets.compare_digest(item.access_token, token):
                    return item
        shown = f" {token}" if self.echo_secrets else ""
        return _error(
            400,
            "INVALID_INPUT",
            "INVALID_ACCESS_TOKEN",
            f"provided access token{shown} is in an invalid format. expected format: access-<environment>-<identifier>",
        )

    def _cursor(self, item_id: str, pos: int) -> str:
        digest = hashlib.sha256(f"{item_id}:{pos}".encode()).digest()[:18]
        return base64.urlsafe_b64encode(digest).decode() + base64.urlsafe_b64encode(str(pos).encode()).decode()

    def _position(self, item_id: str, cursor: str) -> int | None:
        if not cursor:
            return 0
        with self._lock:
            size = len(self.items[item_id].log)
        for pos in range(size + 1):
            if self._cursor(item_id, pos) == cursor:
                return pos
        return None

    def transactions_sync(self, doc: dict[str, Any]) -> Response[Any]:
        return self.sync_answer(doc)[0]

    def sync_answer(self, doc: dict[str, Any]) -> tuple[Response[Any], float]:
        """The answer to a `/transactions/sync` call, and the seconds to wait before sending
        it (`stall_on_call`; 0 for every other call)."""
        denied = self._auth(doc)
        if denied:
            return denied, 0.0
        found = self._item_for(doc.get("access_token"))
        if isinstance(found, Response):
            return found, 0.0
        item = found
        count = doc.get("count", 100)
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 500:
            return _error(400, "INVALID_REQUEST", "INVALID_FIELD", "count must be an integer from 1 to 500"), 0.0
        cursor = doc.get("cursor") or ""
        if not isinstance(cursor, str):
            return _error(400, "INVALID_REQUEST", "INVALID_FIELD", "cursor must be a string"), 0.0
        with self._lock:
            call = self._calls.get(item.item_id, 0) + 1
            self._calls[item.item_id] = call
            stall = self._stalls.get(item.item_id, {}).pop(call, 0.0)
            failure = next((f for f in self._failures.get(item.item_id, []) if f.on_call == call), None)
            if failure is not None:
                self._failures[item.item_id].remove(failure)
            pos = self._position(item.item_id, cursor)
            self.sync_calls.setdefault(item.item_id, []).append(-1 if pos is None else pos)
        if failure is not None:
            if failure.then is not None:
                failure.then()
            status, etype, code, message = _ERRORS[failure.kind]
            headers = (
                {"Retry-After": self.rate_limit_retry_after}
                if failure.kind == "rate_limit" and self.rate_limit_retry_after
                else None
            )
            return _error(status, etype, code, message, headers), stall
        if pos is None:
            return _error(400, "INVALID_REQUEST", "INVALID_FIELD", "cursor is not a valid cursor for this item"), stall
        with self._lock:
            window = item.log[pos : pos + count]
            end = pos + len(window)
            has_more = end < len(item.log)
            accounts = json.loads(json.dumps(item.accounts))
        added, modified, removed = _collapse(window)
        answer = Response(
            {
                "accounts": accounts,
                "added": added,
                "modified": modified,
                "removed": removed,
                "next_cursor": self._cursor(item.item_id, end),
                "has_more": has_more,
                "transactions_update_status": "HISTORICAL_UPDATE_COMPLETE",
                "request_id": _request_id(),
            }
        )
        return answer, stall

    def verification_key(self, doc: dict[str, Any]) -> Response[Any]:
        denied = self._auth(doc)
        if denied:
            return denied
        if self.key_outage == 429:
            return _error(429, "RATE_LIMIT_EXCEEDED", "RATE_LIMIT", "rate limit exceeded")
        if self.key_outage is not None:
            return _error(self.key_outage, "API_ERROR", "INTERNAL_SERVER_ERROR", "an unexpected error occurred")
        with self._lock:
            self.key_fetches += 1
            key = self._keys.get(str(doc.get("key_id")))
            jwk = dict(key.jwk) if key else None
        if jwk is None:
            return _error(400, "INVALID_INPUT", "INVALID_WEBHOOK_VERIFICATION_KEY_ID", "invalid key_id provided")
        return Response({"key": jwk, "request_id": _request_id()})

    async def fire_webhook(self, doc: dict[str, Any]) -> Response[Any]:
        denied = self._auth(doc)
        if denied:
            return denied
        found = self._item_for(doc.get("access_token"))
        if isinstance(found, Response):
            return found
        if not self.webhook_url:
            return _error(400, "INVALID_INPUT", "INVALID_WEBHOOK_URL", "the item has no webhook url")
        body = json.dumps(
            {
                "environment": "sandbox",
                "historical_update_complete": True,
                "initial_update_complete": True,
                "item_id": found.item_id,
                "webhook_code": doc.get("webhook_code") or "SYNC_UPDATES_AVAILABLE",
                "webhook_type": doc.get("webhook_type") or "TRANSACTIONS",
            },
            indent=2,
        ).encode()
        async with httpx.AsyncClient(timeout=10) as http:
            await http.post(self.webhook_url, content=body, headers=self.sign(body))
        return Response({"webhook_fired": True, "request_id": _request_id()})


def _collapse(window: list[Change]) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """One page lists each transaction once, in the list of its latest change (as Plaid does)."""
    last: dict[str, tuple[str, dict[str, Any]]] = {}
    for what, doc in window:
        tid = doc["transaction_id"]
        before = last.get(tid)
        if what == "modified" and before and before[0] == "added":
            what = "added"  # added and changed within the page: one added entry, current state
        last[tid] = (what, doc)
    out: dict[str, list[dict[str, Any]]] = {"added": [], "modified": [], "removed": []}
    for what, doc in last.values():
        entry = (
            {"transaction_id": doc["transaction_id"], "account_id": doc.get("account_id")} if what == "removed" else doc
        )
        out[what].append(json.loads(json.dumps(entry)))
    return out["added"], out["modified"], out["removed"]


def create_app(fake: FakePlaid) -> Litestar:
    async def body_of(request: Request[Any, Any, Any]) -> dict[str, Any] | Response[Any]:
        try:
            doc = json.loads(await request.body())
        except ValueError:
            return _error(400, "INVALID_REQUEST", "INVALID_BODY", "body could not be parsed as JSON")
        if not isinstance(doc, dict):
            return _error(400, "INVALID_REQUEST", "INVALID_BODY", "body must be a JSON object")
        return doc

    @post("/transactions/sync", status_code=200)
    async def sync(request: Request[Any, Any, Any]) -> Response[Any]:
        doc = await body_of(request)
        if isinstance(doc, Response):
            return doc
        answer, stall = fake.sync_answer(doc)
        if stall:
            await asyncio.sleep(stall)
        return answer

    @post("/webhook_verification_key/get", status_code=200)
    async def verification_key(request: Request[Any, Any, Any]) -> Response[Any]:
        with fake._lock:
            fake.key_requests += 1
        held_until = time.monotonic() + 60
        while fake.key_hold.is_set() and time.monotonic() < held_until:  # noqa: ASYNC110 - set by the test thread
            await asyncio.sleep(0.01)
        doc = await body_of(request)
        return doc if isinstance(doc, Response) else fake.verification_key(doc)

    @post("/sandbox/item/fire_webhook", status_code=200)
    async def fire_webhook(request: Request[Any, Any, Any]) -> Response[Any]:
        doc = await body_of(request)
        return doc if isinstance(doc, Response) else await fake.fire_webhook(doc)

    return Litestar(route_handlers=[sync, verification_key, fire_webhook], logging_config=None, openapi_config=None)


class FakeVendorServer(vendor_server.FakeVendorServer):
    """Serves a `FakePlaid` on 127.0.0.1 (a free port) in a background thread."""

    def __init__(self, fake: FakePlaid) -> None:
        self.fake = fake
        super().__init__(create_app(fake), name="fake Plaid")
