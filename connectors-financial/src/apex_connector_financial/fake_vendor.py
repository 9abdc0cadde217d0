"""A fake QuickBooks Online API and Intuit token endpoint, for tests and the demo
(Litestar, served by uvicorn on 127.0.0.1).

- `POST /oauth2/v1/tokens/bearer`: `grant_type=refresh_token` with HTTP Basic client
  authentication. Every refresh issues a new refresh token and voids the one used (stricter
  than Intuit, which is the point: a connector that loses the rotated token fails here).
  Access tokens expire after `access_ttl` seconds. Errors are `{"error": "invalid_grant"}`
  (400) and `{"error": "invalid_client"}` (401).
- `GET /v3/company/{realmId}/cdc?entities=…&changedSince=…&minorversion=…`: the objects
  of those entities changed at or after `changedSince`, grouped by entity, oldest first,
  deleted ones after the active ones (`{"status": "Deleted", "Id", "MetaData"}`), and
  `time`. At most `max_objects` per answer (Intuit: 1,000); a fuller answer keeps an
  arbitrary subset, in no order, because Intuit does not say which objects it keeps. A
  `changedSince` older than 30 days is refused as Intuit does.
- `GET /v3/company/{realmId}/query?query=<select statement>&minorversion=…`: `select * |
  count(*) from <Entity> [where MetaData.LastUpdatedTime <op> '<ISO time>' [and …]]
  [orderby MetaData.LastUpdatedTime [asc|desc]] [startposition N] [maxresults M]`
  (keywords in any case; M at most 1,000, default 100, as Intuit documents). Deleted
  objects are never returned. Objects of the same second come in a different order on
  every call (nothing orders them), and without `orderby` the whole answer is in no order.

Every answer carries an `intuit_tid` header (recorded in `tids`), as Intuit's do. Every API
call needs a live access token of that company (401 `AuthenticationFault` otherwise).
Faults are queued with `fail(...)`: 429 throttling, 5xx, 400, a fault inside a 200,
malformed or truncated bodies. Calls are recorded in `calls`.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import random
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs

from litestar import Litestar, Request, Response, get, post

from apex_platform.testing.vendor_server import FakeVendorServer

CLIENT_ID = "fake-intuit-client-id"
CLIENT_SECRET = "fake-intuit-client-secret"  # noqa: S105 - the fake server's own secret
REALM = "9130357766900001"
PACIFIC = timezone(timedelta(hours=-8))


def qbo_time(ts: float) -> str:
    """QuickBooks' own format: seconds, with the company's offset."""
    return datetime.fromtimestamp(int(ts), PACIFIC).isoformat()


@dataclass
class FakeObject:
    entity: str
    id: str
    body: dict[str, Any]
    updated: float
    sync: int = 0
    deleted: bool = False

    def view(self) -> dict[str, Any]:
        if self.deleted:
            return {
                "domain": "QBO",
                "status": "Deleted",
                "Id": self.id,
                "MetaData": {"LastUpdatedTime": qbo_time(self.updated)},
            }
        doc = dict(self.body)
        doc.update(
            {
                "domain": "QBO",
                "sparse": False,
                "Id": self.id,
                "SyncToken": str(self.sync),
                "MetaData": {
                    "CreateTime": qbo_time(self.body.get("_created", self.updated)),
                    "LastUpdatedTime": qbo_time(self.updated),
                },
            }
        )
        doc.pop("_created", None)
        return doc


@dataclass
class Fault:
    status: int = 500
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    kind: str = "status"  # status | malformed | truncated | shape
    path: str = ""


def fault_body(status: int, fault_type: str, code: str, message: str, detail: str = "") -> dict[str, Any]:
    return {
        "Fault": {
            "Error": [{"Message": message, "Detail": detail or message, "code": code, "element": ""}],
            "type": fault_type,
        },
        "time": qbo_time(time.time()),
    }


class FakeQuickBooks:
    """One fake Intuit app with its companies; tests change it between polls."""

    def __init__(self, *, access_ttl: float = 3600.0, max_objects: int = 1000, seed: int = 20260310) -> None:
        self.client_id = CLIENT_ID
        self.client_secret = CLIENT_SECRET
        self.access_ttl = access_ttl
        self.max_objects = max_objects
        self.refresh: dict[str, str] = {}  # live refresh token -> realm
        self.access: dict[str, tuple[str, float]] = {}  # access token -> (realm, expires at)
        self.objects: dict[str, dict[tuple[str, str], FakeObject]] = {}
        self.faults: list[Fault] = []
        self.calls: list[tuple[str, str]] = []
        self.cdc_params: list[dict[str, str]] = []
        self.queries: list[str] = []
        self.tids: list[str] = []
        self.token_requests = 0
        #: seconds the token endpoint takes to answer (tests of concurrent refreshes)
        self.token_delay = 0.0
        #: a token answer served verbatim instead of a generated one (Intuit's documented samples)
        self.token_answer: bytes | None = None
        self.rng = random.Random(seed)  # noqa: S311 - which objects a full answer keeps, not a secret
        self.lock = threading.RLock()
        self._ids = itertools.count(1)
        # a day ago, whole seconds: every change is inside the CDC window
        self.clock = float(int(time.time()) - 86_400)

    # -- set-up and changes (tests, the demo) ------------------------------------------------

    def connect(self, realm: str = REALM) -> str:
        """A company connects the app: returns its first refresh token."""
        with self.lock:
            token = f"AB11{secrets.token_hex(16)}"
            self.refresh[token] = realm
            self.objects.setdefault(realm, {})
            return token

    def tick(self, seconds: float = 1.0) -> float:
        with self.lock:
            self.clock += seconds
            return self.clock

    def add(self, entity: str, body: dict[str, Any], *, realm: str = REALM, at: float | None = None) -> str:
        with self.lock:
            when = self.tick() if at is None else at
            oid = str(next(self._ids))
            self.objects.setdefault(realm, {})[(entity, oid)] = FakeObject(
                entity, oid, {**body, "_created": when}, when
            )
            return oid

    def update(
        self, entity: str, oid: str, changes: dict[str, Any], *, realm: str = REALM, at: float | None = None
    ) -> None:
        with self.lock:
            obj = self.objects[realm][(entity, oid)]
            obj.body.update(changes)
            obj.sync += 1
            obj.updated = self.tick() if at is None else at

    def delete(self, entity: str, oid: str, *, realm: str = REALM, at: float | None = None) -> None:
        with self.lock:
            obj = self.objects[realm][(entity, oid)]
            obj.deleted = True
            obj.updated = self.tick() if at is None else at

    def advance_to(self, ts: float) -> None:
        """Move the server's clock to `ts` (after changes made with `at=`)."""
        with self.lock:
            self.clock = max(self.clock, ts)

    def expire_access_tokens(self) -> None:
        with self.lock:
            self.access = {t: (r, 0.0) for t, (r, _) in self.access.items()}

    def revoke_access_tokens(self) -> None:
        with self.lock:
            self.access.clear()

    def fail(
        self,
        status: int = 500,
        *,
        times: int = 1,
        kind: str = "status",
        path: str = "",
        retry_after: float | None = None,
    ) -> None:
        headers: dict[str, str] = {}
        if status == 429:
            body = fault_body(
                429, "ThrottleExceeded", "003001", "message=ThrottleExceeded; errorCode=003001; statusCode=429"
            )
            if retry_after is not None:
                headers["Retry-After"] = str(retry_after)
        elif status >= 500:
            body = fault_body(
                status, "SystemFault", "10000", "An application error has occurred while processing your request"
            )
        elif status == 200:
            body = fault_body(200, "ValidationFault", "4000", "Error parsing query", "QueryParserError: invalid date")
        else:
            body = fault_body(status, "ValidationFault", "2010", "Request has invalid or unsupported property")
        with self.lock:
            self.faults.extend(Fault(status, body, headers, kind, path) for _ in range(times))

    def count(self, fragment: str) -> int:
        with self.lock:
            return sum(1 for _, p in self.calls if fragment in p)

    # -- serving -----------------------------------------------------------------------------

    def token(self, authorization: str, form: dict[str, str]) -> Response[Any]:
        with self.lock:
            self.calls.append(("POST", "/oauth2/v1/tokens/bearer"))
            self.token_requests += 1
            expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
            if authorization != f"Basic {expected}":
                return _json({"error": "invalid_client"}, 401)
            if form.get("grant_type") != "refresh_token":
                return _json({"error": "unsupported_grant_type"}, 400)
            realm = self.refresh.pop(form.get("refresh_token", ""), None)
            if realm is None:
                return _json({"error": "invalid_grant"}, 400)
            if self.token_answer is not None:
                doc = json.loads(self.token_answer)
                self.refresh[doc["refresh_token"]] = realm
                self.access[doc["access_token"]] = (realm, time.time() + float(doc["expires_in"]))
                return Response(self.token_answer, status_code=200, media_type="application/json")
            new_refresh = f"AB11{secrets.token_hex(16)}"
            access = f"eyJfake.{secrets.token_hex(24)}"
            self.refresh[new_refresh] = realm
            self.access[access] = (realm, time.time() + self.access_ttl)
            return _json(
                {
                    "token_type": "bearer",
                    "access_token": access,
                    "expires_in": int(self.access_ttl),
                    "refresh_token": new_refresh,
                    "x_refresh_token_expires_in": 8_726_400,
                }
            )

    def gate(self, request: Request[Any, Any, Any], realm: str) -> Response[Any] | None:
        path = request.url.path
        with self.lock:
            self.calls.append((request.method, path))
            bearer = request.headers.get("authorization", "")
            entry = self.access.get(bearer.removeprefix("Bearer ")) if bearer.startswith("Bearer ") else None
            if entry is None or entry[0] != realm or entry[1] <= time.time():
                return _json(
                    fault_body(
                        401,
                        "AuthenticationFault",
                        "3200",
                        "message=AuthenticationFailed; errorCode=003200; statusCode=401",
                    ),
                    401,
                )
            fault = next((f for f in self.faults if f.path in path), None)
            if fault is not None:
                self.faults.remove(fault)
        if fault is None:
            return None
        if fault.kind == "malformed":
            return Response(b"<html><body>Service Unavailable</body></html>", status_code=200, media_type="text/html")
        if fault.kind == "truncated":
            return Response(
                b'{"CDCResponse":[{"QueryResponse":[{"Invoice":[{"Id":"1","Me',
                status_code=200,
                media_type="application/json",
            )
        if fault.kind == "shape":
            return _json({"CDCResponse": {"QueryResponse": []}, "time": qbo_time(self.clock)})
        return _json(fault.body, fault.status, fault.headers)

    def cdc(self, realm: str, params: dict[str, str]) -> Response[Any]:
        with self.lock:
            self.cdc_params.append(params)
            entities = [e for e in params.get("entities", "").split(",") if e]
            raw_since = params.get("changedSince", "")
            try:
                since = datetime.fromisoformat(raw_since.replace("Z", "+00:00"))
            except ValueError:
                return _json(
                    fault_body(
                        400, "ValidationFault", "4000", "Error parsing query", f"invalid changedSince {raw_since}"
                    ),
                    400,
                )
            if since.tzinfo is None:
                since = since.replace(tzinfo=UTC)
            if since.timestamp() < self.clock - 30 * 86_400 - 86_400 and since.timestamp() < time.time() - 30 * 86_400:
                return _json(fault_body(400, "ValidationFault", "4000", "changedSince is more than 30 days ago"), 400)
            if not entities or "minorversion" not in params:
                return _json(fault_body(400, "ValidationFault", "4000", "entities and minorversion are required"), 400)
            answer: list[dict[str, Any]] = []
            room = self.max_objects
            for entity in entities:
                pool = [
                    o
                    for (e, _), o in self.objects.get(realm, {}).items()
                    if e == entity and o.updated >= since.timestamp()
                ]
                active = sorted((o for o in pool if not o.deleted), key=lambda o: (o.updated, int(o.id)))
                gone = sorted((o for o in pool if o.deleted), key=lambda o: (o.updated, int(o.id)))
                window = active + gone
                if len(window) > max(room, 0):
                    # Intuit does not say which objects a full answer keeps: any of them, in any order
                    window = self.rng.sample(window, max(room, 0))
                room -= len(window)
                if window:
                    answer.append({entity: [o.view() for o in window], "startPosition": 1, "maxResults": len(window)})
                else:
                    answer.append({"startPosition": 1, "maxResults": 0})
            doc = {
                "CDCResponse": [{"QueryResponse": answer}],
                # the server's "now": a little after the latest change (changes tick whole seconds)
                "time": datetime.fromtimestamp(self.clock + 0.5, PACIFIC).isoformat(timespec="milliseconds"),
            }
            return _json(doc)

    def query(self, realm: str, params: dict[str, str]) -> Response[Any]:
        with self.lock:
            statement = params.get("query", "")
            self.queries.append(statement)
            if "minorversion" not in params:
                return _json(fault_body(400, "ValidationFault", "4000", "minorversion is required"), 400)
            try:
                parsed = _parse_select(statement)
            except ValueError as exc:
                return _json(fault_body(400, "ValidationFault", "4000", "Error parsing query", str(exc)), 400)
            matches = [
                o
                for (e, _), o in self.objects.get(realm, {}).items()
                if e == parsed.entity and not o.deleted and all(test(int(o.updated)) for test in parsed.conditions)
            ]
            # nothing orders objects of the same second, and nothing at all without orderby
            ties = {id(o): self.rng.random() for o in matches}
            if parsed.order:
                matches.sort(key=lambda o: ties[id(o)])
                matches.sort(key=lambda o: int(o.updated), reverse=parsed.descending)
            else:
                self.rng.shuffle(matches)
            now = datetime.fromtimestamp(self.clock + 0.5, PACIFIC).isoformat(timespec="milliseconds")
            if parsed.count:
                return _json({"QueryResponse": {"totalCount": len(matches)}, "time": now})
            chosen = matches[parsed.start - 1 : parsed.start - 1 + parsed.max_results]
            if not chosen:
                return _json({"QueryResponse": {}, "time": now})
            return _json(
                {
                    "QueryResponse": {
                        parsed.entity: [o.view() for o in chosen],
                        "startPosition": parsed.start,
                        "maxResults": len(chosen),
                    },
                    "time": now,
                }
            )


@dataclass
class _Select:
    entity: str
    count: bool
    conditions: list[Any]
    order: bool
    descending: bool
    start: int
    max_results: int


_SELECT = re.compile(
    r"^\s*select\s+(?P<what>\*|count\(\*\))\s+from\s+(?P<entity>[A-Za-z]+)"
    r"(?:\s+where\s+(?P<where>.+?))?"
    r"(?:\s+orderby\s+(?P<order>[A-Za-z.]+)(?:\s+(?P<dir>asc|desc))?)?"
    r"(?:\s+startposition\s+(?P<start>\d+))?"
    r"(?:\s+maxresults\s+(?P<max>\d+))?\s*$",
    re.IGNORECASE | re.DOTALL,
)
_CONDITION = re.compile(r"^\s*MetaData\.LastUpdatedTime\s*(?P<op><=|>=|=|<|>)\s*'(?P<value>[^']+)'\s*$", re.I)
_OPS: dict[str, Any] = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    "=": lambda a, b: a == b,
    ">=": lambda a, b: a >= b,
    ">": lambda a, b: a > b,
}


def _parse_select(statement: str) -> _Select:
    """The part of Intuit's query language the connector uses (and the fake understands)."""
    match = _SELECT.match(statement)
    if match is None:
        raise ValueError(f"QueryParserError: cannot parse {statement[:120]!r}")
    conditions: list[Any] = []
    for part in re.split(r"\s+and\s+", match["where"] or "", flags=re.I) if match["where"] else []:
        cond = _CONDITION.match(part)
        if cond is None:
            raise ValueError(f"QueryParserError: the fake filters on MetaData.LastUpdatedTime only, not {part[:60]!r}")
        when = datetime.fromisoformat(cond["value"].replace("Z", "+00:00"))
        if when.tzinfo is None:
            raise ValueError(f"QueryParserError: {cond['value']!r} has no offset")
        op, bound = _OPS[cond["op"]], int(when.timestamp())
        conditions.append(lambda t, op=op, bound=bound: op(t, bound))
    order = match["order"]
    if order is not None and order.lower() != "metadata.lastupdatedtime":
        raise ValueError(f"QueryParserError: the fake orders by MetaData.LastUpdatedTime only, not {order!r}")
    start = int(match["start"] or 1)
    max_results = int(match["max"] or 100)
    if start < 1 or not 1 <= max_results <= 1000:
        raise ValueError("STARTPOSITION must be at least 1 and MAXRESULTS between 1 and 1000")
    return _Select(
        match["entity"],
        match["what"] != "*",
        conditions,
        order is not None,
        (match["dir"] or "").lower() == "desc",
        start,
        max_results,
    )


def _json(doc: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(json.dumps(doc).encode(), status_code=status, media_type="application/json", headers=headers or {})


def _tid() -> str:
    """A transaction id shaped like Intuit's: `1-<8 hex>-<24 hex>`."""
    return f"1-{secrets.token_hex(4)}-{secrets.token_hex(12)}"


def create_app(fake: FakeQuickBooks) -> Litestar:
    def traced(resp: Response[Any]) -> Response[Any]:
        tid = _tid()
        with fake.lock:
            fake.tids.append(tid)
        resp.headers["intuit_tid"] = tid
        return resp

    @post("/oauth2/v1/tokens/bearer", status_code=200)
    async def token(request: Request[Any, Any, Any]) -> Response[Any]:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()}
        if fake.token_delay:
            await asyncio.sleep(fake.token_delay)
        return traced(fake.token(request.headers.get("authorization", ""), form))

    @get("/v3/company/{realm:str}/cdc")
    async def cdc(request: Request[Any, Any, Any]) -> Response[Any]:
        realm = request.path_params["realm"]
        params = {k: str(v) for k, v in request.query_params.items()}
        return traced(fake.gate(request, realm) or fake.cdc(realm, params))

    @get("/v3/company/{realm:str}/query")
    async def query(request: Request[Any, Any, Any]) -> Response[Any]:
        realm = request.path_params["realm"]
        params = {k: str(v) for k, v in request.query_params.items()}
        return traced(fake.gate(request, realm) or fake.query(realm, params))

    return Litestar(route_handlers=[token, cdc, query], logging_config=None, openapi_config=None)


class FakeQuickBooksServer(FakeVendorServer):
    """Serves a `FakeQuickBooks` on 127.0.0.1 (a free port) in a background thread."""

    def __init__(self, fake: FakeQuickBooks | None = None) -> None:
        self.fake = fake or FakeQuickBooks()
        super().__init__(create_app(self.fake), name="fake QuickBooks")

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/oauth2/v1/tokens/bearer"


def seed(fake: FakeQuickBooks, realm: str = REALM) -> dict[str, str]:
    """A small carrier's books: two customers, a vendor, two invoices, a payment, a bill."""
    acme = fake.add(
        "Customer",
        {
            "DisplayName": "Acme Freight Inc",
            "CompanyName": "Acme Freight Inc",
            "PrimaryEmailAddr": {"Address": "ap@acmefreight.com"},
            "Balance": 1250.0,
            "CurrencyRef": {"value": "USD", "name": "United States Dollar"},
            "Active": True,
        },
        realm=realm,
    )
    blue = fake.add("Customer", {"DisplayName": "Blue Ridge Logistics", "Balance": 0, "Active": True}, realm=realm)
    fuel = fake.add(
        "Vendor",
        {
            "DisplayName": "Pilot Fuel Cards",
            "PrimaryPhone": {"FreeFormNumber": "(865) 555-0199"},
            "Balance": 310.4,
            "Active": True,
        },
        realm=realm,
    )
    inv1 = fake.add(
        "Invoice",
        {
            "DocNumber": "INV-1042",
            "TxnDate": "2026-03-01",
            "DueDate": "2026-03-31",
            "TotalAmt": 2450.0,
            "Balance": 1250.0,
            "CurrencyRef": {"value": "USD", "name": "United States Dollar"},
            "CustomerRef": {"value": acme, "name": "Acme Freight Inc"},
            "Line": [
                {
                    "Id": "1",
                    "LineNum": 1,
                    "Description": "Linehaul DAL-ATL, load 88231",
                    "Amount": 2100.0,
                    "DetailType": "SalesItemLineDetail",
                    "SalesItemLineDetail": {"ItemRef": {"value": "1", "name": "Linehaul"}, "Qty": 1, "UnitPrice": 2100},
                },
                {
                    "Id": "2",
                    "LineNum": 2,
                    "Description": "Fuel surcharge",
                    "Amount": 350.0,
                    "DetailType": "SalesItemLineDetail",
                    "SalesItemLineDetail": {"ItemRef": {"value": "2", "name": "Fuel surcharge"}},
                },
                {"Amount": 2450.0, "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}},
            ],
        },
        realm=realm,
    )
    inv2 = fake.add(
        "Invoice",
        {
            "DocNumber": "INV-1043",
            "TxnDate": "2026-03-02",
            "DueDate": "2026-04-01",
            "TotalAmt": 980.0,
            "Balance": 980.0,
            "CustomerRef": {"value": blue, "name": "Blue Ridge Logistics"},
            "CurrencyRef": {"value": "USD"},
        },
        realm=realm,
    )
    pay = fake.add(
        "Payment",
        {
            "TxnDate": "2026-03-05",
            "TotalAmt": 1200.0,
            "UnappliedAmt": 0,
            "CustomerRef": {"value": acme, "name": "Acme Freight Inc"},
            "CurrencyRef": {"value": "USD"},
            "Line": [{"Amount": 1200.0, "LinkedTxn": [{"TxnId": inv1, "TxnType": "Invoice"}]}],
        },
        realm=realm,
    )
    bill = fake.add(
        "Bill",
        {
            "DocNumber": "PF-7781",
            "TxnDate": "2026-03-03",
            "DueDate": "2026-03-17",
            "TotalAmt": 310.4,
            "Balance": 310.4,
            "VendorRef": {"value": fuel, "name": "Pilot Fuel Cards"},
            "CurrencyRef": {"value": "USD"},
            "Line": [
                {
                    "Id": "1",
                    "Amount": 310.4,
                    "Description": "Diesel, unit 14",
                    "DetailType": "AccountBasedExpenseLineDetail",
                    "AccountBasedExpenseLineDetail": {"AccountRef": {"value": "60", "name": "Fuel"}},
                }
            ],
        },
        realm=realm,
    )
    return {"acme": acme, "blue": blue, "fuel": fuel, "inv1": inv1, "inv2": inv2, "pay": pay, "bill": bill}
