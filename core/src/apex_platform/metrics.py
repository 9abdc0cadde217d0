"""Prometheus metrics of the core (served on `GET /metrics` with Litestar's own
HTTP metrics). Names follow Prometheus conventions: `apex_` prefix, `_total` counters."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

WEBHOOKS = Counter(
    "apex_webhook_deliveries_total",
    "Webhook and push deliveries by source and outcome",
    ["source", "outcome"],
)
RECORDS_PARSED = Counter("apex_records_parsed_total", "Records produced by connectors", ["source", "kind"])
RECORDS_WITHOUT_ENTITIES = Counter(
    "apex_records_without_entities_total", "Data quality: records that carry no entity", ["source"]
)
RECORDS_WRITTEN = Counter("apex_records_written_total", "Records committed to every sink", ["source"])
RECORDS_SKIPPED = Counter(
    "apex_records_skipped_total", "Records skipped because already committed (idempotency key)", ["source"]
)
SINK_CALLS = Counter("apex_sink_calls_total", "Saga calls per sink, operation and outcome", ["sink", "op", "outcome"])
SINK_SECONDS = Histogram("apex_sink_call_seconds", "Saga call latency per sink and operation", ["sink", "op"])
COMPENSATIONS = Counter("apex_saga_compensations_total", "Compensations per sink and outcome", ["sink", "outcome"])
DEAD_LETTERS = Counter("apex_dead_letters_total", "Batches sent to the dead-letter table")
ACTIVITY_SECONDS = Histogram("apex_activity_seconds", "Activity run time", ["activity", "source"])
RECORDS_QUARANTINED = Counter(
    "apex_records_quarantined_total",
    "Records a sink refused for good, kept in the dead-letter queue (the rest of their batch committed)",
    ["source", "sinks"],
)
BREAKER_STATE = Gauge(
    "apex_saga_breaker_state", "Circuit breaker per sink and operation: 0 closed, 1 half-open, 2 open", ["sink", "op"]
)
