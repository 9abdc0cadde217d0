"""The end-to-end baselines, each run as a child process of `run.py` on the same records.

    python baselines.py saga --deliveries N --keys-out FILE     # settings from APEX_* variables
    python baselines.py dlt --deliveries N --dsn DSN --dataset NAME --workdir DIR

The records are the ones the benchmark's webhook load makes: Samsara's documented
RouteStopArrival example, a fresh eventId and stop each (`loadgen.samsara_requests`),
read by the Samsara connector exactly as a drain reads them (`receive`, then `parse`).

`saga`: no Temporal, no inbox — the drain's own steps in this process, batch by batch of
1,000 deliveries: parse, the enrichers (`IngestActivities._enrich_written`), the saga into every
configured sink (`IngestActivities._write`, chunks of 1,000 records). Each step timed.
`dlt`: the same records, as `Record.model_dump(mode="json")`, loaded by dlt into PostgreSQL
with `write_disposition="merge"` on the primary key (source, id); one warm-up load of ten
records first (dlt creates its tables there), then the timed load. Rows are counted back.

Both print one JSON document.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from loadgen import samsara_requests

from apex_platform.models import Record

DELIVERIES_PER_BATCH = 1000  # the drain's batch (APEX_DRAIN_MAX_COUNT's default)


def parse_all(connector: Any, requests: list[tuple[bytes, dict[str, str]]]) -> list[Record]:
    records: list[Record] = []
    for body, headers in requests:
        event = connector.receive(headers, body)
        records.extend(connector.parse(event))
    return records


async def saga_baseline(deliveries: int, keys_out: Path) -> dict[str, Any]:
    from apex_platform.runtime import Runtime
    from apex_platform.temporal.activities import IngestActivities

    runtime = Runtime.build()
    await runtime.open_sinks()
    try:
        connector = runtime.registry.source("samsara")
        acts = IngestActivities(runtime.registry, runtime.saga, runtime.codec, runtime.inbox)
        requests = samsara_requests(deliveries, os.environ["APEX_SAMSARA_WEBHOOK_SECRET"])
        spent = {"parse_s": 0.0, "enrich_s": 0.0, "saga_s": 0.0}
        records_total = written = 0
        keys: set[tuple[str, str]] = set()
        run = uuid.uuid4().hex[:8]
        began = time.perf_counter()
        cpu_began = time.process_time()
        for start in range(0, len(requests), DELIVERIES_PER_BATCH):
            t0 = time.perf_counter()
            records = parse_all(connector, requests[start : start + DELIVERIES_PER_BATCH])
            t1 = time.perf_counter()
            records = await acts._enrich_written(records)
            t2 = time.perf_counter()
            result = await acts._write(records, batch_id=f"bench-saga-{run}@{start}")
            t3 = time.perf_counter()
            spent["parse_s"] += t1 - t0
            spent["enrich_s"] += t2 - t1
            spent["saga_s"] += t3 - t2
            records_total += len(records)
            written += result.written
            keys.update((r.source, r.id) for r in records)
        elapsed = time.perf_counter() - began
        cpu = time.process_time() - cpu_began  # this process only: the stores' servers are not in it
    finally:
        await runtime.close_sinks()
    keys_out.write_text(json.dumps(sorted(keys)))
    return {
        "deliveries": deliveries,
        "records": records_total,
        "distinct_records": len(keys),
        "written": written,
        "sinks": sorted(runtime.registry.sinks),
        "elapsed_s": round(elapsed, 3),
        "cpu_s": round(cpu, 3),
        "cpu_ms_per_delivery": round(cpu / deliveries * 1000, 3),
        **{k: round(v, 3) for k, v in spent.items()},
        "records_per_s": round(records_total / elapsed, 1) if elapsed else 0.0,
        "saga_records_per_s": round(records_total / spent["saga_s"], 1) if spent["saga_s"] else 0.0,
    }


def dlt_baseline(deliveries: int, dsn: str, dataset: str, workdir: Path) -> dict[str, Any]:
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    import dlt
    import psycopg2

    from apex_platform.plugins import build_registry

    connector = build_registry("samsara").source("samsara")
    secret = os.environ["APEX_SAMSARA_WEBHOOK_SECRET"]
    rows = [r.model_dump(mode="json") for r in parse_all(connector, samsara_requests(deliveries, secret))]
    warm = [
        r.model_dump(mode="json")
        for r in parse_all(connector, samsara_requests(10, os.environ["APEX_SAMSARA_WEBHOOK_SECRET"]))
    ]
    pipeline = dlt.pipeline(
        pipeline_name=f"apex_bench_{dataset}",
        destination=dlt.destinations.postgres(credentials=dsn),
        dataset_name=dataset,
        pipelines_dir=str(workdir),
        progress=None,
    )
    options: dict[str, Any] = {"table_name": "records", "write_disposition": "merge", "primary_key": ["source", "id"]}
    pipeline.run(warm, **options)
    began = time.perf_counter()
    pipeline.run(rows, **options)
    elapsed = time.perf_counter() - began
    expected = {(r["source"], r["id"]) for r in rows} | {(r["source"], r["id"]) for r in warm}
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(f'SELECT source, id FROM "{dataset}"."records"')
        stored = {(s, i) for s, i in cur.fetchall()}
        cur.execute(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind = 'r'",
            (dataset,),
        )
        size = int(cur.fetchone()[0])  # type: ignore[index]
    conn.close()
    return {
        "deliveries": deliveries,
        "records": len(rows),
        "elapsed_s": round(elapsed, 3),
        "records_per_s": round(len(rows) / elapsed, 1) if elapsed else 0.0,
        "stores": {"postgres": {"expected": len(expected), "found": len(expected & stored)}},
        "extra_rows": len(stored - expected),
        "store_bytes": size,
        "dlt": dlt.__version__,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    saga = sub.add_parser("saga")
    saga.add_argument("--deliveries", type=int, required=True)
    saga.add_argument("--keys-out", type=Path, required=True)
    load = sub.add_parser("dlt")
    load.add_argument("--deliveries", type=int, required=True)
    load.add_argument("--dsn", required=True)
    load.add_argument("--dataset", required=True)
    load.add_argument("--workdir", type=Path, required=True)
    args = parser.parse_args()
    if args.command == "saga":
        doc = asyncio.run(saga_baseline(args.deliveries, args.keys_out))
    else:
        doc = dlt_baseline(args.deliveries, args.dsn, args.dataset, args.workdir)
    sys.stdout.write(json.dumps(doc) + "\n")
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
