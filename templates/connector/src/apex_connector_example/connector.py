"""A signed webhook source: verify on the raw body, decode, parse into records."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

from pydantic_settings import BaseSettings

from apex_connector_example.settings import ExampleSettings
from apex_platform.contracts import WebhookReply
from apex_platform.errors import PayloadError, SignatureError
from apex_platform.models import Entity, InboundEvent, Priority, Record, SourceMode
from apex_platform.settings import load, secret_values


class ExampleConnector:
    name = "example"
    mode: SourceMode = "webhook"
    priority: Priority = "P2"
    settings_model: ClassVar[type[BaseSettings] | None] = ExampleSettings

    def __init__(self, settings: ExampleSettings | None = None) -> None:
        self._settings = settings  # read lazily: registration must not need any setting

    @property
    def settings(self) -> ExampleSettings:
        if self._settings is None:
            self._settings = load(ExampleSettings)
        return self._settings

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        secrets = secret_values(self.settings.signing_secret)  # several while one rotates
        if not secrets:
            raise SignatureError("APEX_EXAMPLE_SIGNING_SECRET is not set: every delivery is refused")
        given = {k.lower(): v for k, v in headers.items()}.get("x-example-signature", "").encode()
        matched = False
        for secret in secrets:  # every one compared, in constant time
            expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
            matched |= hmac.compare_digest(given, expected.encode())
        if not matched:
            raise SignatureError("X-Example-Signature is missing or does not match the body")

    def receive(self, headers: Mapping[str, str], body: bytes) -> InboundEvent | WebhookReply:
        try:
            doc: Any = json.loads(body)
        except (UnicodeDecodeError, ValueError) as exc:
            raise PayloadError(f"body is not JSON: {exc}") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("id"), str) or not doc["id"]:
            raise PayloadError("body must be a JSON object with a non-empty string 'id'")
        return InboundEvent(source=self.name, event_id=doc["id"], received_at=datetime.now(UTC), payload=doc)

    def parse(self, event: InboundEvent) -> list[Record]:
        doc = event.payload
        occurred = datetime.fromisoformat(doc["time"]) if isinstance(doc.get("time"), str) else event.received_at
        return [
            Record(
                source=self.name,
                kind="example.event",
                id=event.event_id,
                version=int(occurred.timestamp() * 1_000_000),
                occurred_at=occurred,
                title=str(doc.get("title", "")),
                text=str(doc.get("text", "")),
                attributes={k: v for k, v in doc.items() if k not in {"id", "title", "text"}},
                entities=tuple(Entity(type="Shipment", key=str(s)) for s in doc.get("shipments", []) if s),
            )
        ]
