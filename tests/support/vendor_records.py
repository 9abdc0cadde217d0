"""Records made by the connectors' own parse from the vendors' published examples
(`connectors-*/tests/data`, kept byte for byte) and from each connector's conformance
deliveries: the records the enrichers meet in a drain, several KB each.

Pure: no server, no network; each body goes through `receive` then `parse`, as a drain
does (signatures are the API's, checked before the inbox, so they are not needed here).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from apex_platform.contracts import BatchUnit
from apex_platform.models import InboundEvent, Record
from apex_platform.plugins import build_registry

ROOT = Path(__file__).resolve().parents[2]

#: source → the connector's published samples that are webhook or push bodies as sent
WEBHOOK_SAMPLES: dict[str, tuple[str, ...]] = {
    "samsara": (
        "connectors-samsara/tests/data/third_party/route_stop_arrival.json",
        "connectors-samsara/tests/data/vendor/webhooks_v1_alert.json",
        "connectors-samsara/tests/data/vendor/webhooks_v1_ping.json",
    ),
    "plaid": ("connectors-plaid/tests/data/third_party/sync_updates_available.json",),
}
#: OpenAI's published chat completions, pushed as the assistant's answer to a question
LLM_SAMPLES = (
    ("sdk_chat_completion_refusal.json", "How do I make anthrax?"),
    ("openapi_chat_completion_functions_example.json", "What's the weather like in Boston today?"),
    ("openapi_2023_chat_completion_function_call_example.json", "What's the weather like in Boston today?"),
)


def _records(source: str, body: bytes, headers: dict[str, str] | None = None) -> list[Record]:
    connector: Any = build_registry(source).source(source)
    event = connector.receive(headers or {"Content-Type": "application/json"}, body)
    if not isinstance(event, InboundEvent):  # a poll trigger or a ping: nothing to parse
        return []
    return list(connector.parse(event))


def _front() -> Iterator[tuple[str, Record]]:
    doc = json.loads((ROOT / "connectors-frontapp/tests/data/vendor/list_events.json").read_text())
    for i, event in enumerate(doc["_results"]):
        for record in _records("frontapp", json.dumps(event).encode()):
            yield f"frontapp/list_events.json#{i}", record


def _llm() -> Iterator[tuple[str, Record]]:
    for name, question in LLM_SAMPLES:
        response = json.loads((ROOT / "connectors-llm/tests/data/openai" / name).read_text())
        body = {
            "conversation_id": f"golden-{name}",
            "model": response["model"],
            "messages": [{"role": "user", "content": question}, response["choices"][0]["message"]],
        }
        for record in _records("llm", json.dumps(body).encode()):
            yield f"llm/{name}", record


def _edi() -> Iterator[tuple[str, Record]]:
    connector: Any = build_registry("edi").source("edi")
    files = sorted((ROOT / "connectors-edi/tests/data").glob("*/*.x12"))
    for path in files:
        for item in connector.split(path):
            if isinstance(item, BatchUnit):
                event = InboundEvent(
                    source="edi",
                    event_id=f"{path.name}:{item.id}",
                    received_at="2026-01-01T00:00:00Z",
                    payload=item.payload,
                )
                for record in connector.parse(event):
                    yield f"edi/{path.parent.name}/{path.name}", record


def _conformance() -> Iterator[tuple[str, Record]]:
    """Each webhook and push connector's conformance deliveries (its author's samples)."""
    for source in ("frontapp", "turvo", "samsara", "sonar", "llm"):
        connector: Any = build_registry(source).source(source)
        samples = connector.conformance_samples()
        with samples.environment() as env:
            del env  # only poll connectors need their fake vendor's address
            for i, body in enumerate(samples.deliveries()):
                for record in _records(source, body, samples.headers(body) if source == "llm" else None):
                    yield f"{source}/conformance#{i}", record


def vendor_records() -> list[tuple[str, Record]]:
    """(where it came from, record) for every record the samples give, in a fixed order."""
    out: list[tuple[str, Record]] = []
    for source, paths in WEBHOOK_SAMPLES.items():
        for rel in paths:
            out += [(rel.split("/tests/data/")[1], r) for r in _records(source, (ROOT / rel).read_bytes())]
    out += list(_front())
    out += list(_llm())
    out += list(_edi())
    out += list(_conformance())
    return out
