"""The benchmark's webhook sources, loaded into the API and worker processes with
APEX_PLUGIN_MODULES=bench_plugin: no signature, trivial parse — they measure the platform."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

from apex_platform import hookimpl
from apex_platform.contracts import WebhookReply
from apex_platform.errors import PayloadError
from apex_platform.models import Entity, InboundEvent, Record


class BenchSource:
    mode = "webhook"
    priority = "P1"
    settings_model: ClassVar[Any] = None

    def __init__(self, name: str, batched: bool) -> None:
        self.name = name
        self.batch_webhooks = batched

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        return None

    def receive(self, headers: Mapping[str, str], body: bytes) -> InboundEvent | WebhookReply:
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise PayloadError(str(exc)) from None
        return InboundEvent(source=self.name, event_id=data["id"], received_at=datetime.now(UTC), payload=data)

    def parse(self, event: InboundEvent) -> list[Record]:
        p = event.payload
        return [
            Record(
                source=self.name,
                kind="bench.location",
                id=p["id"],
                version=p["t"],
                occurred_at=datetime.fromtimestamp(p["t"] / 1e6, UTC),
                title=f"vehicle {p['vehicle']} at {p['lat']:.4f},{p['lon']:.4f}",
                attributes={"lat": p["lat"], "lon": p["lon"]},
                entities=(Entity(type="Vehicle", key=str(p["vehicle"])),),
            )
        ]


@hookimpl
def apex_register_sources(register: Any) -> None:
    register(BenchSource("bench_batched", batched=True))
    register(BenchSource("bench_single", batched=False))
