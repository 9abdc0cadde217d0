"""A fake HubSpot CRM API for tests and the demo (Litestar, served by uvicorn on 127.0.0.1).

It serves the documented shapes of the endpoints the connector calls:

- `POST /crm/v3/objects/{type}/search`: filterGroups (OR of ANDed filters: EQ, NEQ, GT,
  GTE, LT, LTE, HAS_PROPERTY, NOT_HAS_PROPERTY, IN), one sort, `limit` ≤ 200, `after`
  offsets and HubSpot's 10,000-result paging cap (400 beyond it); archived objects are
  never found, as in HubSpot.
- `GET /crm/v3/objects/{type}?archived=true|false&limit&after&properties`: the list
  endpoint, ordered by id, `after` = the next id.
- `POST /crm/v3/objects/{type}/batch/read`: properties of objects by id (207 for missing).
- `POST /crm/v4/associations/{from}/{to}/batch/read`: `{results:[{from:{id}, to:[{toObjectId,
  associationTypes}], paging?}]}`, 500 targets per page, 207 + errors for ids without any.

- `GET /account-info/v3/details`: the account's `timeZone` (and the other documented fields).

Every call needs `Authorization: Bearer <token>` (401 `INVALID_AUTHENTICATION` otherwise).
Faults are queued with `fail(...)`: a status with HubSpot's error body (429 with `policyName`
TEN_SECONDLY_ROLLING, SECONDLY or DAILY as HubSpot documents them, with `Retry-After` or the
10-second window headers; 5xx), a malformed or a truncated body. `search_per_second` makes
the search endpoints answer HubSpot's SECONDLY 429 beyond that many calls in any second, as
HubSpot's own search limit does. Merged objects carry `hs_merged_object_ids` (`merge(...)`).
Every call is recorded in `calls`, with its time in `call_times`.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from litestar import Litestar, Request, Response, get, post

from apex_platform.testing.vendor_server import FakeVendorServer

TOKEN = "pat-na1-fake-hubspot-token"  # noqa: S105 - the fake server's own token
SEARCH_CAP = 10_000
MODIFIED = {"contacts": "lastmodifieddate"}
ASSOC_PAGE = 500
_TYPE_IDS = {
    ("contacts", "companies"): 1,
    ("companies", "contacts"): 2,
    ("deals", "contacts"): 3,
    ("contacts", "deals"): 4,
    ("deals", "companies"): 5,
    ("companies", "deals"): 6,
}


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class FakeObject:
    id: str
    type: str
    properties: dict[str, str]
    created_ms: int
    modified_ms: int
    archived_ms: int | None = None

    def view(self, wanted: list[str] | None) -> dict[str, Any]:
        props = dict(self.properties)
        mod = MODIFIED.get(self.type, "hs_lastmodifieddate")
        props.update({"hs_object_id": self.id, "createdate": iso(self.created_ms), mod: iso(self.modified_ms)})
        props["hs_lastmodifieddate"] = iso(self.modified_ms)
        keep = set(wanted or ["createdate", mod, "hs_object_id"]) | {"createdate", mod, "hs_object_id"}
        doc: dict[str, Any] = {
            "id": self.id,
            "properties": {k: props.get(k) for k in sorted(keep)},
            "createdAt": iso(self.created_ms),
            "updatedAt": iso(self.modified_ms),
            "archived": self.archived_ms is not None,
        }
        if self.archived_ms is not None:
            doc["archivedAt"] = iso(self.archived_ms)
        return doc

    def value(self, name: str) -> str | int | None:
        if name == "hs_object_id":
            return int(self.id)
        if name in ("hs_lastmodifieddate", "lastmodifieddate"):
            return self.modified_ms
        if name == "createdate":
            return self.created_ms
        return self.properties.get(name)


@dataclass
class Fault:
    """One queued failure: served to the next request whose path contains `path`."""

    status: int = 500
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    kind: str = "status"  # status | malformed | truncated
    path: str = ""


def _num(value: Any) -> float | str | None:
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value).lower()


def _matches(obj: FakeObject, flt: dict[str, Any]) -> bool:
    name, op = flt.get("propertyName"), str(flt.get("operator", "EQ")).upper()
    have = _num(obj.value(str(name)))
    if op == "HAS_PROPERTY":
        return have is not None
    if op == "NOT_HAS_PROPERTY":
        return have is None
    if op == "IN":
        return have in {_num(v) for v in flt.get("values", [])}
    want = _num(flt.get("value"))
    if have is None or want is None or type(have) is not type(want):
        return op == "NEQ"
    cmp = {
        "EQ": have == want,
        "NEQ": have != want,
        "GT": have > want,  # type: ignore[operator]
        "GTE": have >= want,  # type: ignore[operator]
        "LT": have < want,  # type: ignore[operator]
        "LTE": have <= want,  # type: ignore[operator]
    }
    if op not in cmp:
        raise ValueError(f"unsupported operator {op}")
    return cmp[op]


class FakeHubSpot:
    """The state of one fake HubSpot portal, changed by tests between polls."""

    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.objects: dict[str, dict[str, FakeObject]] = {"contacts": {}, "companies": {}, "deals": {}}
        self.links: set[tuple[str, str, str, str]] = set()
        self.faults: list[Fault] = []
        self.calls: list[tuple[str, str]] = []
        self.call_times: list[tuple[float, str, str]] = []  # (monotonic time, method, path)
        self.search_bodies: list[dict[str, Any]] = []
        #: HubSpot's search limit (5 a second per account); None: not enforced
        self.search_per_second: int | None = None
        #: HubSpot's 10,000-result paging cap of one search query
        self.search_cap = SEARCH_CAP
        self.time_zone = "US/Eastern"
        #: served as it is by the account details endpoint when set (a documented example)
        self.account_doc: dict[str, Any] | None = None
        self.search_refusals = 0
        self.lock = threading.RLock()
        self._ids = itertools.count(101)
        # an hour ago, whole seconds: objects are older than the connector's settle window
        self.clock_ms = (int(time.time()) - 3600) * 1000

    # -- state changes (tests, the demo) -----------------------------------------------------

    def tick(self, ms: int = 1000) -> int:
        with self.lock:
            self.clock_ms += ms
            return self.clock_ms

    def add(self, type_: str, properties: dict[str, str], *, at: int | None = None, id: str | None = None) -> str:
        with self.lock:
            when = self.tick() if at is None else at
            oid = id or str(next(self._ids))
            self.objects.setdefault(type_, {})[oid] = FakeObject(oid, type_, dict(properties), when, when)
            return oid

    def update(self, type_: str, oid: str, properties: dict[str, str], *, at: int | None = None) -> None:
        with self.lock:
            obj = self.objects[type_][oid]
            obj.properties.update(properties)
            obj.modified_ms = self.tick() if at is None else at

    def archive(self, type_: str, oid: str, *, at: int | None = None) -> None:
        with self.lock:
            self.objects[type_][oid].archived_ms = self.tick() if at is None else at

    def merge(self, type_: str, primary: str, secondary: str, *, at: int | None = None) -> None:
        """HubSpot's merge: the secondary disappears (from search, lists and reads) and its id,
        with those it had absorbed, is listed in the primary's `hs_merged_object_ids`."""
        with self.lock:
            keep, gone = self.objects[type_][primary], self.objects[type_].pop(secondary)
            merged = [m for m in keep.properties.get("hs_merged_object_ids", "").split(";") if m]
            merged += [secondary, *(m for m in gone.properties.get("hs_merged_object_ids", "").split(";") if m)]
            keep.properties["hs_merged_object_ids"] = ";".join(dict.fromkeys(merged))
            keep.modified_ms = self.tick() if at is None else at

    def associate(self, type_a: str, id_a: str, type_b: str, id_b: str) -> None:
        with self.lock:
            self.links.add((type_a, id_a, type_b, id_b))
            self.links.add((type_b, id_b, type_a, id_a))

    def fail(self, status: int = 500, *, times: int = 1, kind: str = "status", path: str = "", **extra: Any) -> None:
        """Queue failures. 429 takes `policy` (TEN_SECONDLY_ROLLING, SECONDLY, DAILY), `retry_after`
        (seconds) or `window=True` (interval headers); `body` replaces the error body."""
        headers: dict[str, str] = {}
        body: Any
        if extra.get("body") is not None:
            body = extra["body"]
        elif status == 429 and extra.get("policy") in ("DAILY", "SECONDLY"):
            body = rate_limit_body(str(extra["policy"]))
            if extra.get("policy") == "DAILY":
                headers.update({"X-HubSpot-RateLimit-Daily": "250000", "X-HubSpot-RateLimit-Daily-Remaining": "0"})
        elif status == 429:
            body = {
                "status": "error",
                "message": "You have reached your ten_secondly_rolling limit.",
                "errorType": "RATE_LIMIT",
                "category": "RATE_LIMITS",
                "correlationId": "c0ffee00-0000-4000-8000-000000000429",
                "policyName": "TEN_SECONDLY_ROLLING",
            }
            if extra.get("retry_after") is not None:
                headers["Retry-After"] = str(extra["retry_after"])
            if extra.get("window"):
                headers.update(
                    {
                        "X-HubSpot-RateLimit-Interval-Milliseconds": str(extra.get("interval_ms", 10000)),
                        "X-HubSpot-RateLimit-Max": "100",
                        "X-HubSpot-RateLimit-Remaining": "0",
                    }
                )
        else:
            body = {
                "status": "error",
                "message": "internal error" if status >= 500 else "bad request",
                "correlationId": f"c0ffee00-0000-4000-8000-000000000{status}",
                "category": "INTERNAL_ERROR" if status >= 500 else "VALIDATION_ERROR",
            }
        with self.lock:
            self.faults.extend(Fault(status, body, headers, kind, path) for _ in range(times))

    def most_in_window(self, fragment: str, window: float) -> int:
        """The most calls whose path contains `fragment` in any `window` seconds (server's clock)."""
        with self.lock:
            times = sorted(t for t, _, p in self.call_times if fragment in p)
        best, lo = 0, 0
        for hi, t in enumerate(times):
            while times[lo] <= t - window:
                lo += 1
            best = max(best, hi - lo + 1)
        return best

    def account_details(self) -> Response[Any]:
        if self.account_doc is not None:
            return _json(self.account_doc)
        return _json(
            {
                "portalId": 2519445,
                "accountType": "STANDARD",
                "timeZone": self.time_zone,
                "companyCurrency": "USD",
                "additionalCurrencies": [],
                "utcOffset": "-05:00",
                "utcOffsetMilliseconds": -18000000,
                "uiDomain": "app.hubspot.com",
                "dataHostingLocation": "na1",
            }
        )

    def count(self, method: str, fragment: str) -> int:
        with self.lock:
            return sum(1 for m, p in self.calls if m == method and fragment in p)

    # -- serving -----------------------------------------------------------------------------

    def _fault_for(self, path: str) -> Fault | None:
        with self.lock:
            for i, fault in enumerate(self.faults):
                if fault.path in path:
                    return self.faults.pop(i)
        return None

    def gate(self, request: Request[Any, Any, Any]) -> Response[Any] | None:
        """Records the call; answers 401 without the token and serves queued faults."""
        path = request.url.path
        now = time.monotonic()
        with self.lock:
            self.calls.append((request.method, path))
            self.call_times.append((now, request.method, path))
        if request.headers.get("authorization", "") != f"Bearer {self.token}":
            return _json(
                {
                    "status": "error",
                    "message": "Authentication credentials not found. This API supports OAuth 2.0 authentication",
                    "correlationId": "c0ffee00-0000-4000-8000-000000000401",
                    "category": "INVALID_AUTHENTICATION",
                },
                401,
            )
        fault = self._fault_for(path)
        if fault is None and self.search_per_second is not None and path.endswith("/search"):
            with self.lock:
                recent = [t for t, _, p in self.call_times if p.endswith("/search") and now - 1.0 < t <= now]
            if len(recent) > self.search_per_second:
                self.search_refusals += 1
                return _json(rate_limit_body("SECONDLY"), 429)
        if fault is None:
            return None
        if fault.kind == "malformed":
            return Response(b"<html><body>502 Bad Gateway</body></html>", status_code=200, media_type="text/html")
        if fault.kind == "truncated":
            return Response(
                b'{"total": 3, "results": [{"id": "1", "proper', status_code=200, media_type="application/json"
            )
        if fault.kind == "shape":
            return _json({"total": 1, "results": {"id": "1"}}, 200)
        return _json(fault.body, fault.status, fault.headers)

    def search(self, type_: str, body: dict[str, Any]) -> Response[Any]:
        with self.lock:
            self.search_bodies.append(body)
            limit = int(body.get("limit", 10))
            if limit > 200:
                return _error(400, "VALIDATION_ERROR", "limit must be at most 200")
            sorts = body.get("sorts") or []
            if len(sorts) > 1:
                return _error(400, "VALIDATION_ERROR", "only one sort is supported")
            after = int(body.get("after") or 0)
            if after + limit > self.search_cap:
                return _error(400, "VALIDATION_ERROR", "paging beyond 10000 results is not supported")
            groups = body.get("filterGroups") or [{"filters": []}]
            try:
                found = [
                    o
                    for o in self.objects.get(type_, {}).values()
                    if o.archived_ms is None and any(all(_matches(o, f) for f in g.get("filters", [])) for g in groups)
                ]
            except ValueError as exc:
                return _error(400, "VALIDATION_ERROR", str(exc))
            if sorts:
                name = sorts[0].get("propertyName")
                found.sort(key=lambda o: (_num(o.value(name)) is None, _num(o.value(name)) or 0, int(o.id)))
                if str(sorts[0].get("direction", "ASCENDING")).upper() == "DESCENDING":
                    found.reverse()
            else:
                found.sort(key=lambda o: int(o.id))
            window = found[after : after + limit]
            doc: dict[str, Any] = {"total": len(found), "results": [o.view(body.get("properties")) for o in window]}
            if after + limit < len(found):
                doc["paging"] = {"next": {"after": str(after + limit), "link": ""}}
            return _json(doc)

    def list_objects(
        self, type_: str, archived: bool, limit: int, after: str | None, props: list[str]
    ) -> Response[Any]:
        with self.lock:
            pool = sorted(
                (o for o in self.objects.get(type_, {}).values() if (o.archived_ms is not None) == archived),
                key=lambda o: int(o.id),
            )
            if after:
                pool = [o for o in pool if int(o.id) >= int(after)]
            window, rest = pool[:limit], pool[limit:]
            doc: dict[str, Any] = {"results": [o.view(props) for o in window]}
            if rest:
                doc["paging"] = {"next": {"after": rest[0].id, "link": ""}}
            return _json(doc)

    def batch_read(self, type_: str, body: dict[str, Any]) -> Response[Any]:
        with self.lock:
            results, missing = [], []
            for item in body.get("inputs", []):
                obj = self.objects.get(type_, {}).get(str(item.get("id")))
                if obj is None or obj.archived_ms is not None:
                    missing.append(str(item.get("id")))
                else:
                    results.append(obj.view(body.get("properties")))
            doc: dict[str, Any] = {"status": "COMPLETE", "results": results}
            if missing:
                doc["errors"] = [
                    {
                        "status": "error",
                        "category": "OBJECT_NOT_FOUND",
                        "message": "not found",
                        "context": {"ids": missing},
                    }
                ]
            return _json(doc, 207 if missing else 200)

    def associations(self, src: str, dst: str, body: dict[str, Any]) -> Response[Any]:
        with self.lock:
            results, empty = [], []
            type_id = _TYPE_IDS.get((src, dst), 0)
            for item in body.get("inputs", []):
                oid = str(item.get("id"))
                targets = sorted(
                    (
                        int(b)
                        for a_t, a, b_t, b in self.links
                        if a_t == src
                        and a == oid
                        and b_t == dst
                        and self.objects.get(dst, {}).get(b) is not None
                        and self.objects[dst][b].archived_ms is None
                    ),
                )
                start = int(item.get("after") or 0)
                window = targets[start : start + ASSOC_PAGE]
                if not window:
                    empty.append(oid)
                    continue
                entry: dict[str, Any] = {
                    "from": {"id": oid},
                    "to": [
                        {
                            "toObjectId": t,
                            "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": type_id, "label": None}],
                        }
                        for t in window
                    ],
                }
                if start + ASSOC_PAGE < len(targets):
                    entry["paging"] = {"next": {"after": str(start + ASSOC_PAGE), "link": None}}
                results.append(entry)
            now = iso(int(time.time() * 1000))
            doc: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": now, "completedAt": now}
            if empty:
                doc["errors"] = [
                    {
                        "status": "error",
                        "category": "OBJECT_NOT_FOUND",
                        "message": f"No {dst} is associated",
                        "context": {"fromObjectId": empty},
                    }
                ]
                doc["numErrors"] = len(empty)
            return _json(doc, 207 if empty else 200)


def rate_limit_body(policy: str) -> dict[str, Any]:
    """HubSpot's 429 body for `policy`, in the shape of its API usage guidelines' example."""
    message = {"DAILY": "You have reached your daily limit.", "SECONDLY": "You have reached your secondly limit."}
    return {
        "status": "error",
        "message": message.get(policy, f"You have reached your {policy.lower()} limit."),
        "errorType": "RATE_LIMIT",
        "correlationId": "c033cdaa-2c40-4a64-ae48-b4cec88dad24",
        "policyName": policy,
        "requestId": "3d3e35b7-0dae-4b9f-a6e3-9c230cbcf8dd",
    }


def _json(doc: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(json.dumps(doc).encode(), status_code=status, media_type="application/json", headers=headers or {})


def _error(status: int, category: str, message: str) -> Response[Any]:
    return _json(
        {
            "status": "error",
            "message": message,
            "category": category,
            "correlationId": "c0ffee00-0000-4000-8000-000000000400",
        },
        status,
    )


async def _body(request: Request[Any, Any, Any]) -> dict[str, Any]:
    try:
        doc = json.loads(await request.body() or b"{}")
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def create_app(fake: FakeHubSpot) -> Litestar:
    @post("/crm/v3/objects/{object_type:str}/search", status_code=200)
    async def search(request: Request[Any, Any, Any]) -> Response[Any]:
        return fake.gate(request) or fake.search(request.path_params["object_type"], await _body(request))

    @get("/crm/v3/objects/{object_type:str}")
    async def list_objects(request: Request[Any, Any, Any]) -> Response[Any]:
        object_type = request.path_params["object_type"]
        q = request.query_params
        props = [p for p in str(q.get("properties", "")).split(",") if p]
        return fake.gate(request) or fake.list_objects(
            object_type,
            str(q.get("archived", "false")).lower() == "true",
            min(int(q.get("limit", 10)), 100),
            q.get("after"),
            props,
        )

    @post("/crm/v3/objects/{object_type:str}/batch/read", status_code=200)
    async def batch_read(request: Request[Any, Any, Any]) -> Response[Any]:
        return fake.gate(request) or fake.batch_read(request.path_params["object_type"], await _body(request))

    @post("/crm/v4/associations/{src:str}/{dst:str}/batch/read", status_code=200)
    async def associations(request: Request[Any, Any, Any]) -> Response[Any]:
        params = request.path_params
        return fake.gate(request) or fake.associations(params["src"], params["dst"], await _body(request))

    @get("/account-info/v3/details")
    async def account_details(request: Request[Any, Any, Any]) -> Response[Any]:
        return fake.gate(request) or fake.account_details()

    return Litestar(
        route_handlers=[search, list_objects, batch_read, associations, account_details],
        logging_config=None,
        openapi_config=None,
    )


class FakeHubSpotServer(FakeVendorServer):
    """Serves a `FakeHubSpot` on 127.0.0.1 (a free port) in a background thread."""

    def __init__(self, fake: FakeHubSpot | None = None) -> None:
        self.fake = fake or FakeHubSpot()
        super().__init__(create_app(self.fake), name="fake HubSpot")


def seed(fake: FakeHubSpot) -> dict[str, str]:
    """A small freight-brokerage portal: two shippers, three contacts, two deals."""
    acme = fake.add(
        "companies", {"name": "Acme Freight Inc", "domain": "www.acmefreight.com", "city": "Dallas", "state": "TX"}
    )
    blue = fake.add("companies", {"name": "Blue Ridge Logistics LLC", "domain": "blueridgelogistics.com"})
    ann = fake.add(
        "contacts",
        {
            "email": "Ann.Shipper@AcmeFreight.com",
            "firstname": "Ann",
            "lastname": "Shipper",
            "jobtitle": "Logistics Manager",
            "phone": "+1 214 555 0100",
        },
    )
    bob = fake.add("contacts", {"email": "bob@blueridgelogistics.com", "firstname": "Bob", "lastname": "Hauler"})
    cy = fake.add("contacts", {"firstname": "Cy", "lastname": "Noemail"})
    lane = fake.add(
        "deals",
        {
            "dealname": "DAL-ATL dry van lane 2026",
            "amount": "125000",
            "deal_currency_code": "USD",
            "dealstage": "contractsent",
            "pipeline": "default",
            "closedate": "2026-02-15T00:00:00Z",
        },
    )
    reefer = fake.add(
        "deals", {"dealname": "Reefer capacity Q2", "amount": "48000.50", "dealstage": "appointmentscheduled"}
    )
    fake.associate("contacts", ann, "companies", acme)
    fake.associate("contacts", bob, "companies", blue)
    fake.associate("deals", lane, "companies", acme)
    fake.associate("deals", lane, "contacts", ann)
    fake.associate("deals", reefer, "companies", blue)
    fake.associate("deals", reefer, "contacts", bob)
    fake.associate("deals", reefer, "contacts", cy)
    return {"acme": acme, "blue": blue, "ann": ann, "bob": bob, "cy": cy, "lane": lane, "reefer": reefer}
