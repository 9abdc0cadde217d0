"""The benchmark's results as tables: on the terminal (rich) and in docs/benchmarks.md.

Both are built from the same `Section`s, themselves built from results/latest.json only,
so `run.py --render-only` reproduces the page without running anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table

TARGET_RATIO = 10.0  # edge acceptance ÷ start_workflow rate, at 100 senders
TARGET_P99_MS = 50.0  # time-to-202 at 100 senders
TARGET_E2E = 10_000.0  # records/s into the four stores
TARGET_DLT = 1.0  # Apex with the PostgreSQL sink only ÷ dlt
TARGET_P0_MS = 100.0  # P0 p50, idle stack
TARGET_SCALE = 1.6  # two workers ÷ one


@dataclass
class Section:
    title: str
    columns: list[str]
    rows: list[list[str]]
    notes: list[str]


def _ms(x: float) -> str:
    return f"{x:.1f}" if x < 100 else f"{x:.0f}"


def _rate(x: float) -> str:
    return f"{x:,.0f}"


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.1f}x" if b else "-"


def _not_202(doc: dict[str, Any]) -> int:
    return sum(n for status, n in doc["statuses"].items() if status != "202")


def _cores(doc: dict[str, Any], name: str) -> str:
    value = doc.get("cpu_cores", {}).get(name)
    return "-" if value is None else f"{value:.2f}"


def _per_commit(doc: dict[str, Any]) -> str:
    gc = doc.get("group_commit")
    return f"{gc['rows'] / gc['transactions']:.1f}" if gc and gc["transactions"] else "-"


def edge_section(results: dict[str, Any]) -> Section | None:
    if not results.get("edge"):
        return None
    rows = []
    for r in results["edge"]:
        a = r["accept"]
        rows.append(
            [
                str(r["senders"]),
                _rate(a["rate_per_s"]),
                _ms(a["p50_ms"]),
                _ms(a["p90_ms"]),
                _ms(a["p99_ms"]),
                str(_not_202(a)),
                _cores(a, "api"),
                _cores(a, "postgres"),
                _cores(a, "loadgen"),
                _per_commit(a),
            ]
        )
    body = results["edge"][0]["accept"].get("body_bytes", 0)
    check = results.get("edge_check", {})
    notes = [
        f"Signed Samsara RouteStopArrival deliveries ({body:,} bytes, a fresh eventId each) from closed-loop "
        "senders; 202 only once committed to the inbox; no worker running.",
        "Cores: CPU seconds per second of the API process, of PostgreSQL (all backends) and of the load "
        f"generator during the measured requests ({results['machine']['nproc']} CPUs in all). Deliveries / commit: "
        "inbox rows per inserting transaction (group commit), warm-up included.",
        f"Deliveries answered 202 in the measured runs: {check.get('answered_202_measured', '?'):,}; "
        f"rows pending in the inbox afterwards (warm-ups included): {check.get('inbox_pending', '?'):,}.",
    ]
    return Section(
        "Edge acceptance: POST /webhooks/samsara → 202",
        [
            "senders",
            "accepted/s",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "not 202",
            "API cores",
            "PG cores",
            "loadgen cores",
            "deliveries / commit",
        ],
        rows,
        notes,
    )


def baseline_section(results: dict[str, Any]) -> Section | None:
    if not results.get("edge"):
        return None
    rows = []
    for r in results["edge"]:
        a, h, s = r["accept"], r["healthz"], r["start_workflow"]
        rows.append(
            [
                str(r["senders"]),
                _rate(h["rate_per_s"]),
                _ms(h["p50_ms"]),
                _ms(h["p99_ms"]),
                _cores(h, "api"),
                _rate(s["rate_per_s"]),
                _ms(s["p50_ms"]),
                _ms(s["p99_ms"]),
                _cores(s, "temporal"),
                _ratio(a["rate_per_s"], s["rate_per_s"]),
                f"{a['rate_per_s'] / h['rate_per_s']:.0%}" if h["rate_per_s"] else "-",
            ]
        )
    notes = [
        "`GET /healthz`: the same API process, same senders. `start_workflow`: `client.start_workflow` of a "
        "trivial workflow (nobody polls its queue) against the same Temporal dev server, that many in flight.",
    ]
    return Section(
        "Baselines at the same concurrency, and the ratios",
        [
            "senders",
            "healthz/s",
            "p50 ms",
            "p99 ms",
            "API cores",
            "start_workflow/s",
            "p50 ms",
            "p99 ms",
            "Temporal cores",
            "accept ÷ start",
            "accept ÷ healthz",
        ],
        rows,
        notes,
    )


def _stores(doc: dict[str, Any]) -> str:
    stores = doc.get("stores", {})
    if not stores:
        return "-"
    return ", ".join(f"{name} {v['found']:,}/{v['expected']:,}" for name, v in stores.items())


def backlog_section(results: dict[str, Any]) -> Section:
    rows = []
    for label, key in (("full: postgres, redis, graph, qdrant", "backlog_full"), ("PostgreSQL only", "backlog_pg")):
        b = results.get(key)
        if not b:
            continue
        rows.append(
            [
                label,
                f"{b['deliveries']:,}",
                f"{b['records']:,}",
                f"{b['drain_s']:.1f}",
                _rate(b["deliveries_per_s"]),
                _rate(b["records_per_s"]),
                f"{b['worker_start_s']:.1f}",
                ", ".join(f"{k} {v:.2f}" for k, v in b.get("cpu_cores", {}).items()) or "-",
                _stores(b),
            ]
        )
    notes = [
        "One worker, started once the backlog was in the inbox; drain s = from the drain loop's start "
        "(its workflow start time) to the last `delivered_at`. Enrichers: entities and embeddings (hash) in both.",
        "Records: as produced by the connector (2 per RouteStopArrival: the event and the route, the route "
        "being the same record every time). Each record is then read back from each store.",
    ]
    return Section(
        "Backlog drain: one worker, inbox → every store",
        [
            "stores",
            "deliveries",
            "records",
            "drain s",
            "deliveries/s",
            "records/s",
            "worker start s",
            "cores during the drain",
            "records found / expected",
        ],
        rows,
        notes,
    )


def p0_section(results: dict[str, Any]) -> Section | None:
    p0 = results.get("p0")
    if not p0:
        return None
    during = results.get("backlog_full", {}).get("p0_during")
    measured = [
        ("Front webhook: 202 → inbox delivered_at", p0["to_delivered_at"]),
        ("Front webhook: 202 → seen delivered (polling every 5 ms)", p0["to_seen"]),
    ]
    if during:
        measured.append(("same, while the full-stack backlog drains on the same worker", during["to_delivered_at"]))
    measured.append(("baseline: bare one-activity workflow, start → result", p0["baseline_roundtrip"]))
    rows = []
    for label, doc in measured:
        rows.append(
            [label, str(doc["count"]), _ms(doc["p50_ms"]), _ms(doc["p90_ms"]), _ms(doc["p99_ms"]), _ms(doc["max_ms"])]
        )
    notes = [
        "Sequential deliveries on the idle full stack (one every ~0.3 s once the previous one landed); "
        "`delivered_at` is set in the transaction that follows the saga's write to every store "
        "(postgres, redis, graph, qdrant), after the entities and embeddings enrichers.",
        f"Every record is read back afterwards: {_stores(p0)}.",
        *(
            [
                "The 'while the backlog drains' row: Front deliveries sent one after the other during the full-stack "
                "backlog drain above; one worker process runs the P0 and the P1 drain."
            ]
            if during
            else []
        ),
        f"Front p50 ÷ baseline p50: {_ratio(p0['to_delivered_at']['p50_ms'], p0['baseline_roundtrip']['p50_ms'])}.",
    ]
    return Section(
        "P0 latency: Front delivery, 202 → in every store",
        ["path", "n", "p50 ms", "p90 ms", "p99 ms", "max ms"],
        rows,
        notes,
    )


def _load(results: dict[str, Any], key: str) -> str:
    load = results.get("load_average", {}).get(key)
    return "-" if not load else f"{load[0]:.2f}"


def temporal_section(results: dict[str, Any]) -> Section | None:
    t = results.get("temporal")
    if not t or not results.get("edge"):
        return None
    rows = []
    top = next((r for r in results["edge"] if r["senders"] == 100), results["edge"][-1])
    s = top["start_workflow"]
    rows.append(
        [
            "start_workflow loop (no worker)",
            str(s["concurrency"]),
            f"{s['count']:,}",
            _rate(s["rate_per_s"]),
            _ms(s["p50_ms"]),
            _ms(s["p99_ms"]),
            _cores(s, "temporal"),
            _load(results, "edge"),
        ]
    )
    for n, label in (("1", "one-activity workflow"), ("3", "three-activity workflow")):
        d = t.get(n)
        if d:
            rows.append(
                [
                    label,
                    str(d["concurrency"]),
                    f"{d['count']:,}",
                    _rate(d["rate_per_s"]),
                    _ms(d["p50_ms"]),
                    _ms(d["p99_ms"]),
                    _cores(d, "temporal"),
                    _load(results, "temporal"),
                ]
            )
    rt = results.get("p0", {}).get("baseline_roundtrip")
    if rt:
        rows.append(
            [
                "one-activity workflow, sequential",
                "1",
                f"{rt['count']:,}",
                _rate(rt["rate_per_s"]),
                _ms(rt["p50_ms"]),
                _ms(rt["p99_ms"]),
                "-",
                _load(results, "p0"),
            ]
        )
    notes = [
        "Bare Temporal on the same dev server: no Apex code. The workflows' worker runs in the load generator's "
        "process (no-op activities, unsandboxed); rate = completed workflows per second, latency = start → result.",
    ]
    return Section(
        "Bare Temporal baselines",
        ["what", "in flight", "n", "per s", "p50 ms", "p99 ms", "Temporal cores", "load avg"],
        rows,
        notes,
    )


def _found(doc: dict[str, Any] | None) -> bool:
    stores = (doc or {}).get("stores") or {}
    return bool(stores) and all(v["found"] == v["expected"] for v in stores.values())


def e2e_section(results: dict[str, Any]) -> Section:
    rows = []

    def row(label: str, doc: dict[str, Any] | None, rate: str, key: str, extra: str = "") -> None:
        if not doc:
            return
        rows.append([label, f"{doc.get('records', 0):,}", _rate(doc[rate]), extra, _stores(doc), _load(results, key)])

    full, pgonly = results.get("backlog_full"), results.get("backlog_pg")
    row(
        "webhook (Samsara RouteStopArrival), inbox → four stores",
        full,
        "records_per_s",
        "backlog_full",
        f"{full['drain_s']:.1f} s" if full else "",
    )
    feeds = results.get("feeds") or {}
    row(
        "stream (Samsara vehicle stats feed) → four stores",
        feeds.get("stream"),
        "records_per_s",
        "feeds",
        f"{feeds['stream']['seconds']:.1f} s" if feeds.get("stream") else "",
    )
    row(
        "poller (Plaid /transactions/sync) → four stores",
        feeds.get("poll"),
        "records_per_s",
        "feeds",
        f"{feeds['poll']['seconds']:.1f} s" if feeds.get("poll") else "",
    )
    saga = results.get("saga_alone")
    if saga:
        row(
            "baseline: parse → enrich → saga, no Temporal, four stores",
            saga,
            "records_per_s",
            "saga_alone",
            f"parse {saga['parse_s']:.1f} s, enrich {saga['enrich_s']:.1f} s, saga {saga['saga_s']:.1f} s",
        )
        rows.append(
            [
                "baseline: the saga's write alone (same run)",
                f"{saga['records']:,}",
                _rate(saga["saga_records_per_s"]),
                f"{saga['saga_s']:.1f} s",
                "(as above)",
                _load(results, "saga_alone"),
            ]
        )
    row(
        "Apex, PostgreSQL sink only (inbox → PostgreSQL)",
        pgonly,
        "records_per_s",
        "backlog_pg",
        f"{pgonly['drain_s']:.1f} s" if pgonly else "",
    )
    dlt = results.get("dlt")
    row(
        f"baseline: dlt {dlt.get('dlt', '')} merge on (source, id) → PostgreSQL" if dlt else "",
        dlt,
        "records_per_s",
        "backlog_pg",
        f"{dlt['elapsed_s']:.1f} s" if dlt else "",
    )
    notes = [
        "Records/s: records as the connector made them, divided by the time from the first to the last write "
        "(drain loop start → last `delivered_at`; for the stream and the poller, `sources start` → every "
        "record in PostgreSQL, which the saga writes with every other store or not at all).",
        "Every record is read back from every store afterwards (the found/expected column); dlt's rows are "
        "counted in its table. Enrichers in every Apex row: entities and embeddings (hash). dlt gets the "
        "connector's records without enrichment (`Record.model_dump(mode='json')`); it flattens `attributes` "
        "into columns and puts `entities`/`relations` in child tables.",
    ]
    if pgonly and dlt and dlt["records_per_s"]:
        notes.append(f"Apex PostgreSQL-only ÷ dlt: {pgonly['records_per_s'] / dlt['records_per_s']:.2f}x.")
    return Section(
        "End to end, and its baselines",
        ["path", "records", "records/s", "time", "records found / expected", "load avg"],
        rows,
        notes,
    )


def scale_section(results: dict[str, Any]) -> Section | None:
    so = results.get("scale_out")
    if not so or "1" not in so or "2" not in so:
        return None
    rows = []
    for n, label in (("1", "one API, one worker"), ("2", "two APIs, two workers")):
        d = so[n]
        load = so.get(f"load_average_{n}")
        fill = d.get("fill", {})
        rows.append(
            [
                label,
                f"{d['deliveries']:,}",
                _rate(fill.get("rate_per_s", 0)),
                _rate(d["deliveries_per_s"]),
                _rate(d["records_per_s"]),
                ", ".join(f"{k} {v:.2f}" for k, v in d.get("cpu_cores", {}).items()),
                _stores(d),
                f"{load[0]:.2f}" if load else "-",
            ]
        )
    notes = [
        f"Two workers ÷ one: {so['ratio']:.2f}x (drain). The same Samsara backlog, accepted at 100 senders "
        "(alternating between the APIs), then drained; stores: postgres, redis, graph (Qdrant's local mode "
        "is one process's folder: two workers need a Qdrant server), entities and embeddings enrichers.",
    ]
    two = so["2"]
    if two.get("drain_partitions", 1) > 1:
        per = ", ".join(f"{k.rsplit(':', 1)[-1]} {v:,}" for k, v in two.get("by_partition", {}).items())
        notes.append(
            f"Two workers: the source's drain in {two['drain_partitions']} partitions "
            f"(`APEX_TEMPORAL_DRAIN_PARTITIONS={two['drain_partitions']}`), one drain loop each; deliveries "
            f"per loop: {per or 'not recorded'}. One worker: one loop."
        )
    return Section(
        "Scale-out: the same backlog with one and with two worker processes",
        [
            "processes",
            "deliveries",
            "accepted/s",
            "drained deliveries/s",
            "records/s",
            "cores during the drain",
            "records found / expected",
            "load avg",
        ],
        rows,
        notes,
    )


def _kib(b: float) -> str:
    return f"{b / 1024:,.1f}"


def footprint_section(results: dict[str, Any]) -> Section | None:
    f = results.get("footprint")
    if not f:
        return None
    rss = f.get("rss_mib") or results.get("rss_mib", {})
    rows = [
        [
            "API RSS at rest / peak under 100 senders, MiB",
            f"{rss.get('api_rest', 0):,.0f} / {rss.get('api_load_peak', 0):,.0f}",
        ],
        [
            "worker RSS at rest (fresh) / peak draining / idle after, MiB",
            f"{rss.get('worker_rest', 0):,.0f} / "
            f"{rss.get('worker_load_peak', 0):,.0f} / {rss.get('worker_idle_after_drain', 0):,.0f}",
        ],
        [
            "CPU s per 1,000 deliveries, intake (API, PostgreSQL)",
            ", ".join(f"{k} {v:.2f}" for k, v in f["cpu_s_per_1000_intake"].items()),
        ],
        [
            "CPU s per 1,000 deliveries, drain into four stores",
            ", ".join(f"{k} {v:.2f}" for k, v in f["cpu_s_per_1000_drain"].items())
            + f" (total {sum(f['cpu_s_per_1000_drain'].values()):.2f})",
        ],
        [
            "Temporal history bytes per delivery (drains' every run)",
            f"{f['history_bytes_per_delivery']:,.1f} ("
            + ", ".join(f"{k}: {v['bytes']:,} B in {v['runs']} runs" for k, v in f["history"].items())
            + ")",
        ],
    ]
    for name, per in f["store_bytes_per_record"].items():
        unit = "delivery" if name == "inbox" else "record"
        if name == "redis_graph" and f["store_bytes"][name] < 2**20:  # GRAPH.MEMORY USAGE gave no figure
            shown = f"not measured (the module key's MEMORY USAGE: {f['store_bytes'][name]} B)"
            rows.append([f"{name}: bytes per {unit}", shown])
            continue
        rows.append([f"{name}: bytes per {unit}", f"{per:,.0f} ({_kib(f['store_bytes'][name])} KiB in all)"])
    notes = [
        f"The full deployment after scenarios 1 to 3: {f['deliveries']:,} deliveries, {f['records']:,} records in "
        "PostgreSQL. RSS includes children; CPU seconds from /proc of each process (PostgreSQL: every backend). "
        "PostgreSQL sizes: tables with indexes and TOAST; Redis: MEMORY USAGE of the sink's record and "
        "commit-ledger keys; graph: FalkorDB's GRAPH.MEMORY USAGE (whole MB, so 0 for a small graph); "
        "Qdrant: its local folder.",
    ]
    return Section("Footprint", ["what", "figure"], rows, notes)


def _verdict(ok: bool) -> str:
    return "met" if ok else "not met"


def targets(results: dict[str, Any]) -> list[str]:
    """Each goal of issue 15, computed from this run's figures."""
    out = []
    e2e = [
        ("webhook", results.get("backlog_full")),
        ("stream", (results.get("feeds") or {}).get("stream")),
        ("poller", (results.get("feeds") or {}).get("poll")),
    ]
    measured = [(name, d) for name, d in e2e if d]
    if measured:
        rates = ", ".join(f"{name} {d['records_per_s']:,.0f}" for name, d in measured)
        ok = all(d["records_per_s"] >= TARGET_E2E and _found(d) for _, d in measured)
        out.append(f"Four stores end to end ≥ {TARGET_E2E:,.0f} records/s: {rates} records/s — {_verdict(ok)}")
    pgonly, dlt = results.get("backlog_pg"), results.get("dlt")
    if pgonly and dlt and dlt["records_per_s"]:
        r = pgonly["records_per_s"] / dlt["records_per_s"]
        out.append(
            f"PostgreSQL sink only ≥ {TARGET_DLT:.1f}x dlt: {pgonly['records_per_s']:,.0f} ÷ "
            f"{dlt['records_per_s']:,.0f} records/s = {r:.2f}x — {_verdict(r >= TARGET_DLT)}"
        )
    edge = results.get("edge")
    if edge:
        top = next((r for r in edge if r["senders"] == 100), edge[-1])
        ratio = top["accept"]["rate_per_s"] / top["start_workflow"]["rate_per_s"]
        p99 = top["accept"]["p99_ms"]
        out.append(
            f"Intake ≥ {TARGET_RATIO:.0f}x the bare start_workflow rate at {top['senders']} senders: {ratio:.1f}x — "
            f"{_verdict(ratio >= TARGET_RATIO)}; p99 time-to-202 < {TARGET_P99_MS:.0f} ms: {p99:.1f} ms — "
            f"{_verdict(p99 < TARGET_P99_MS)}"
        )
    p0 = results.get("p0")
    if p0:
        p50 = p0["to_delivered_at"]["p50_ms"]
        ok = p50 <= TARGET_P0_MS and _found(p0)
        out.append(f"P0 in every store, p50 ≤ {TARGET_P0_MS:.0f} ms on an idle stack: {p50:.1f} ms — {_verdict(ok)}")
    so = results.get("scale_out")
    if so and "ratio" in so:
        r = so["ratio"]
        ok = r >= TARGET_SCALE and _found(so["1"]) and _found(so["2"])
        out.append(f"Two workers ≥ {TARGET_SCALE:.1f}x one: {r:.2f}x — {_verdict(ok)}")
    return out


def _bound(cores: float | None) -> str:
    if cores is None:
        return "?"
    return "CPU-bound (one event loop, one core)" if cores >= 0.85 else f"not CPU-bound ({cores:.2f} cores)"


def limits(results: dict[str, Any]) -> list[str]:
    """What limits each end-to-end figure, read off this run's CPU accounting."""
    out = []
    full = results.get("backlog_full")
    if full:
        c = full.get("cpu_cores", {})
        out.append(
            f"Webhook drain into four stores: the worker process was {_bound(c.get('worker'))}; PostgreSQL "
            f"{c.get('postgres', 0):.2f}, Redis (+FalkorDB) {c.get('redis', 0):.2f}, Temporal "
            f"{c.get('temporal', 0):.2f} cores. One drain per source runs one batch at a time."
        )
    feeds = results.get("feeds") or {}
    for name, label in (("stream", "Stream (Samsara feed)"), ("poll", "Poller (Plaid)")):
        d = feeds.get(name)
        if d:
            out.append(
                f"{label}: the worker was {_bound(d.get('worker_cores'))} while it read, enriched and wrote "
                f"{d['records']:,} records; one page at a time per account (the cursor advances only after the "
                "saga acknowledged the page)."
            )
    saga = results.get("saga_alone")
    if saga and saga.get("elapsed_s"):
        total = saga["parse_s"] + saga["enrich_s"] + saga["saga_s"]
        out.append(
            "Without Temporal and the inbox, one process spent "
            f"{saga['parse_s'] / total:.0%} of its time parsing, {saga['enrich_s'] / total:.0%} enriching and "
            f"{saga['saga_s'] / total:.0%} in the saga's writes: the rest of a drain's time is the inbox and Temporal."
        )
    so = results.get("scale_out")
    if so and "2" in so:
        c = so["2"].get("cpu_cores", {})
        workers = {k: v for k, v in c.items() if k.startswith("worker")}
        if workers:
            shown = ", ".join(f"{k} {v:.2f}" for k, v in workers.items())
            if so["2"].get("drain_partitions", 1) > 1:
                load = so.get("load_average_2") or ["-"]
                out.append(
                    f"Two workers used {shown} cores with the source's drain in "
                    f"{so['2']['drain_partitions']} partitions (one drain loop each, their batches in parallel): "
                    "the machine's spare cores bound the ratio (1-minute load average when the pair started: "
                    f"{load[0]}, on 2 CPUs shared with PostgreSQL, Redis, Temporal and the load generator)."
                )
            else:
                out.append(
                    f"Two workers used {shown} cores: one source has one drain workflow, so its batches are "
                    "serial and a second worker takes only what the first leaves (see 'N workers on a "
                    "Temporal cluster')."
                )
    pgonly, dlt = results.get("backlog_pg"), results.get("dlt")
    if pgonly and dlt:
        out.append(
            f"PostgreSQL only: the worker was {_bound(pgonly.get('cpu_cores', {}).get('worker'))}; dlt loaded the "
            f"same records in {dlt['elapsed_s']:.1f} s in one process (extract, normalize, load), no enrichment, "
            "no inbox, no Temporal."
        )
    return out


def readings(results: dict[str, Any]) -> list[str]:
    """What the figures of this run say, computed from them (nothing here is hand-written per run)."""
    out: list[str] = []
    if not results.get("edge"):
        return limits(results)
    top = next((r for r in results["edge"] if r["senders"] == 100), results["edge"][-1])
    a = top["accept"]
    api = a.get("cpu_cores", {}).get("api")
    pg = a.get("cpu_cores", {}).get("postgres")
    if api is not None and pg is not None:
        bound = "the API process is CPU-bound (one event loop)" if api >= 0.9 else "the API process is not saturated"
        out.append(
            f"At {top['senders']} senders the API process used {api:.2f} cores and PostgreSQL {pg:.2f}: {bound}, "
            "the inbox is not the limit."
        )
    if a["rate_per_s"]:
        mean = top["senders"] / a["rate_per_s"] * 1000
        needed = top["senders"] / (TARGET_P99_MS / 1000)
        out.append(
            f"With {top['senders']} closed-loop senders the mean time-to-202 is senders ÷ rate (Little's law): "
            f"{mean:.0f} ms at {a['rate_per_s']:,.0f}/s; a p99 under {TARGET_P99_MS:.0f} ms needs well over "
            f"{needed:,.0f} accepted/s from the API processes together."
        )
    per_commit = ", ".join(f"{_per_commit(r['accept'])} at {r['senders']}" for r in results["edge"])
    out.append(
        f"Group commit, deliveries per inbox transaction by senders: {per_commit}. At one sender the "
        "2 ms linger of the group commit is part of the time-to-202."
    )
    full, pgonly = results.get("backlog_full"), results.get("backlog_pg")
    if full and pgonly:
        out.append(
            f"Draining, one worker process used {full['cpu_cores'].get('worker', 0):.2f} cores with every store "
            f"and {pgonly['cpu_cores'].get('worker', 0):.2f} with PostgreSQL only; PostgreSQL only drains "
            f"{pgonly['deliveries_per_s'] / full['deliveries_per_s']:.1f}x as fast."
        )
    during = (full or {}).get("p0_during")
    if during:
        idle = results["p0"]["to_delivered_at"]
        busy = during["to_delivered_at"]
        out.append(
            f"P0 while a P1 backlog drains on the same worker: p50 {busy['p50_ms']:,.0f} ms, max "
            f"{busy['max_ms']:,.0f} ms, against {idle['p50_ms']:.0f} ms idle: both drains share the worker "
            "process, so a P1 batch in progress delays a P0 delivery."
        )
    out += limits(results)
    return out


def sections(results: dict[str, Any]) -> list[Section]:
    found = [
        edge_section(results),
        baseline_section(results),
        temporal_section(results),
        e2e_section(results),
        backlog_section(results),
        p0_section(results),
        scale_section(results),
        footprint_section(results),
    ]
    return [s for s in found if s is not None]


def render_tables(console: Console, results: dict[str, Any]) -> None:
    for s in sections(results):
        table = Table(title=s.title, title_justify="left")
        for i, col in enumerate(s.columns):
            table.add_column(col, justify="left" if i == 0 and s.columns[0] != "senders" else "right")
        for row in s.rows:
            table.add_row(*row)
        console.print(table)
        for note in s.notes:
            console.print(f"  [dim]{note}[/]")
    for line in targets(results):
        console.print(f"[bold]{line}[/]")
    for line in readings(results):
        console.print(f"- {line}")


def _md_table(s: Section) -> list[str]:
    out = ["| " + " | ".join(s.columns) + " |"]
    out.append("|" + "|".join("---" if i == 0 else "---:" for i in range(len(s.columns))) + "|")
    out += ["| " + " | ".join(row) + " |" for row in s.rows]
    return out


def _sizes(sizes: dict[str, Any]) -> str:
    if not sizes or "accept" not in sizes:
        return "?"
    accept = ", ".join(f"{n:,} at {c}" for c, n in sizes["accept"].items())
    starts = ", ".join(f"{n:,} at {c}" for c, n in sizes["starts"].items())
    return (
        f"deliveries (and as many GET /healthz) per senders {accept}; start_workflow calls {starts}; "
        f"PostgreSQL-only backlog {sizes['pg_backlog']:,} (and dlt on its records); P0 deliveries {sizes['p0']}; "
        f"baseline round trips {sizes['roundtrips']}; workflows with 64 in flight "
        + ", ".join(f"{n:,} of {a} activities" for a, n in sizes.get("flights", {}).items())
        + f"; saga alone {sizes.get('saga', 0):,} deliveries; Samsara feed {sizes.get('feed_vehicles', 0)} vehicles x "
        f"{sizes.get('feed_points', 0):,} points; Plaid {sizes.get('plaid', 0):,} transactions; scale-out backlog "
        f"{sizes.get('scale_backlog', 0):,}"
    )


PAPER = [
    "## N workers on a Temporal cluster (on paper, not measured)",
    "",
    "What limits a second worker today, and what N workers need:",
    "",
    "- **Partitions of a source's drain.** A `DrainWorkflow` runs one `apex.drain_inbox` activity at a "
    "time, so with one drain per source (the default) one source's batches are serial and a second worker "
    "adds capacity only across sources and priorities (P0/P1/P2 queues). `APEX_TEMPORAL_DRAIN_PARTITIONS=P` "
    "(every worker and API alike) gives each webhook or push source P drains, "
    "`{prefix}:drain:{source}:{k}of{P}`, each taking the inbox rows whose event id hashes to k (MD5, mod P, "
    "with an index on it); choose P ≥ N. Ordering between partitions does not matter because every store "
    "keeps the version rule (newest wins, whatever the order of arrival); two partitions writing one record "
    "meet at the saga's record lock (one waits, or its batch is retried). The scale-out table's second row "
    "runs with P = 2.",
    "- **Task queue partitions.** A Temporal task queue has 4 read and 4 write partitions by default "
    "(dynamic config `matching.numTaskqueueReadPartitions` / `matching.numTaskqueueWritePartitions`); "
    "each poller polls one partition at a time. With N worker processes on `apex-p1`, give the queue at "
    "least as many partitions as there are busy drains, and raise it when tasks wait in a backlog while "
    "worker slots stand free (the `schedule_to_start` latency of the activities).",
    "- **History shards.** `numHistoryShards` is set once, when the cluster is created, and never changes: "
    "every workflow lives on one shard, so P drain partitions per source x sources spread over the shards; "
    "choose shards well above the number of concurrently busy workflows (Temporal Cloud sizes this itself). "
    "The drain adds a few history events per batch (see the footprint's bytes per delivery) and continues as "
    "new long before 10,000 events.",
    "- **Pool sizes per store, per process.** PostgreSQL: each worker opens the sink's pool "
    "(`APEX_POSTGRES_POOL_MAX`, default 10) and the inbox's (`APEX_INBOX_POOL_MAX`, default 10), each API "
    "the inbox's: N workers x 20 + M APIs x 10 must stay below the server's `max_connections` (100 by "
    "default) or go through PgBouncer in transaction mode. Redis (cache, locks, commit ledger) and the "
    "graph: one client pool per process and sink; Qdrant in local mode is single-process (the worker owns "
    "its folder), so more than one worker needs a Qdrant server (`APEX_QDRANT_URL`).",
    "- **Slots.** Each worker's activity slots per queue bound its concurrency; a drain uses one slot per "
    "source and partition, so N workers x slots should cover the partitions of every busy source.",
    "",
]


def render_markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    sizes = results.get("sizes", {})
    pkgs = ", ".join(f"{k} {v}" for k, v in m["packages"].items() if v)
    servers = results.get("servers", {})
    busy = m.get("busy_processes") or []
    lines = [
        "# Benchmarks",
        "",
        "<!-- Generated by benchmarks/run.py from benchmarks/results/latest.json: "
        "edit the generator, not this page. -->",
        "",
        f"Last run: {results['date']}, `--scale {results['scale']}`, {results['duration_s']:.0f} s in all.",
        "",
        "## What is measured",
        "",
        "Everything is real and started by the benchmark on free ports: a Temporal dev server, PostgreSQL "
        "(+pgvector), Redis (+FalkorDB) and Qdrant in local mode; the API and the worker run as "
        "`apex-platform api` and `apex-platform worker` child processes, as deployed, and the load comes "
        "from another process (`benchmarks/loadgen.py`, aiohttp, closed-loop senders).",
        "",
        "1. **Edge acceptance** — how fast the API takes signed Samsara deliveries (Samsara's documented "
        "RouteStopArrival example, ~4.7 KB, a fresh `eventId` and stop each) at 1, 10 and 100 concurrent senders, "
        "with no worker running: accepted/s and time-to-202. A 202 means the delivery is committed to the inbox "
        "(PostgreSQL). Baselines from the same run: the same API's `GET /healthz`, a bare `client.start_workflow` "
        "loop against the same Temporal server, and bare one- and three-activity workflows with 64 in flight.",
        "2. **End to end into all four stores** — (a) the deliveries of step 1 wait in the inbox; one worker is "
        "started and timed until the inbox says every one is delivered; (b) the same with PostgreSQL as the only "
        "store, beside **dlt** loading the same records into the same PostgreSQL (`merge` on the primary key); "
        "(c) the saga alone: the drain's parse, enrich and saga steps in one process, no Temporal, no inbox; "
        "(d) a stream (Samsara's vehicle stats feed) and a poller (Plaid `/transactions/sync`) read from the "
        "connectors' fake vendors in another process. Every record is then read back from every store.",
        "3. **P0 latency** — sequential Front deliveries on the idle full stack: 202 → the inbox row's "
        "`delivered_at`, written right after the saga has written every store; and the same while the "
        "full-stack backlog of step 2 drains on the same worker. Baseline: a bare one-activity Temporal "
        "workflow's start → result on the same server.",
        "4. **Scale-out** — one backlog accepted by one API and drained by one worker, then the same accepted "
        "by two APIs and drained by two workers, the source's drain in two partitions "
        "(`APEX_TEMPORAL_DRAIN_PARTITIONS=2`; three stores: Qdrant's local mode is single-process).",
        "5. **Footprint** — RSS of the API and the worker at rest and under load, CPU seconds per 1,000 "
        "deliveries, bytes of Temporal history and of each store per event.",
        "",
        "The goals (issue 15) are reported against this run's figures below, never asserted; each table gives the "
        "1-minute load average when its scenario started.",
        "",
        "## Results",
        "",
    ]
    lines += [f"- {t}" for t in targets(results)]
    lines += ["", "Reading the figures of this run:", ""]
    lines += [f"- {r}" for r in readings(results)]
    lines.append("")
    for s in sections(results):
        lines += [f"### {s.title}", "", *_md_table(s), ""]
        lines += [f"- {n}" for n in s.notes]
        lines.append("")
    lines += PAPER
    lines += [
        "## Machine",
        "",
        f"- {m['nproc']} CPUs ({m['cpu']}), {m['memory_total_mib']:,} MiB memory "
        f"({m['memory_available_mib']:,} MiB available at the start)",
        f"- load average at the start {m['load_average']}, at the end {m.get('load_average_end', '?')}",
        *(
            [
                f"- CPU during the run, in cores: the benchmark and its servers {cpu['benchmark_cores']}, "
                f"everything else on the machine {cpu['other_cores']}, stolen by the hypervisor {cpu['steal_cores']}"
            ]
            if (cpu := m.get("cpu_during_run"))
            else []
        ),
        f"- Python {m['python']} on {m['platform']}",
        f"- {pkgs}",
        f"- servers: PostgreSQL {servers.get('postgres', '?')}, Redis {servers.get('redis', '?')}, "
        f"Temporal CLI {servers.get('temporal_cli', '?').replace(chr(10), ' ')}",
    ]
    if busy:
        lines.append("- other busy processes at the start (CPU %, sampled over 1 s):")
        lines += [f"  - {b['cpu_percent']}%: `{b['cmd']}`" for b in busy]
    lines += [
        "",
        "Timings on a small shared machine are noisy: the load generator, the API, PostgreSQL and Temporal "
        "share the same cores. Read the ratios against the baselines of the same run.",
        "",
        "## Reproduce",
        "",
        "```bash",
        "nox -s bench -- --scale 1      # every scenario at full size",
        "nox -s bench -- --scale 0.1    # a quick look",
        "python benchmarks/run.py --render-only   # this page again from benchmarks/results/latest.json",
        "```",
        "",
        f"This run: `--scale {results['scale']}`, {results['duration_s']:.0f} s from the first server start to "
        f"the last figure. Sizes at this scale: {_sizes(sizes)}."
        + (
            " Scenarios started after (s): "
            + ", ".join(f"{k} {v:,.0f}" for k, v in results["started_after_s"].items())
            + "."
            if results.get("started_after_s")
            else ""
        ),
        "",
    ]
    return "\n".join(lines)
