"""`TurvoConnector`: token-checked webhooks, each fetched in full from the Turvo API, parsed."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

import httpx
from pydantic_settings import BaseSettings

from apex_connector_turvo.client import TurvoClient
from apex_connector_turvo.deletion import entity_says_deleted, list_items, webhook_says_deleted
from apex_connector_turvo.records import SOURCE, build_records
from apex_connector_turvo.settings import TurvoSettings, split_list
from apex_connector_turvo.webhook import check_token, decode_body, read_delivery
from apex_platform.capabilities import FakeVendor
from apex_platform.contracts import SampleDelivery
from apex_platform.errors import ApexError, PayloadError, SettingsError, VendorError
from apex_platform.models import InboundEvent, Priority, Record, SourceMode
from apex_platform.reconcile import ReconcilePage
from apex_platform.settings import load, secret_values
from apex_platform.vendor_http import SAFE_ID, fill_path

if TYPE_CHECKING:
    from apex_platform.testing.conformance.samples import ConformanceSamples

logger = logging.getLogger(__name__)
#: how long a proof that an entity path works (another entity read through it) is reused
PROOF_TTL_SECONDS = 60.0
_sleep = asyncio.sleep  # the re-reads' wait (tests replace it by a clock)


def unwrap(doc: dict[str, Any]) -> dict[str, Any] | None:
    """The entity inside Turvo's ``{"Status": "SUCCESS", "details": {...}}`` envelope (or a bare
    object); None when Turvo says ERROR with a not-found message."""
    status = doc.get("Status") or doc.get("status")
    details = doc.get("details")
    if isinstance(status, str) and status.upper() == "ERROR":
        info = details if isinstance(details, dict) else {}
        message = str(info.get("errorMessage") or info.get("message") or "")
        code = str(info.get("errorCode") or "")
        if "not found" in message.lower() or "NOT_FOUND" in code.upper() or "does not exist" in message.lower():
            return None
        raise VendorError(f"turvo: the API answered ERROR {code} {message[:200]}".strip(), retryable=False)
    if isinstance(details, dict):
        return details
    return doc


class TurvoConnector:
    """Turvo TMS: entity webhooks (shipment, order, carrier, customer, location), fetched by id.

    `settings=None` reads `APEX_TURVO_*` on first use: registering does no I/O and works
    while nothing is configured yet.
    """

    name = SOURCE
    mode: SourceMode = "webhook"
    priority: Priority = "P0"
    settings_model: ClassVar[type[BaseSettings] | None] = TurvoSettings
    #: `verify` is an HMAC or token check with configured secrets: the API runs it on its loop
    verify_is_local: ClassVar[bool] = True

    def __init__(
        self,
        settings: TurvoSettings | None = None,
        *,
        clock: Callable[[], float] = time.time,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._transport = transport
        self._client: TurvoClient | None = None
        #: entity type -> (when, what proved its entity path works): see `_prove_path`
        self._proofs: dict[str, tuple[float, str]] = {}

    @property
    def settings(self) -> TurvoSettings:
        if self._settings is None:
            self._settings = load(TurvoSettings)
        return self._settings

    @property
    def client(self) -> TurvoClient:
        if self._client is None:
            self._client = TurvoClient(self.settings, clock=self._clock, transport=self._transport)
        return self._client

    def start_fake_vendor(self) -> FakeVendor:
        """`FakeVendorSource`: the demo's fake Turvo API and the settings pointing at it."""
        from apex_connector_turvo import demo

        base_url, stop = demo.start_fake_vendor()
        return FakeVendor(base_url, stop, demo.demo_environment(base_url))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    def conformance_samples(self) -> ConformanceSamples:
        """What the conformance suite runs with (`ConformanceProvider`)."""
        from apex_connector_turvo.conformance import TurvoSamples

        return TurvoSamples()

    # -- WebhookSource ----------------------------------------------------------------------

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        """Raise `SignatureError` unless the configured header carries the webhook token."""
        check_token(headers, self.settings)

    def receive(self, headers: Mapping[str, str], body: bytes) -> InboundEvent:
        doc = decode_body(body)
        delivery = read_delivery(doc, self.settings)
        return InboundEvent(
            source=SOURCE,
            event_id=delivery.event_id,
            received_at=datetime.fromtimestamp(self._clock(), UTC),
            payload={
                "entity_type": delivery.entity_type,
                "entity_id": delivery.entity_id,
                "event_id": delivery.event_id,
                "event_time_us": delivery.event_time_us,
                "webhook": doc,
            },
            # the request headers hold the token: none are kept
            headers={},
        )

    # -- FetchingSource ---------------------------------------------------------------------

    async def fetch(self, event: InboundEvent) -> InboundEvent:
        """The event with the entity read from the API under ``entity`` (the webhook stays
        under ``webhook``). A 404 deletes only on evidence (see `deletion`): it becomes
        ``not_found`` with ``deleted_by`` saying why, or ``unresolved`` saying what was tried."""
        payload = self._payload(event)
        kind, entity_id = str(payload["entity_type"]), str(payload["entity_id"])
        template = self.settings.entity_path_map().get(kind)
        if template is None:
            update = {"reason": f"no API path is configured for Turvo entity type {kind!r} (APEX_TURVO_ENTITY_PATHS)"}
            return event.model_copy(update={"payload": {**payload, **update}})
        path = fill_path(template, f"Turvo {kind}", id=entity_id)  # checked and quoted: one segment
        entity = await self._read(path)
        if entity is not None:
            return self._fetched(event, payload, entity)
        said = webhook_says_deleted(payload.get("webhook"), self.settings)
        if said is not None:
            return self._deleted(event, payload, f"the webhook's {said}, and GET {path} answered 404")
        policy = self.settings.not_found
        if policy == "tombstone":
            return self._deleted(event, payload, f"GET {path} answered 404 (APEX_TURVO_NOT_FOUND=tombstone)")
        if policy == "fail":
            raise VendorError(f"turvo: {kind} {entity_id} not found at GET {path}", retryable=False)
        if policy == "keep_webhook":
            update = {"reason": f"GET {path} answered 404; the webhook is kept as received"}
            return event.model_copy(update={"payload": {**payload, **update}})
        return await self._confirm_not_found(event, payload, kind, entity_id, template, path)

    async def _read(self, path: str) -> dict[str, Any] | None:
        doc = await self.client.get(path)
        return unwrap(doc) if doc is not None else None

    def _fetched(self, event: InboundEvent, payload: dict[str, Any], entity: dict[str, Any]) -> InboundEvent:
        update: dict[str, Any] = {"entity": entity}
        said = entity_says_deleted(entity, self.settings)
        if said is not None:
            update["deleted_by"] = said
        return event.model_copy(update={"payload": {**payload, **update}})

    def _deleted(self, event: InboundEvent, payload: dict[str, Any], evidence: str) -> InboundEvent:
        return event.model_copy(update={"payload": {**payload, "not_found": True, "deleted_by": evidence}})

    async def _confirm_not_found(
        self, event: InboundEvent, payload: dict[str, Any], kind: str, entity_id: str, template: str, path: str
    ) -> InboundEvent:
        """A 404 nothing explains: read again (a change read before Turvo serves it), then
        prove the path with another entity of the collection. Proven: unresolved (or a
        tombstone under `tombstone_confirmed`). Unproven (the path, the base URL or a
        permission is wrong): retried until APEX_TURVO_NOT_FOUND_PARK_SECONDS after the
        receipt, then unresolved. The entity is never deleted on this path by default."""
        s = self.settings
        reads = 1 + s.not_found_retries
        received = event.received_at.timestamp()
        for n in range(1, s.not_found_retries + 1):
            # re-read at receipt + n times the wait: a delivery drained late (a backlog) has waited
            # already, so a batch of them is not held up
            await _sleep(max(0.0, received + n * s.not_found_retry_seconds - self._clock()))
            entity = await self._read(path)
            if entity is not None:
                return self._fetched(event, payload, entity)
        proof, problem = await self._prove_path(kind, entity_id, template)
        seen = f"GET {path} answered 404 on {reads} reads"
        if proof is not None:
            if s.not_found == "tombstone_confirmed":
                return self._deleted(
                    event, payload, f"{seen}, while {proof} (APEX_TURVO_NOT_FOUND=tombstone_confirmed)"
                )
            reason = (
                f"{seen}, while {proof}; nothing says it was deleted (a permission the API user lacks on this "
                f"{kind}, or a deletion Turvo did not announce): the {kind} is kept in every store"
            )
            return self._unresolved(event, payload, reason)
        waited = self._clock() - event.received_at.timestamp()
        settings_hint = (
            "check APEX_TURVO_BASE_URL, APEX_TURVO_ENTITY_PATHS, APEX_TURVO_LIST_PATHS and the API user's permissions"
        )
        if waited < s.not_found_park_seconds:
            raise VendorError(
                f"turvo: {seen} and the path cannot be proven: {problem}; {settings_hint}. The delivery "
                f"waits (up to APEX_TURVO_NOT_FOUND_PARK_SECONDS={s.not_found_park_seconds:g} after its receipt); "
                f"nothing is deleted",
                retryable=True,
                retry_after=s.auth_backoff_seconds,
            )
        reason = (
            f"{seen} and the path could not be proven for {waited:.0f} s: {problem}; {settings_hint}. "
            f"The {kind} is kept in every store; replay the delivery once fixed"
        )
        return self._unresolved(event, payload, reason)

    async def _prove_path(self, kind: str, entity_id: str, template: str) -> tuple[str | None, str]:
        """(what proves the path works, None if nothing does; what went wrong otherwise).
        A proof is reused for a minute: many 404s of one collection cost one proof."""
        cached = self._proofs.get(kind)
        if cached is not None and self._clock() - cached[0] < PROOF_TTL_SECONDS:
            return cached[1], ""
        proof, problem = await self._find_proof(kind, entity_id, template)
        if proof is not None:
            self._proofs[kind] = (self._clock(), proof)
        return proof, problem

    async def _find_proof(self, kind: str, entity_id: str, template: str) -> tuple[str | None, str]:
        list_path = self.settings.list_path_map().get(kind)
        if list_path is None:
            return None, f"no list path is configured for {kind} (APEX_TURVO_LIST_PATHS)"
        doc = await self.client.get(list_path, params={"start": "0", "pageSize": "5"}, missing=(403, 404))
        items = list_items(doc) if doc is not None else None
        if items is None:
            return None, f"GET {list_path} was refused or is not a list"
        others = [str(item.get("id")) for item in items if str(item.get("id")) != entity_id]
        others = [other for other in others if SAFE_ID.fullmatch(other)]
        if not others:
            return None, f"GET {list_path} lists no other {kind} to read through the same path"
        other_path = fill_path(template, f"Turvo {kind}", id=others[0])
        other = await self.client.get(other_path, missing=(403, 404))
        if other is None or unwrap(other) is None:
            return None, f"GET {other_path}, a {kind} that {list_path} lists, answered 404 or 403 too"
        return f"GET {other_path}, another {kind}, answered 200", ""

    def _unresolved(self, event: InboundEvent, payload: dict[str, Any], reason: str) -> InboundEvent:
        logger.warning("turvo: delivery %s unresolved: %s", event.event_id, reason)
        return event.model_copy(update={"payload": {**payload, "unresolved": reason}})

    def parse(self, event: InboundEvent) -> list[Record]:
        """Records of one (fetched) event. Pure."""
        payload = self._payload(event)
        received_us = int(event.received_at.timestamp() * 1_000_000)
        skew_us = round(self.settings.event_time_max_skew_seconds * 1_000_000)
        return build_records(payload, received_us, split_list(self.settings.updated_path), skew_us)

    def _payload(self, event: InboundEvent) -> dict[str, Any]:
        payload = event.payload
        if not isinstance(payload, dict) or "entity_type" not in payload or "entity_id" not in payload:
            where = f" (stored as {event.payload_ref}; resolve it first)" if event.payload_ref else ""
            raise PayloadError(f"Turvo event {event.event_id} has no entity type and id in its payload{where}")
        return payload

    # -- ReconcileSource: the list endpoints fill what the webhooks missed -------------------

    @property
    def reconcile_interval_seconds(self) -> float:
        """Seconds between passes; never raises (read when a reconciler starts): invalid
        settings surface at the first `reconcile`."""
        try:
            return self.settings.reconcile_interval_seconds
        except ApexError:
            return 300.0

    def reconcile_accounts(self) -> list[str]:
        """`APEX_TURVO_RECONCILE_ACCOUNTS`, entity types (`shipment,order`): off (empty) by default."""
        return self.settings.reconcile_account_names()

    async def reconcile(self, account: str, cursor: str | None) -> ReconcilePage:
        """The entities of type `account` updated in the next window after `cursor` (see `listing`)."""
        from apex_connector_turvo.listing import Lister

        return await Lister(self.settings, self.client, clock=self._clock).read_page(account, cursor)

    # -- DemoSource -------------------------------------------------------------------------

    def demo_deliveries(self) -> list[SampleDelivery]:
        """Token-authenticated sample webhooks naming the entities the fake Turvo server holds."""
        from apex_connector_turvo import samples

        tokens = secret_values(self.settings.webhook_token)
        if not tokens:
            raise SettingsError("APEX_TURVO_WEBHOOK_TOKEN is not set; the demo cannot authenticate Turvo webhooks")
        header = self.settings.webhook_header
        return [
            SampleDelivery(
                path=f"/webhooks/{self.name}",
                body=body,
                headers=samples.webhook_headers(tokens[0], header),
            )
            for body in samples.webhook_bodies()
        ]
