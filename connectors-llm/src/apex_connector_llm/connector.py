"""`LlmConnector`: conversations pushed by LLM agents and applications (OpenAI chat format)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, ClassVar

from pydantic_settings import BaseSettings

from apex_connector_llm.conversation import decode_body, read_conversation
from apex_connector_llm.records import SOURCE, build_records
from apex_connector_llm.settings import LlmSettings
from apex_platform.contracts import SampleDelivery
from apex_platform.errors import PayloadError, SettingsError
from apex_platform.models import InboundEvent, Priority, Record, SourceMode
from apex_platform.settings import PushSettings, load

if TYPE_CHECKING:
    from apex_platform.testing.conformance.samples import ConformanceSamples

PUSH_PATH = f"/v1/records/{SOURCE}"


class LlmConnector:
    """A push source: `POST /v1/records/llm` with `Authorization: Bearer <APEX_API_KEYS key>`.

    The platform authenticates; this connector only decodes. `settings=None` reads
    `APEX_LLM_*` on first use.
    """

    name = SOURCE
    mode: SourceMode = "push"
    priority: Priority = "P0"
    settings_model: ClassVar[type[BaseSettings] | None] = LlmSettings

    def __init__(self, settings: LlmSettings | None = None, *, clock: Callable[[], float] = time.time) -> None:
        self._settings = settings
        self._clock = clock

    @property
    def settings(self) -> LlmSettings:
        if self._settings is None:
            self._settings = load(LlmSettings)
        return self._settings

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    def conformance_samples(self) -> ConformanceSamples:
        """What the conformance suite runs with (`ConformanceProvider`)."""
        from apex_connector_llm.conformance import LlmSamples

        return LlmSamples()

    # -- PushSource ------------------------------------------------------------------------

    def receive(self, headers: Mapping[str, str], body: bytes) -> InboundEvent:
        """Validate the pushed conversation; the event id is the conversation id and a hash
        of its messages, so a client's retry is a duplicate and a grown conversation is new."""
        doc = decode_body(body)
        conversation = read_conversation(doc, self.settings)
        return InboundEvent(
            source=SOURCE,
            event_id=conversation.event_id,
            received_at=datetime.fromtimestamp(self._clock(), UTC),
            payload=doc,
            headers={},  # the request headers hold the API key: none are kept
        )

    def parse(self, event: InboundEvent) -> list[Record]:
        """A conversation record and one record per tool output (pure)."""
        if event.payload is None:
            where = f" (stored as {event.payload_ref}; resolve it before parsing)" if event.payload_ref else ""
            raise PayloadError(f"LLM push {event.event_id} has no payload{where}")
        return build_records(read_conversation(event.payload, self.settings), event.received_at)

    # -- DemoSource ------------------------------------------------------------------------

    def demo_environment(self) -> dict[str, str]:
        """A throw-away push API key, used only when none is configured."""
        return {"APEX_API_KEYS": f"demo-{secrets.token_urlsafe(24)}"}

    def demo_deliveries(self) -> list[SampleDelivery]:
        """Sample pushes (a conversation, then the same one grown), with the first key of
        APEX_API_KEYS, as an agent would send them."""
        from apex_connector_llm import samples

        key = load(PushSettings).key_for(self.name)  # the first key allowed to push here
        if key is None:
            raise SettingsError("APEX_API_KEYS is not set; the demo cannot authenticate its LLM pushes")
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        return [SampleDelivery(path=PUSH_PATH, body=body, headers=dict(headers)) for body in samples.bodies()]
