"""`FrontConnector`: verifies, receives and parses Front application webhooks, and
reconciles what they missed from Front's List Events API (`ReconcileSource`)."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, ClassVar

from pydantic_settings import BaseSettings

from apex_connector_frontapp import signatures
from apex_connector_frontapp.envelope import decode_body, is_sync, read_delivery
from apex_connector_frontapp.records import SOURCE, build_records
from apex_connector_frontapp.settings import FrontSettings
from apex_platform.capabilities import FakeVendor
from apex_platform.contracts import SampleDelivery, WebhookReply
from apex_platform.errors import ApexError, PayloadError, SettingsError, SignatureError
from apex_platform.models import InboundEvent, Priority, Record, SourceMode
from apex_platform.reconcile import ReconcilePage
from apex_platform.settings import load, secret_values

if TYPE_CHECKING:
    from apex_platform.testing.conformance.samples import ConformanceSamples

log = logging.getLogger(__name__)

# Front's challenge is a short random string; a long one is not Front and is not echoed.
_MAX_CHALLENGE_CHARS = 1024


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    # HTTP header names are case-insensitive and hosts differ in how they present them.
    return {str(name).lower(): value for name, value in headers.items()}


class FrontConnector:
    """Front (frontapp.com) application webhooks: conversations, messages, comments.

    `settings=None` reads `APEX_FRONTAPP_*` on first use, so registering the connector
    does no I/O and works while the signing secret is still unset.
    """

    name = SOURCE
    mode: SourceMode = "webhook"
    priority: Priority = "P0"
    settings_model: ClassVar[type[BaseSettings] | None] = FrontSettings
    #: `verify` is an HMAC or token check with configured secrets: the API runs it on its loop
    verify_is_local: ClassVar[bool] = True

    def __init__(
        self,
        settings: FrontSettings | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._clock = clock

    @property
    def settings(self) -> FrontSettings:
        if self._settings is None:
            self._settings = load(FrontSettings)
        return self._settings

    # -- DemoSource: sample traffic for `apex-platform demo` -------------------------------

    def demo_environment(self) -> dict[str, str]:
        """A throw-away signing secret, used only when none is configured."""
        return {"APEX_FRONTAPP_SIGNING_SECRET": secrets.token_urlsafe(32)}

    def demo_deliveries(self) -> list[SampleDelivery]:
        """The sample events, each signed now with the configured secret, as Front would."""
        from apex_connector_frontapp import samples

        secrets_ = secret_values(self.settings.signing_secret)
        if not secrets_:
            raise SettingsError("APEX_FRONTAPP_SIGNING_SECRET is not set; the demo cannot sign Front events")
        deliveries = []
        for event in samples.events():
            body = samples.encode(event)
            headers = samples.sign(body, secrets_[0])
            deliveries.append(SampleDelivery(path=f"/webhooks/{self.name}", body=body, headers=headers))
        return deliveries

    def start_fake_vendor(self) -> FakeVendor:
        """`FakeVendorSource`: the demo's fake Front (List Events) API and the settings pointing at it."""
        from apex_connector_frontapp import demo

        base_url, stop = demo.start_fake_vendor()
        return FakeVendor(base_url, stop, demo.demo_environment(base_url))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    def conformance_samples(self) -> ConformanceSamples:
        """What the conformance suite runs with (`ConformanceProvider`)."""
        from apex_connector_frontapp.conformance import FrontSamples

        return FrontSamples()

    # -- ReconcileSource: List Events fills what the webhooks missed -------------------------

    @property
    def reconcile_interval_seconds(self) -> float:
        """Seconds between passes. Never fails (read when a reconciler starts); invalid
        settings surface at the first `reconcile`."""
        try:
            return self.settings.reconcile_interval_seconds
        except ApexError:
            return 300.0

    def reconcile_accounts(self) -> list[str]:
        """`APEX_FRONTAPP_RECONCILE_ACCOUNTS`: off (empty) by default."""
        return self.settings.reconcile_account_names()

    async def reconcile(self, account: str, cursor: str | None) -> ReconcilePage:
        """The List Events page after `cursor` (see `events_api`)."""
        from apex_connector_frontapp.events_api import EventsReader

        return await EventsReader(self.settings, clock=self._clock).read_page(account, cursor)

    # -- WebhookSource ---------------------------------------------------------------------

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        """Raise `SignatureError` unless `body` was signed by Front within the replay window."""
        settings = self.settings
        lowered = _lower(headers)
        provided = lowered.get(signatures.SIGNATURE_HEADER, "").strip()
        timestamp = lowered.get(signatures.TIMESTAMP_HEADER)

        if timestamp is None and settings.accept_rule_webhooks:
            self._verify_rule(settings, provided, body)
            return

        if settings.signing_secret is None:
            raise SignatureError(
                "Front webhook rejected: no signing secret is configured. Set APEX_FRONTAPP_SIGNING_SECRET "
                "to the app secret of your Front app (Developers > app > Basic information)"
            )
        if not provided:
            raise SignatureError("Front webhook rejected: the X-Front-Signature header is missing")
        if timestamp is None or not timestamp.strip():
            raise SignatureError("Front webhook rejected: the X-Front-Request-Timestamp header is missing")
        timestamp_ms = signatures.parse_timestamp_ms(timestamp)
        signatures.check_fresh(timestamp_ms, int(self._clock() * 1000), settings.max_age_seconds)
        # any configured secret: during a rotation the old and the new one are both set
        expected = [
            signatures.application_signature(body, secret, timestamp.strip())
            for secret in secret_values(settings.signing_secret)
        ]
        if not signatures.any_signature_matches(expected, provided):
            raise SignatureError(
                "Front webhook rejected: X-Front-Signature does not match the body "
                "(wrong APEX_FRONTAPP_SIGNING_SECRET, or the body was altered on the way)"
            )

    def _verify_rule(self, settings: FrontSettings, provided: str, body: bytes) -> None:
        if settings.api_secret is None:
            raise SignatureError(
                "Front rule webhook rejected: APEX_FRONTAPP_ACCEPT_RULE_WEBHOOKS is on but "
                "APEX_FRONTAPP_API_SECRET is not set"
            )
        if not provided:
            raise SignatureError("Front rule webhook rejected: the X-Front-Signature header is missing")
        expected = [signatures.rule_signature(body, secret) for secret in secret_values(settings.api_secret)]
        if not signatures.any_signature_matches(expected, provided):
            raise SignatureError(
                "Front rule webhook rejected: X-Front-Signature does not match the body "
                "(wrong APEX_FRONTAPP_API_SECRET, or the body was altered on the way)"
            )
        # no timestamp header: the replay window comes from the signed body's emitted_at
        if settings.rule_max_age_seconds:
            signatures.check_rule_fresh(body, self._clock(), settings.rule_max_age_seconds)
        log.warning("accepted a Front rule webhook (SHA-1, no timestamp header): prefer application webhooks")

    def receive(self, headers: Mapping[str, str], body: bytes) -> InboundEvent | WebhookReply:
        """Answer the set-up challenge, or decode a verified delivery into an `InboundEvent`."""
        lowered = _lower(headers)
        challenge = lowered.get(signatures.CHALLENGE_HEADER)
        if challenge is not None:
            if len(challenge) > _MAX_CHALLENGE_CHARS:
                raise PayloadError(f"X-Front-Challenge is longer than {_MAX_CHALLENGE_CHARS} characters")
            return WebhookReply(200, {"challenge": challenge})

        doc = decode_body(body)
        if is_sync(doc):
            # Front also sends the sync body on its own; nothing to ingest.
            return WebhookReply(200, {"status": "ignored", "type": "sync"})
        delivery = read_delivery(doc)
        return InboundEvent(
            source=SOURCE,
            event_id=delivery.event_id,
            received_at=datetime.fromtimestamp(self._clock(), UTC),
            payload=doc,
            # Nothing from the request headers is kept: they hold the signature.
            headers={},
        )

    def parse(self, event: InboundEvent) -> list[Record]:
        """Records of one event (pure). `PayloadError` only when not even the event record can be made."""
        if event.payload is None:
            where = f" (stored as {event.payload_ref}; resolve it before parsing)" if event.payload_ref else ""
            raise PayloadError(f"Front event {event.event_id} has no payload{where}")
        return build_records(read_delivery(event.payload))
