"""The mixed load of a chaos run and the senders that deliver it as vendors do.

Bodies are built from the vendors' own published examples kept in the repo (each
connector's `samples`, Samsara's RouteStopArrival example, the X12 examples) with fresh
ids and times, realistic sizes (several KB; a few near the 1 MiB body limit), a small
share of poison values a store can never hold (NUL, lone surrogates, numbers beyond 64
bits) and of redeliveries.

Senders sign every attempt, retry what was not answered 2xx with jittered exponential
backoff (honouring Retry-After), give up on other 4xx, and sometimes re-send what was
answered 2xx. Every delivery and its fate is kept in the ledger the verdict reads.
"""

from __future__ import annotations

import asyncio
import copy
import json
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from apex_connector_edi import samples as edi_samples
from apex_connector_frontapp import samples as front_samples
from apex_connector_llm import samples as llm_samples
from apex_connector_samsara import samples as samsara_samples
from apex_connector_samsara.fake_vendor import webhook_request
from tests.chaos.topology import ROOT
from tests.chaos.vendors import Plaid, Sonar, Turvo

MAX_BODY = 1024 * 1024
#: EdiFabric's published X12 samples, kept in the EDI connector's tests
EDI_SAMPLES = ROOT / "connectors-edi" / "tests" / "data" / "third_party"

#: what a poison value is made of (as JSON escapes, so the body itself is valid UTF-8 JSON):
#: NUL in text (stores keep it faithfully), NUL in a record id (no store can key it: it is
#: quarantined), a lone surrogate and a number beyond every 64-bit type (refused at the edge)
POISONS = ("nul", "nul_id", "surrogate", "huge_number")

_WORDS = [
    "load",
    "pickup",
    "delivery",
    "appointment",
    "consignee",
    "shipper",
    "carrier",
    "dispatch",
    "PRO",
    "BOL",
    "reefer",
    "dry",
    "van",
    "flatbed",
    "pallets",
    "lumper",
    "detention",
    "layover",
    "ETA",
    "POD",
    "receiving",
    "dock",
    "door",
    "trailer",
    "tractor",
    "driver",
    "hours",
    "lane",
    "rate",
    "tender",
    "accepted",
    "rejected",
    "fuel",
    "surcharge",
    "accessorial",
    "Columbus",
    "Dallas",
    "Atlanta",
    "Chicago",
    "Memphis",
    "Joliet",
    "Indianapolis",
    "Louisville",
    "warehouse",
    "cross-dock",
    "seal",
    "number",
    "temperature",
    "setpoint",
    "check",
    "call",
]


def prose(rng: random.Random, size: int) -> str:
    """About `size` characters of freight-desk English (not random bytes: the entity enricher reads it)."""
    out: list[str] = []
    n = 0
    while n < size:
        words = [rng.choice(_WORDS) for _ in range(rng.randint(6, 18))]
        if rng.random() < 0.3:
            words.append(f"PRO {rng.randrange(10**7, 10**8)}")
        if rng.random() < 0.2:
            words.append(f"load {rng.randrange(10**6, 10**7)}")
        sentence = " ".join(words).capitalize() + ". "
        out.append(sentence)
        n += len(sentence)
    return "".join(out)[:size]


def _now_iso(ms: bool = True) -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds" if ms else "seconds").replace("+00:00", "Z")


@dataclass
class Delivery:
    """One HTTP delivery and everything the senders saw of it."""

    seq: int
    source: str
    path: str
    body: bytes
    sign: Callable[[bytes], dict[str, str]]
    #: the harness's own name for it (the inbox key the API will answer, where it can be known)
    key: str
    poison: str | None = None
    probe: bool = False
    #: a Plaid SYNC_UPDATES_AVAILABLE trigger (nothing stored itself: it wakes the poller)
    trigger: bool = False
    #: the vendor retries every answer but 2xx (Plaid), not only 429 and 5xx
    retry_any: bool = False
    meta: dict[str, Any] = field(default_factory=dict)
    created: float = field(default_factory=time.monotonic)
    attempts: int = 0
    statuses: list[int] = field(default_factory=list)
    errors: int = 0
    acked_at: float | None = None
    answer: str | None = None
    event_id: str | None = None
    rejected: int | None = None
    rejected_reason: str | None = None
    resends: list[tuple[int, str | None]] = field(default_factory=list)
    #: Turvo: the entity the webhook names, as the fake held it when the webhook was sent
    entity: dict[str, Any] | None = None

    @property
    def acked(self) -> bool:
        return self.acked_at is not None

    def summary(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "source": self.source,
            "key": self.key,
            "event_id": self.event_id,
            "bytes": len(self.body),
            "poison": self.poison,
            "probe": self.probe,
            "trigger": self.trigger,
            "attempts": self.attempts,
            "statuses": self.statuses[-20:],
            "errors": self.errors,
            "acked": self.acked,
            "answer": self.answer,
            "rejected": self.rejected,
            "rejected_reason": self.rejected_reason,
            "resends": self.resends,
            "meta": self.meta,
        }


class Sender:
    """Vendor-like HTTP senders over every API process of the run."""

    def __init__(
        self,
        urls: list[str],
        rng: random.Random,
        *,
        resend_share: float,
        concurrency: int,
        deadline: Callable[[], float],
    ) -> None:
        self.urls = urls
        self.rng = rng
        self.resend_share = resend_share
        self.deadline = deadline
        self.slots = asyncio.Semaphore(concurrency)
        self.tasks: set[asyncio.Task[None]] = set()
        self.http = httpx.AsyncClient(
            timeout=httpx.Timeout(30, connect=5), limits=httpx.Limits(max_connections=concurrency * 2)
        )
        self.ledger: list[Delivery] = []
        self.in_flight = 0

    def submit(self, d: Delivery) -> None:
        self.ledger.append(d)
        self.in_flight += 1  # until answered 2xx, refused or given up (waiting for a slot too)
        task = asyncio.create_task(self._deliver(d))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def send_once(self, d: Delivery, url: str | None = None) -> httpx.Response | None:
        target = url or self.rng.choice(self.urls)
        try:
            return await self.http.post(target + d.path, content=d.body, headers=d.sign(d.body))
        except httpx.HTTPError:
            return None

    async def _deliver(self, d: Delivery) -> None:
        delay = 0.25
        try:
            async with self.slots:
                while time.monotonic() < self.deadline():
                    d.attempts += 1
                    resp = await self.send_once(d)
                    if resp is None:
                        d.errors += 1
                    else:
                        d.statuses.append(resp.status_code)
                        if 200 <= resp.status_code < 300:
                            self._acked(d, resp)
                            break
                        if resp.status_code < 500 and resp.status_code != 429 and not d.retry_any:
                            d.rejected = resp.status_code
                            d.rejected_reason = resp.text[:300]
                            return
                        retry_after = _retry_after(resp)
                        if retry_after is not None:
                            delay = max(delay, retry_after)
                    await asyncio.sleep(delay * (0.5 + self.rng.random()))
                    delay = min(delay * 2, 20.0)
        finally:
            self.in_flight -= 1
        if d.acked and self.rng.random() < self.resend_share:
            await asyncio.sleep(self.rng.uniform(0, 20))  # a vendor re-sending what was answered
            resp = await self.send_once(d)
            if resp is not None:
                d.resends.append((resp.status_code, _status_of(resp)))

    def _acked(self, d: Delivery, resp: httpx.Response) -> None:
        d.acked_at = time.monotonic()
        doc: dict[str, Any] = {}
        if resp.headers.get("content-type", "").startswith("application/json"):
            try:
                doc = resp.json()
            except ValueError:
                doc = {}
        d.answer = _status_of(resp)
        if isinstance(doc, dict) and doc.get("event_id"):
            d.event_id = str(doc["event_id"])

    async def settle(self, within: float) -> None:
        """Wait (at most `within` s) for the deliveries still being retried (not for the
        vendor-like re-sends of acknowledged ones, which may sleep on)."""
        end = time.monotonic() + within
        while self.in_flight and time.monotonic() < end:
            await asyncio.sleep(0.2)

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.http.aclose()


def _retry_after(resp: httpx.Response) -> float | None:
    raw = resp.headers.get("retry-after")
    try:
        return min(float(raw), 30.0) if raw else None
    except ValueError:
        return None


def _status_of(resp: httpx.Response) -> str | None:
    """`accepted` (new to the inbox), `pending` (known, not landed yet), `duplicate`, …"""
    try:
        doc = resp.json()
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    return "pending" if doc.get("inbox") == "pending" else doc.get("status")


HUGE = "__chaos_huge_number__"


def _json(doc: Any, *, ascii_only: bool = False) -> bytes:
    """Compact JSON; the string HUGE becomes the number literal 1e400 (valid JSON, beyond
    every 64-bit type: Python reads it as infinity)."""
    text = json.dumps(doc, separators=(",", ":"), ensure_ascii=ascii_only)
    return text.replace(f'"{HUGE}"', "1e400").encode("utf-8")


def _poison_text(kind: str, text: str) -> str:
    if kind == "nul":
        return text[:40] + "\u0000" + text[40:]
    if kind == "surrogate":
        return text[:40] + "\ud83d" + text[40:]  # a lone high surrogate: valid as a JSON escape only
    return text


# -- the generators ----------------------------------------------------------------------------


class Load:
    """Builds every source's deliveries; `tick` is called by the driver at a steady rate."""

    def __init__(
        self,
        rng: random.Random,
        secrets: dict[str, str],
        vendors: dict[str, Any],
        *,
        poison_share: float,
        big_share: float,
        edi_inbox: Path,
    ) -> None:
        self.rng = rng
        self.secrets = secrets
        self.vendors = vendors
        self.poison_share = poison_share
        self.big_share = big_share
        self.edi_inbox = edi_inbox
        self.seq = 0
        self.front_open: list[dict[str, Any]] = []
        self.llm_open: list[dict[str, Any]] = []
        self.trucks = [
            {
                **samsara_samples.TRUCK,
                "id": str(281474977075800 + i),
                "name": f"Truck {4400 + i}",
                "vin": f"3AKJHHDR5LSLA{4400 + i}",
                "licensePlate": f"OH 7XR-{2200 + i}",
            }
            for i in range(20)
        ]
        self.drivers = [
            {"externalIds": {"payrollId": f"DRV-{i:04d}"}, "id": str(52100 + i), "name": f"Driver {i}"}
            for i in range(15)
        ]
        self.routes = [str(342300 + i) for i in range(10)]
        self.edi_files: list[dict[str, Any]] = []
        self.edi_control = rng.randrange(10**5, 10**6)
        self.pro_clock: dict[str, datetime] = {}

    def _seq(self) -> int:
        self.seq += 1
        return self.seq

    def _poison(self) -> str | None:
        return self.rng.choice(POISONS) if self.rng.random() < self.poison_share else None

    # Front --------------------------------------------------------------------------------------

    def front_sign(self, body: bytes) -> dict[str, str]:
        return front_samples.sign(body, self.secrets["front"])

    def front(self, *, probe: bool = False) -> Delivery:
        rng = self.rng
        poison = None if probe else self._poison()
        start = probe or poison is not None or not self.front_open or rng.random() < 0.35
        if start:
            conv: dict[str, Any] = {"id": f"cnv_{uuid.UUID(int=rng.getrandbits(128)).hex[:12]}", "step": 0}
            if not probe and poison is None:
                self.front_open.append(conv)
        else:
            conv = rng.choice(self.front_open)
        order = list(front_samples.EVENTS)
        kind = order[min(conv["step"], len(order) - 1)]
        conv["step"] += 1
        if conv["step"] >= len(order) and conv in self.front_open:
            self.front_open.remove(conv)
        event = copy.deepcopy(front_samples.EVENTS[kind])
        eid = f"evt_{uuid.UUID(int=rng.getrandbits(128)).hex[:16]}"
        payload = event["payload"]
        payload["id"] = eid
        payload["_links"]["self"] = f"{front_samples.API}/events/{eid}"
        payload["emitted_at"] = round(time.time(), 3)
        payload["conversation"]["id"] = conv["id"]
        target = payload.get("target") or {}
        data = target.get("data") if isinstance(target, dict) else None
        if isinstance(data, dict) and "body" in data:
            data["id"] = f"msg_{uuid.UUID(int=rng.getrandbits(128)).hex[:12]}"
            size = rng.randint(2_000, 12_000)
            if not probe and rng.random() < self.big_share:
                size = rng.randint(300_000, 480_000)  # Front sends the text twice (HTML and text)
            text = prose(rng, size)
            if poison in ("nul", "surrogate"):
                text = _poison_text(poison, text)
            data["body"] = f"<div>{text}</div>"
            data["text"] = text
        elif isinstance(data, dict) and kind == "new_comment_added":
            data["id"] = f"com_{uuid.UUID(int=rng.getrandbits(128)).hex[:10]}"
            data["body"] = prose(rng, rng.randint(200, 2_000))
            if poison in ("nul", "surrogate"):
                data["body"] = _poison_text(poison, data["body"])
        if poison == "huge_number":
            payload["emitted_at"] = HUGE
        body = _json(event, ascii_only=poison is not None)
        if len(body) > MAX_BODY - 4096:
            body = body[: MAX_BODY - 4096]  # never happens with the sizes above; a guard for edits
        return Delivery(
            self._seq(),
            "frontapp",
            "/webhooks/frontapp",
            body,
            self.front_sign,
            eid,
            poison=poison,
            probe=probe,
            meta={"conversation": conv["id"], "type": kind},
        )

    # Samsara webhooks ---------------------------------------------------------------------------------

    def samsara_sign(self, body: bytes) -> dict[str, str]:
        # signed at every attempt, as Samsara does (the timestamp is part of the signature)
        _, headers = webhook_request_from_body(body, self.secrets["samsara"])
        return headers

    def samsara(self) -> Delivery:
        rng = self.rng
        poison = self._poison()
        templates = samsara_samples.events()
        doc = templates[0] if rng.random() < 0.45 or poison else rng.choice(templates[1:])
        doc = copy.deepcopy(doc)
        eid = str(uuid.UUID(int=rng.getrandbits(128)))
        doc["eventId"] = eid
        truck = rng.choice(self.trucks)
        driver = rng.choice(self.drivers)
        if "eventMs" in doc:  # Webhooks 1.0
            doc["eventMs"] = int(time.time() * 1000)
            event = doc.get("event", {})
            if isinstance(event.get("device"), dict):
                event["device"].update(id=int(truck["id"]), name=truck["name"], vin=truck["vin"])
        else:
            doc["eventTime"] = _now_iso()
            data = doc.get("data", {})
            for holder in (data, data.get("document", {})):
                if isinstance(holder, dict) and isinstance(holder.get("vehicle"), dict):
                    holder["vehicle"] = {**holder["vehicle"], **truck}
                if isinstance(holder, dict) and isinstance(holder.get("driver"), dict):
                    holder["driver"] = {**holder["driver"], **driver}
            route = data.get("route")
            if isinstance(route, dict):
                route["id"] = rng.choice(self.routes)
                route["notes"] = prose(rng, rng.randint(200, 3_000))
                if poison in ("nul", "surrogate"):
                    route["id"] = f"9{rng.randrange(10**8)}"  # its own route: the poison touches no shared record
                    route["name"] = _poison_text(poison, "Route " + prose(rng, 80))
                elif poison == "nul_id":
                    route["id"] = f"9{rng.randrange(10**8)}\u0000x"  # a record id with a NUL
                elif poison == "huge_number":
                    route["id"] = f"9{rng.randrange(10**8)}"
                    doc["orgId"] = HUGE
        body = _json(doc, ascii_only=poison is not None)
        return Delivery(
            self._seq(),
            "samsara",
            "/webhooks/samsara",
            body,
            self.samsara_sign,
            eid,
            poison=poison,
            meta={"type": doc.get("eventType")},
        )

    # Turvo ----------------------------------------------------------------------------------------------

    def turvo(self) -> Delivery:
        turvo: Turvo = self.vendors["turvo"]
        body, headers, sid = turvo.update()
        fixed = dict(headers)
        d = Delivery(
            self._seq(), "turvo", "/webhooks/turvo", body, lambda _b: fixed, f"shipment:{sid}", meta={"shipment": sid}
        )
        # the entity as it is now: the least the connector's fetch can find (a later one, later)
        d.entity = turvo.entity("shipments", sid)
        return d

    # LLM pushes --------------------------------------------------------------------------------------

    def llm_sign(self, _body: bytes) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secrets['push']}", "Content-Type": "application/json"}

    def llm(self) -> Delivery:
        rng = self.rng
        poison = self._poison()
        if poison is None and self.llm_open and rng.random() < 0.4:
            conv = rng.choice(self.llm_open)  # the same conversation, grown: a new push, a higher version
            conv["messages"].append({"role": "user", "content": prose(rng, rng.randint(100, 1_500))})
            conv["messages"].append({"role": "assistant", "content": prose(rng, rng.randint(100, 2_500))})
            if len(conv["messages"]) > 30:
                self.llm_open.remove(conv)
        else:
            conv = llm_samples.conversation()
            conv["conversation_id"] = f"conv-{uuid.UUID(int=rng.getrandbits(128)).hex}"
            for m in conv["messages"]:
                if m["role"] in ("user", "assistant") and isinstance(m.get("content"), str):
                    m["content"] = m["content"] + " " + prose(rng, rng.randint(200, 3_000))
            if rng.random() < self.big_share:  # a long transcript near the body limit, in messages of ≤ 150k
                for _ in range(rng.randint(5, 6)):
                    conv["messages"].append({"role": "user", "content": prose(rng, rng.randint(120_000, 150_000))})
            if poison in ("nul", "surrogate"):
                conv["messages"][1]["content"] = _poison_text(poison, conv["messages"][1]["content"])
            elif poison == "huge_number":
                conv["metadata"]["priority"] = HUGE
            if poison is None:
                self.llm_open.append(conv)
        body = _json(conv, ascii_only=poison is not None)
        return Delivery(
            self._seq(),
            "llm",
            "/v1/records/llm",
            body,
            self.llm_sign,
            conv["conversation_id"],
            poison=poison,
            meta={"messages": len(conv["messages"])},
        )

    # SONAR alerts --------------------------------------------------------------------------------------

    def sonar(self) -> Delivery:
        rng = self.rng
        poison = self._poison()
        sonar: Sonar = self.vendors["sonar"]
        alert_id = f"al-{uuid.UUID(int=rng.getrandbits(128)).hex[:20]}"
        extra: dict[str, Any] = {}
        if poison in ("nul", "surrogate"):
            extra["message"] = _poison_text(poison, "Tender rejections above the threshold in the Atlanta market")
        elif poison == "huge_number":
            extra["value"] = HUGE
        body, _ = sonar.alert(alert_id, datetime.now(UTC), round(rng.uniform(8, 15), 2), body_extra=extra)
        if poison:
            doc = json.loads(body)
            doc.update(extra)
            body = _json(doc, ascii_only=True)
        secret = sonar.fake.webhook_secret
        # signed at every attempt: the signature covers the send time (X-Sonar-Timestamp)
        return Delivery(
            self._seq(),
            "sonar",
            "/webhooks/sonar",
            body,
            lambda b: sonar_sign(b, secret),
            f"alert:{alert_id}",
            poison=poison,
        )

    # Plaid triggers ---------------------------------------------------------------------------------------

    def plaid_trigger(self) -> Delivery:
        plaid: Plaid = self.vendors["plaid"]
        body, _ = plaid.trigger()
        return Delivery(
            self._seq(),
            "plaid",
            "/webhooks/plaid",
            body,
            lambda b: plaid.fake.sign(b),
            f"trigger:{self.seq}",
            trigger=True,
            retry_any=True,  # Plaid retries a webhook not answered 2xx, a 401 included (its README)
        )

    # EDI files -------------------------------------------------------------------------------------------

    def edi_file(self) -> dict[str, Any]:
        """Write one X12 file into the drop folder (atomically: a hidden name, then a rename)."""
        rng = self.rng
        poison = self._poison() if rng.random() < 0.5 else None
        self.edi_control += 1
        control = self.edi_control
        if rng.random() < 0.08 and not poison:
            published = sorted(EDI_SAMPLES.glob("*.x12"))
            src = rng.choice(published)  # the published example, as sent
            text = src.read_text()
            kind = f"published:{src.name}"
        elif rng.random() < 0.55:
            sets = []
            for n in range(1, rng.randint(2, 160) + 1):
                pro = f"{rng.randrange(700000, 700400)}"
                moment = self.pro_clock.get(pro, datetime(2026, 3, 1, 6, 0, tzinfo=UTC)) + timedelta(
                    minutes=rng.randint(1, 90)
                )
                self.pro_clock[pro] = moment
                sets.append(
                    edi_samples.status_set(
                        n,
                        pro=pro,
                        status=rng.choice(["X3", "X1", "AF", "X6", "D1"]),
                        date=moment.strftime("%Y%m%d"),
                        time=moment.strftime("%H%M"),
                        references=rng.randint(0, 25),
                    )
                )
            if poison:
                sets.append(_poison_status(len(sets) + 1, poison, rng))
            text = "".join(edi_samples.interchange_lines(sets, functional_id="QM", control=control))
            kind = "214"
        else:
            sets = [
                edi_samples.invoice_set(
                    n,
                    invoice=f"INV{control}{n:04d}",
                    pro=f"{rng.randrange(700000, 700400)}",
                    cents=rng.randrange(50_000, 900_000),
                )
                for n in range(1, rng.randint(1, 120) + 1)
            ]
            text = "".join(edi_samples.interchange_lines(sets, functional_id="IM", control=control))
            kind = "210"
        name = f"apxl-{control}-{kind.split(':')[0]}.x12"
        self.edi_inbox.mkdir(parents=True, exist_ok=True)
        hidden = self.edi_inbox / f".{name}.part"
        hidden.write_text(text)
        hidden.rename(self.edi_inbox / name)
        entry = {
            "seq": self._seq(),
            "name": name,
            "bytes": len(text.encode()),
            "kind": kind,
            "poison": poison,
            "text": text,
            "dropped_at": time.time(),
        }
        self.edi_files.append(entry)
        if rng.random() < 0.05:  # the carrier sends the same file again under another name
            again = f"apxl-{control}-again.x12"
            (self.edi_inbox / f".{again}.part").write_text(text)
            (self.edi_inbox / f".{again}.part").rename(self.edi_inbox / again)
            self.edi_files.append({**entry, "seq": self._seq(), "name": again, "resent_of": name})
        return entry


def _poison_status(n: int, poison: str, rng: random.Random) -> list[list[str]]:
    pro = f"99{rng.randrange(10**6)}"
    seg = edi_samples.status_set(n, pro=pro)
    for s in seg:
        if s[0] == "N1" and s[1] == "SH" and poison == "nul":
            s[2] = "ACME\x00FOODS"
        if s[0] == "B10" and poison == "nul_id":
            s[1] = f"{pro}\x00X"  # the PRO number, which names the status record
        if s[0] == "AT8" and poison == "huge_number":
            s[3] = "9" * 40  # a weight beyond 64 bits
    return seg


SONAR_TIMESTAMP_HEADER = "X-Sonar-Timestamp"


def sonar_sign(body: bytes, secret: str) -> dict[str, str]:
    from apex_connector_sonar import samples as sonar_samples

    return sonar_samples.sign_headers(body, secret, timestamp_header=SONAR_TIMESTAMP_HEADER)


def webhook_request_from_body(body: bytes, secret: str) -> tuple[bytes, dict[str, str]]:
    """Samsara's headers for an already encoded body (the fake's `webhook_request` encodes a dict)."""
    from apex_connector_samsara import signatures

    ts = int(time.time())
    headers = {
        **signatures.sign(body, secret, ts),
        "Content-Type": "application/json",
        "User-Agent": "Samsara-Webhook/fake",
        "X-Samsara-Request": uuid.uuid4().hex,
    }
    return body, headers


__all__ = ["Delivery", "Load", "Sender", "prose", "webhook_request"]
