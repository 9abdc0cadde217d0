"""`TurvoConnector`: token-checked webhooks, each fetched in full from the Turvo API, parsed."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

import httpx
from pydantic_settings import BaseSettings

from apex_connector_turvo.client import TurvoClient
from apex_connector_turvo.records import SOURCE, build_records
from apex_connector_turvo.settings import TurvoSettings, split_list
from apex_connector_turvo.webhook import check_token, decode_body, read_delivery
from apex_platform.contracts import SampleDelivery
from apex_platform.errors import PayloadError, SettingsError, VendorError
from apex_platform.models import InboundEvent, Priority, Record, SourceMode
from apex_platform.settings import load, secret_values
from apex_platform.vendor_http import fill_path


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

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

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
        under ``webhook``); a 404 becomes ``not_found`` (see APEX_TURVO_NOT_FOUND)."""
        payload = self._payload(event)
        kind, entity_id = str(payload["entity_type"]), str(payload["entity_id"])
        template = self.settings.entity_path_map().get(kind)
        if template is None:
            update = {"reason": f"no API path is configured for Turvo entity type {kind!r} (APEX_TURVO_ENTITY_PATHS)"}
            return event.model_copy(update={"payload": {**payload, **update}})
        path = fill_path(template, f"Turvo {kind}", id=entity_id)  # checked and quoted: one segment
        doc = await self.client.get(path)
        entity = unwrap(doc) if doc is not None else None
        if entity is None:
            policy = self.settings.not_found
            if policy == "fail":
                raise VendorError(f"turvo: {kind} {entity_id} not found at GET {path}", retryable=False)
            if policy == "keep_webhook":
                update = {"reason": f"GET {path} answered 404; the webhook is kept as received"}
                return event.model_copy(update={"payload": {**payload, **update}})
            return event.model_copy(update={"payload": {**payload, "not_found": True}})
        return event.model_copy(update={"payload": {**payload, "entity": entity}})

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
