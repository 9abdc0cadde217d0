"""The fake vendors a chaos run reads from — each connector's own fake (`fake_vendor.py`),
seeded as its `demo.py` does, behind a `DropProxy` — and what the verdict expects of them.

Each vendor keeps changing while the run goes on (new and changed transactions, CRM
objects, QuickBooks changes, SONAR revisions, new stat points in the Samsara feed, Turvo
shipment updates), answers 429/5xx when told to, and drops connections through its proxy.
At the end it says what every store must hold (`expected`) and whether a poller's cursor
covers its final state (`cursor_ok`).
"""

from __future__ import annotations

import asyncio
import copy
import json
import random
import string
import threading
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from apex_connector_crm.connector import CrmConnector
from apex_connector_crm.cursor import decode as crm_decode
from apex_connector_crm.fake_vendor import TOKEN as CRM_TOKEN
from apex_connector_crm.fake_vendor import FakeHubSpot, FakeHubSpotServer
from apex_connector_crm.fake_vendor import seed as crm_seed
from apex_connector_crm.objects import parse_object
from apex_connector_crm.records import build_record as crm_record
from apex_connector_crm.records import build_tombstone as crm_tombstone
from apex_connector_crm.records import modified_ms, object_type
from apex_connector_financial.cdc import parse_cdc, parse_time
from apex_connector_financial.cursor import decode as fin_decode
from apex_connector_financial.fake_vendor import (
    CLIENT_ID,
    CLIENT_SECRET,
    REALM,
    FakeQuickBooks,
    FakeQuickBooksServer,
    qbo_time,
)
from apex_connector_financial.fake_vendor import seed as fin_seed
from apex_connector_financial.records import build_record as fin_record
from apex_connector_financial.settings import DEFAULT_ENTITIES
from apex_connector_plaid import samples as plaid_samples
from apex_connector_plaid.cursor import SyncCursor
from apex_connector_plaid.fake_vendor import FakeItem, FakePlaid
from apex_connector_plaid.fake_vendor import FakeVendorServer as PlaidServer
from apex_connector_plaid.records import transaction_record
from apex_connector_samsara.fake_vendor import FakeSamsara, FakeServer, FeedItem, _iso
from apex_connector_samsara.feed import feed_answer
from apex_connector_samsara.settings import DEFAULT_ACCOUNT
from apex_connector_sonar import samples as sonar_samples
from apex_connector_sonar.fake_vendor import FakeSonar
from apex_connector_sonar.fake_vendor import create_app as sonar_app
from apex_connector_sonar.tickers import Ticker, value_record
from apex_connector_turvo import samples as turvo_samples
from apex_connector_turvo.fake_vendor import FakeTurvo
from apex_connector_turvo.fake_vendor import create_app as turvo_app
from apex_platform.models import RecordKey
from apex_platform.testing.vendor_server import FakeVendorServer
from tests.chaos.proxy import DropProxy


@dataclass(frozen=True)
class Expected:
    """What every store must hold for one key at the end."""

    key: RecordKey
    #: None: the version is not the vendor's (e.g. Plaid versions are read times)
    version: int | None
    deleted: bool = False
    #: compared with the stored record's attributes when given (content, not only version)
    attributes: dict[str, Any] | None = None


def _rid(rng: random.Random, n: int = 37) -> str:
    return "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(n))


def _jsonable(doc: Any) -> Any:
    return json.loads(json.dumps(doc))


class Vendor:
    """One fake vendor behind its proxy; subclasses fill in the fake and its behaviour."""

    name = "vendor"
    source = "vendor"
    fault_kinds: tuple[str, ...] = ("rate_limit", "server_error", "drop")

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.server: FakeVendorServer | None = None
        self.proxy: DropProxy | None = None
        self.lock = threading.RLock()
        self.changes = 0
        self.faults: dict[str, int] = {}

    def make_server(self) -> FakeVendorServer:
        raise NotImplementedError

    async def start(self) -> None:
        self.server = self.make_server()
        await asyncio.to_thread(self.server.start)
        self.proxy = DropProxy(self.server.port)
        await self.proxy.start()

    async def stop(self) -> None:
        if self.proxy is not None:
            await self.proxy.stop()
        if self.server is not None:
            await asyncio.to_thread(self.server.stop)

    @property
    def url(self) -> str:
        assert self.proxy is not None
        return self.proxy.url

    def env(self) -> dict[str, str]:
        return {}

    def grow(self) -> None:
        """One change at the vendor (new data the poller must pick up)."""

    def inject(self, kind: str) -> str:
        """A vendor fault of `kind` (not `drop`, which the controller times itself)."""
        raise NotImplementedError

    def expected(self) -> list[Expected]:
        return []

    def cursor_ok(self, account: str, cursor: str | None) -> tuple[bool, str]:
        return True, ""

    def accounts(self) -> list[str]:
        return []


# -- Plaid --------------------------------------------------------------------------------------


class Plaid(Vendor):
    """Plaid's /transactions/sync for the demo Item; new, changed and removed transactions."""

    name = source = "plaid"
    fault_kinds = ("rate_limit", "server_error", "mutation", "drop")

    def __init__(self, rng: random.Random) -> None:
        super().__init__(rng)
        self.item = plaid_samples.DEMO_ITEM_ID
        self.fake = FakePlaid(plaid_samples.DEMO_CLIENT_ID, plaid_samples.DEMO_SECRET)
        self.fake.add_item(
            FakeItem(
                item_id=self.item,
                access_token=plaid_samples.DEMO_ACCESS_TOKEN,
                accounts=plaid_samples.demo_accounts(),
                log=plaid_samples.demo_changes(),
            )
        )
        self.account_ids = [a["account_id"] for a in plaid_samples.demo_accounts()]
        self.live: dict[str, dict[str, Any]] = dict(self.fake.final_state(self.item))

    def make_server(self) -> FakeVendorServer:
        return PlaidServer(self.fake)

    def env(self) -> dict[str, str]:
        return {
            "APEX_PLAID_BASE_URL": self.url,
            "APEX_PLAID_CLIENT_ID": plaid_samples.DEMO_CLIENT_ID,
            "APEX_PLAID_SECRET": plaid_samples.DEMO_SECRET,
            "APEX_PLAID_ACCESS_TOKENS": json.dumps({self.item: plaid_samples.DEMO_ACCESS_TOKEN}),
            "APEX_PLAID_PAGE_SIZE": "25",  # loops of several pages: all-or-nothing pagination under faults
            "APEX_PLAID_POLL_INTERVAL_SECONDS": "15",
            "APEX_PLAID_TIMEOUT_SECONDS": "10",
        }

    def accounts(self) -> list[str]:
        return [self.item]

    def _txn(self, tid: str) -> dict[str, Any]:
        rng = self.rng
        merchants = [
            ("PILOT 00412 JOLIET IL", "Pilot Flying J", ("TRANSPORTATION", "TRANSPORTATION_GAS")),
            ("LOVES #0321 GARY IN", "Love's Travel Stops", ("TRANSPORTATION", "TRANSPORTATION_GAS")),
            ("IPASS TOLLWAY AUTO REPLENISH", "Illinois Tollway", ("TRANSPORTATION", "TRANSPORTATION_TOLLS")),
            ("TA PETRO 112 EFFINGHAM IL", "TravelCenters of America", ("TRANSPORTATION", "TRANSPORTATION_GAS")),
            ("ACH CREDIT ACME FOODS AP", None, ("INCOME", "INCOME_OTHER_INCOME")),
            ("ACH DEBIT SWIFT HAUL LLC CARRIER PAY", None, ("TRANSFER_OUT", "TRANSFER_OUT_ACCOUNT_TRANSFER")),
        ]
        name, merchant, category = rng.choice(merchants)
        amount = round(rng.uniform(-25000, 2500), 2)
        day = (date(2026, 3, 1) + timedelta(days=rng.randrange(60))).isoformat()
        return plaid_samples.transaction(
            tid,
            rng.choice(self.account_ids),
            amount,
            day,
            f"{name} {rng.randrange(10**6)}",
            merchant_name=merchant,
            category=category,
        )

    def grow(self) -> None:
        rng = self.rng
        with self.lock:
            roll = rng.random()
            if roll < 0.6 or len(self.live) < 5:
                tid = _rid(rng)
                doc = self._txn(tid)
                self.live[tid] = doc
                self.fake.append(self.item, ("added", doc))
            elif roll < 0.9:
                tid = rng.choice(sorted(self.live))
                doc = copy.deepcopy(self.live[tid])
                doc["amount"] = round(doc["amount"] + rng.uniform(-50, 50), 2)
                doc["merchant_name"] = doc.get("merchant_name") or "Enriched Merchant Inc"
                self.live[tid] = doc
                self.fake.append(self.item, ("modified", doc))
            else:
                tid = rng.choice(sorted(self.live))
                doc = self.live.pop(tid)
                self.fake.append(self.item, ("removed", {"transaction_id": tid, "account_id": doc["account_id"]}))
            self.changes += 1

    def inject(self, kind: str) -> str:
        if kind == "mutation":
            self.fake.mutation_on_page(self.item, self.rng.randint(1, 3))
            return "TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION on a page of the next loop"
        code = {"rate_limit": "rate_limit", "server_error": "server_error"}[kind]
        for _ in range(self.rng.randint(1, 4)):
            self.fake.fail_on_call(self.item, self.rng.randint(1, 5), code)
        return f"/transactions/sync answers {code}"

    def trigger(self) -> tuple[bytes, dict[str, str]]:
        """A SYNC_UPDATES_AVAILABLE webhook, signed by the fake as Plaid signs it."""
        body = plaid_samples.sync_updates_available_body()
        return body, self.fake.sign(body)

    def expected(self) -> list[Expected]:
        now = datetime.now(UTC)
        out: list[Expected] = []
        with self.lock:
            final = self.fake.final_state(self.item)
            seen = {doc["transaction_id"] for _, doc in self.fake.items[self.item].log}
        for tid in sorted(seen):
            key = RecordKey("plaid", tid)
            doc = final.get(tid)
            if doc is None:
                out.append(Expected(key, None, deleted=True))
            else:
                attrs = _jsonable(transaction_record(doc, self.item, 0, now).attributes)
                out.append(Expected(key, None, attributes=attrs))
        return out

    def final_cursor(self) -> str:
        with self.lock:
            return self.fake._cursor(self.item, len(self.fake.items[self.item].log))

    def cursor_ok(self, account: str, cursor: str | None) -> tuple[bool, str]:
        want = self.final_cursor()
        have = SyncCursor.decode(cursor).plaid if cursor else None
        return have == want, f"plaid cursor {have!r}, vendor's final {want!r}"


# -- HubSpot --------------------------------------------------------------------------------------


class Crm(Vendor):
    """HubSpot CRM v3: contacts, companies and deals created, changed, associated, archived."""

    name = source = "crm"
    fault_kinds = ("rate_limit", "server_error", "truncated", "drop")
    types = ("contacts", "companies", "deals")

    def __init__(self, rng: random.Random) -> None:
        super().__init__(rng)
        self.fake = FakeHubSpot()
        crm_seed(self.fake)
        self.connector = CrmConnector()

    def make_server(self) -> FakeVendorServer:
        return FakeHubSpotServer(self.fake)

    def env(self) -> dict[str, str]:
        return {
            "APEX_CRM_BASE_URL": self.url,
            "APEX_CRM_ACCESS_TOKEN": CRM_TOKEN,
            "APEX_CRM_SETTLE_SECONDS": "0",
            "APEX_CRM_ARCHIVED_SWEEP_SECONDS": "0",
            "APEX_CRM_POLL_INTERVAL_SECONDS": "15",
            "APEX_CRM_PAGE_SIZE": "20",
            "APEX_CRM_TIMEOUT_SECONDS": "10",
        }

    def accounts(self) -> list[str]:
        return list(self.types)

    def grow(self) -> None:
        rng, fake = self.rng, self.fake
        with fake.lock:
            live = {t: [o for o in fake.objects[t].values() if o.archived_ms is None] for t in self.types}
        roll = rng.random()
        n = rng.randrange(10**6)
        if roll < 0.35:
            kind = rng.choice(self.types)
            props = {
                "contacts": {
                    "email": f"dispatch{n}@shipper{n % 97}.example",
                    "firstname": "Pat",
                    "lastname": f"Lee{n}",
                },
                "companies": {"name": f"Carrier {n} LLC", "domain": f"carrier{n}.example", "city": "Dallas"},
                "deals": {
                    "dealname": f"Lane {n} dry van",
                    "amount": str(rng.randrange(1000, 200000)),
                    "dealstage": "qualifiedtobuy",
                },
            }[kind]
            oid = fake.add(kind, props)
            if kind != "companies" and live["companies"]:
                fake.associate(kind, oid, "companies", rng.choice(live["companies"]).id)
        elif roll < 0.85:
            kind = rng.choice(self.types)
            if live[kind]:
                obj = rng.choice(live[kind])
                prop = {"contacts": "jobtitle", "companies": "city", "deals": "dealstage"}[kind]
                fake.update(kind, obj.id, {prop: f"v{n}"})
        elif roll < 0.95:
            if live["deals"] and live["contacts"]:
                deal, contact = rng.choice(live["deals"]), rng.choice(live["contacts"])
                fake.associate("deals", deal.id, "contacts", contact.id)
                fake.update("deals", deal.id, {"dealstage": f"linked{n}"})  # the association shows at the next change
        else:
            kind = rng.choice(self.types)
            if len(live[kind]) > 3:
                fake.archive(kind, rng.choice(live[kind]).id)
        self.changes += 1

    def inject(self, kind: str) -> str:
        times = self.rng.randint(1, 4)
        if kind == "rate_limit":
            self.fake.fail(429, times=times, retry_after=1)
        elif kind == "server_error":
            self.fake.fail(self.rng.choice([500, 502, 503]), times=times)
        else:
            self.fake.fail(200, kind="truncated", times=times)
        return f"HubSpot answers {kind} {times}x"

    def _props(self, kind: Any) -> list[str]:
        return self.connector._properties(kind)

    def expected(self) -> list[Expected]:
        out: list[Expected] = []
        with self.fake.lock:
            objs = [(t, copy.deepcopy(o)) for t in self.types for o in self.fake.objects[t].values()]
        for type_name, obj in objs:
            kind = object_type(type_name)
            if obj.archived_ms is not None:
                tomb = crm_tombstone(kind, parse_object(obj.view([kind.modified_property]), "verdict"))
                out.append(Expected(RecordKey("crm", tomb.id), tomb.version, deleted=True))
            else:
                rec = crm_record(kind, parse_object(obj.view(self._props(kind)), "verdict"))
                out.append(Expected(RecordKey("crm", rec.id), rec.version))
        return out

    def cursor_ok(self, account: str, cursor: str | None) -> tuple[bool, str]:
        kind = object_type(account)
        with self.fake.lock:
            live = [o for o in self.fake.objects[account].values() if o.archived_ms is None]
            latest = max((modified_ms(kind, parse_object(o.view(None), "v")) for o in live), default=0)
        since = crm_decode(cursor, where="verdict").since if cursor else 0
        return since >= latest, f"crm {account} cursor since {since}, latest change {latest}"


# -- QuickBooks -----------------------------------------------------------------------------------


class Financial(Vendor):
    """QuickBooks Online CDC of one company: invoices, payments, bills, customers, vendors."""

    name = source = "financial"
    fault_kinds = ("rate_limit", "server_error", "truncated", "drop")

    def __init__(self, rng: random.Random) -> None:
        super().__init__(rng)
        self.fake = FakeQuickBooks()
        self.refresh = self.fake.connect(REALM)
        self.ids = fin_seed(self.fake, REALM)

    def make_server(self) -> FakeVendorServer:
        return FakeQuickBooksServer(self.fake)

    def env(self) -> dict[str, str]:
        return {
            "APEX_FINANCIAL_BASE_URL": self.url,
            "APEX_FINANCIAL_TOKEN_URL": f"{self.url}/oauth2/v1/tokens/bearer",
            "APEX_FINANCIAL_CLIENT_ID": CLIENT_ID,
            "APEX_FINANCIAL_CLIENT_SECRET": CLIENT_SECRET,
            "APEX_FINANCIAL_REFRESH_TOKENS": json.dumps({REALM: self.refresh}),
            "APEX_FINANCIAL_POLL_INTERVAL_SECONDS": "15",
            "APEX_FINANCIAL_TIMEOUT_SECONDS": "10",
        }

    def accounts(self) -> list[str]:
        return [REALM]

    def grow(self) -> None:
        rng, fake = self.rng, self.fake
        with fake.lock:
            live = [(e, oid) for (e, oid), o in fake.objects[REALM].items() if not o.deleted]
        roll = rng.random()
        n = rng.randrange(10**6)
        if roll < 0.4:
            customer = self.ids["acme"] if rng.random() < 0.5 else self.ids["blue"]
            fake.add(
                "Invoice",
                {
                    "DocNumber": f"INV-{n}",
                    "TxnDate": "2026-03-10",
                    "DueDate": "2026-04-09",
                    "TotalAmt": float(rng.randrange(500, 9000)),
                    "Balance": float(rng.randrange(0, 500)),
                    "CustomerRef": {"value": customer},
                    "CurrencyRef": {"value": "USD"},
                    "Line": [{"Amount": 1.0, "Description": f"Linehaul load {n}", "DetailType": "SalesItemLineDetail"}],
                },
                realm=REALM,
            )
        elif roll < 0.9 and live:
            entity, oid = rng.choice(live)
            fake.update(entity, oid, {"PrivateNote": f"changed {n}"}, realm=REALM)
        elif live:
            entity, oid = rng.choice([x for x in live if x[0] == "Invoice"] or live)
            fake.delete(entity, oid, realm=REALM)
        self.changes += 1

    def inject(self, kind: str) -> str:
        times = self.rng.randint(1, 3)
        if kind == "rate_limit":
            self.fake.fail(429, times=times, retry_after=1)
        elif kind == "server_error":
            self.fake.fail(self.rng.choice([500, 503]), times=times, path="cdc")
        else:
            self.fake.fail(200, kind="truncated", times=times, path="cdc")
        return f"QuickBooks answers {kind} {times}x"

    def _objects(self) -> dict[str, list[Any]]:
        by_entity: dict[str, list[Any]] = {}
        with self.fake.lock:
            for (entity, _), obj in self.fake.objects[REALM].items():
                by_entity.setdefault(entity, []).append(copy.deepcopy(obj))
        return by_entity

    def expected(self) -> list[Expected]:
        by_entity = self._objects()
        doc = {
            "CDCResponse": [{"QueryResponse": [{e: [o.view() for o in objs]} for e, objs in by_entity.items()]}],
            "time": qbo_time(time.time()),
        }
        out = []
        for change in parse_cdc(_jsonable(doc), "verdict").changes:
            rec = fin_record(REALM, change)
            out.append(Expected(RecordKey("financial", rec.id), rec.version, deleted=rec.deleted))
        return out

    def cursor_ok(self, account: str, cursor: str | None) -> tuple[bool, str]:
        state = fin_decode(cursor, where="verdict")
        problems = []
        for entity, objs in self._objects().items():
            if entity not in DEFAULT_ENTITIES:
                continue
            latest = max(o.updated for o in objs)
            since = state.of(entity)
            if since is None or since.timestamp() < latest:
                problems.append(f"{entity}: since {since}, latest change {parse_time(qbo_time(latest))}")
        return not problems, "; ".join(problems) or "financial cursor covers every change"


# -- SONAR ------------------------------------------------------------------------------------------


class Sonar(Vendor):
    """SONAR tickers with revised values (same version, new content: the later write wins)."""

    name = source = "sonar"
    fault_kinds = ("rate_limit", "server_error", "drop")
    tickers = sonar_samples.DEMO_TICKERS.split(",")
    initial_days = 14
    lookback_days = 5

    def __init__(self, rng: random.Random) -> None:
        super().__init__(rng)
        self.fake = FakeSonar(limit=600)

    def make_server(self) -> FakeVendorServer:
        return FakeVendorServer(sonar_app(self.fake), name="fake SONAR")

    def env(self) -> dict[str, str]:
        return {
            "APEX_SONAR_BASE_URL": self.url,
            "APEX_SONAR_USERNAME": self.fake.username,
            "APEX_SONAR_PASSWORD": self.fake.password,
            "APEX_SONAR_WEBHOOK_SECRET": self.fake.webhook_secret,
            "APEX_SONAR_TIMESTAMP_HEADER": "X-Sonar-Timestamp",
            "APEX_SONAR_TICKERS": sonar_samples.DEMO_TICKERS,
            "APEX_SONAR_INITIAL_DAYS": str(self.initial_days),
            "APEX_SONAR_LOOKBACK_DAYS": str(self.lookback_days),
            "APEX_SONAR_POLL_INTERVAL_SECONDS": "15",
            "APEX_SONAR_REQUESTS_PER_MINUTE": "240",
            "APEX_SONAR_RATE_LIMIT_BACKOFF_SECONDS": "2",
            "APEX_SONAR_TIMEOUT_SECONDS": "10",
        }

    def accounts(self) -> list[str]:
        return list(self.tickers)

    def grow(self) -> None:
        ticker = self.rng.choice(self.tickers)
        day = datetime.now(UTC).date() - timedelta(days=self.rng.randrange(self.lookback_days - 1))
        self.fake.revise(ticker, day, round(self.rng.uniform(1, 20), 2))
        self.changes += 1

    def inject(self, kind: str) -> str:
        times = self.rng.randint(1, 3)
        if kind == "rate_limit":
            self.fake.fail_next(429, times, retry_after=1)
        else:
            self.fake.fail_next(self.rng.choice([500, 503]), times)
        return f"SONAR answers {kind} {times}x"

    def alert(
        self, alert_id: str, triggered: datetime, value: float, *, body_extra: dict[str, Any] | None = None
    ) -> tuple[bytes, dict[str, str]]:
        ticker = self.rng.choice(self.tickers)
        doc = {
            "alertId": alert_id,
            "name": f"{ticker} moved",
            "ticker": ticker,
            "value": value,
            "threshold": 8.0,
            "condition": "above",
            "triggeredAt": triggered.isoformat().replace("+00:00", "Z"),
            "message": f"{ticker} rose above 8.00 ({value:.2f}): carriers are rejecting more tenders.",
            **(body_extra or {}),
        }
        return self.fake.alert(doc)

    def expected(self) -> list[Expected]:
        today = datetime.now(UTC).date()
        out = []
        for symbol in self.tickers:
            ticker = Ticker.parse(symbol)
            for back in range(self.initial_days):
                day = today - timedelta(days=back)
                value, _rev = self.fake.value(ticker.index, ticker.granularity, day)
                point = {
                    "ticker": ticker.index,
                    "granularity": ticker.granularity,
                    "data_Timestamp": f"{day.isoformat()}T00:00:00",
                    "data_Value": value,
                }
                rec = value_record(ticker, point, [])
                assert rec is not None
                out.append(Expected(RecordKey("sonar", rec.id), rec.version, attributes=_jsonable(rec.attributes)))
        return out

    def cursor_ok(self, account: str, cursor: str | None) -> tuple[bool, str]:
        today = datetime.now(UTC).date().isoformat()
        return cursor == today, f"sonar {account} cursor {cursor!r}, today {today}"


# -- Samsara feed -------------------------------------------------------------------------------------


@dataclass
class GrowingSamsara(FakeSamsara):
    """Samsara's fake feed, with new stat points appended while the run goes on."""

    def append_points(self, rng: random.Random, n: int = 1) -> None:
        with self._lock:
            last = max(
                (datetime.fromisoformat(i.point["time"].replace("Z", "+00:00")) for i in self._items[-50:]),
                default=datetime(2026, 3, 10, 12, tzinfo=UTC),
            )
            for k in range(n):
                v = rng.randrange(self.vehicles)
                moment = last + timedelta(seconds=1 + k, milliseconds=v)
                point = {
                    "time": _iso(moment),
                    "latitude": round(39.9 + rng.uniform(-1, 1), 6),
                    "longitude": round(-83.0 + rng.uniform(-1, 1), 6),
                    "headingDegrees": rng.randrange(360),
                    "speedMilesPerHour": round(rng.uniform(0, 68), 1),
                    "isEcuSpeed": True,
                    "reverseGeo": {"formattedLocation": "near Columbus, OH"},
                }
                self._items.append(FeedItem(v, "gps", point))
                if rng.random() < 0.2:
                    self._items.append(FeedItem(v, "engineStates", {"time": _iso(moment), "value": "On"}))

    def whole_feed(self) -> dict[str, Any]:
        """Every point as one answer (what a reader that read every page has seen)."""
        with self._lock:
            saved = self.page_size
            self.page_size = len(self._items) + 1
            try:
                _, body, _ = self._feed(f"Bearer {self.token}", "gps,engineStates", None)
            finally:
                self.page_size = saved
            return body

    def final_cursor(self) -> str:
        with self._lock:
            return self._cursor(len(self._items))


class Samsara(Vendor):
    """Samsara's vehicle stats feed (the stream) for one organisation."""

    name = "samsara-feed"
    source = "samsara"
    fault_kinds = ("rate_limit", "server_error", "drop")
    token = "chaos-samsara-token"

    def __init__(self, rng: random.Random) -> None:
        super().__init__(rng)
        self.fake = GrowingSamsara(vehicles=8, points=20, page_size=100, token=self.token, engine_every=5)

    def make_server(self) -> FakeVendorServer:
        return FakeServer(self.fake)

    def env(self) -> dict[str, str]:
        return {
            "APEX_SAMSARA_API_TOKEN": self.token,
            "APEX_SAMSARA_BASE_URL": self.url,
            "APEX_SAMSARA_FEED_WAIT_SECONDS": "5",
            "APEX_SAMSARA_HTTP_TIMEOUT_SECONDS": "10",
        }

    def accounts(self) -> list[str]:
        return [DEFAULT_ACCOUNT]

    def grow(self) -> None:
        self.fake.append_points(self.rng, self.rng.randint(1, 5))
        self.changes += 1

    def inject(self, kind: str) -> str:
        if kind == "rate_limit":
            self.fake.rate_limit_every = self.rng.randint(2, 4)
            threading.Timer(self.rng.uniform(5, 20), lambda: setattr(self.fake, "rate_limit_every", None)).start()
            return f"feed answers 429 every {self.fake.rate_limit_every} calls for a while"
        n = self.rng.randint(1, 6)
        self.fake.fail_next_5xx = n
        return f"feed answers 503 {n}x"

    def expected(self) -> list[Expected]:
        answer = feed_answer(self.fake.whole_feed(), DEFAULT_ACCOUNT)
        return [Expected(RecordKey("samsara", r.id), r.version) for r in answer.records]

    def cursor_ok(self, account: str, cursor: str | None) -> tuple[bool, str]:
        want = self.fake.final_cursor()
        return cursor == want, f"samsara feed cursor {cursor!r}, vendor's final {want!r}"


# -- Turvo --------------------------------------------------------------------------------------------


class Turvo(Vendor):
    """Turvo's API, fetched by the connector for every webhook; shipments change status."""

    name = source = "turvo"
    fault_kinds = ("rate_limit", "server_error", "drop")
    statuses = [
        ("2101", "Tendered"),
        ("2102", "Covered"),
        ("2104", "At pickup"),
        ("2105", "En route"),
        ("2106", "At delivery"),
        ("2107", "Delivered"),
    ]

    def __init__(self, rng: random.Random) -> None:
        super().__init__(rng)
        self.fake = FakeTurvo()
        base = turvo_samples.SHIPMENT
        self.shipments: list[str] = []
        for i in range(40):
            doc = copy.deepcopy(base)
            doc["id"] = 1000400000 + i
            doc["customId"] = f"M{300000 + i}"
            self.fake.put("shipments", doc)
            self.shipments.append(str(doc["id"]))
        self._last: dict[str, datetime] = {}

    def make_server(self) -> FakeVendorServer:
        return FakeVendorServer(turvo_app(self.fake), name="fake Turvo")

    def env(self) -> dict[str, str]:
        f = self.fake
        return {
            "APEX_TURVO_BASE_URL": self.url + "/v1",
            "APEX_TURVO_API_KEY": f.api_key,
            "APEX_TURVO_CLIENT_ID": f.client_id,
            "APEX_TURVO_CLIENT_SECRET": f.client_secret,
            "APEX_TURVO_USERNAME": f.username,
            "APEX_TURVO_PASSWORD": f.password,
            "APEX_TURVO_WEBHOOK_TOKEN": f.webhook_token,
            "APEX_TURVO_WEBHOOK_HEADER": "Authorization",
            "APEX_TURVO_TIMEOUT_SECONDS": "10",
        }

    def update(self) -> tuple[bytes, dict[str, str], str]:
        """A shipment changes at Turvo, and the webhook that says so (body, headers, entity id)."""
        with self.lock:
            sid = self.rng.choice(self.shipments)
            now = max(
                datetime.now(UTC), self._last.get(sid, datetime.min.replace(tzinfo=UTC)) + timedelta(milliseconds=5)
            )
            self._last[sid] = now
            stamp = now.isoformat(timespec="milliseconds").replace("+00:00", "Z")
            entity = copy.deepcopy(self.fake.entities["shipments"][sid])
            key, value = self.rng.choice(self.statuses)
            entity["status"] = {
                "code": {"key": key, "value": value},
                "notes": f"update {self.rng.randrange(10**6)}",
                "lastUpdatedOn": stamp,
            }
            # Turvo keeps every status in the history: a later fetch still shows this one
            entity["statusHistory"] = [
                *entity.get("statusHistory", []),
                {"code": {"key": key, "value": value}, "lastUpdatedOn": stamp},
            ]
            entity["updated"] = stamp
            self.fake.put("shipments", entity)
            self.changes += 1
        doc = {
            "tenantId": "1203",
            "eventName": "SHIPMENT_STATUS_UPDATE",
            "eventTime": (now + timedelta(milliseconds=1)).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "eventPayload": {"id": int(sid), "status": entity["status"]},
        }
        body, headers = self.fake.webhook(doc)
        return body, headers, sid

    def entity(self, collection: str, entity_id: str) -> dict[str, Any] | None:
        with self.lock:
            found = self.fake.entities.get(collection, {}).get(entity_id)
            return copy.deepcopy(found) if found is not None else None

    def inject(self, kind: str) -> str:
        times = self.rng.randint(1, 4)
        if kind == "rate_limit":
            self.fake.fail_next(429, times, retry_after=1)
        else:
            self.fake.fail_next(self.rng.choice([500, 502, 503]), times)
        return f"Turvo API answers {kind} {times}x"


def all_vendors(rng: random.Random) -> dict[str, Vendor]:
    vendors: list[Vendor] = [
        Plaid(random.Random(rng.random())),
        Crm(random.Random(rng.random())),
        Financial(random.Random(rng.random())),
        Sonar(random.Random(rng.random())),
        Samsara(random.Random(rng.random())),
        Turvo(random.Random(rng.random())),
    ]
    return {v.name: v for v in vendors}
