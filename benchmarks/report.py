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


def edge_section(results: dict[str, Any]) -> Section:
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


def baseline_section(results: dict[str, Any]) -> Section:
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


def p0_section(results: dict[str, Any]) -> Section:
    p0 = results["p0"]
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


def targets(results: dict[str, Any]) -> list[str]:
    top = next((r for r in results["edge"] if r["senders"] == 100), results["edge"][-1])
    ratio = top["accept"]["rate_per_s"] / top["start_workflow"]["rate_per_s"]
    p99 = top["accept"]["p99_ms"]
    return [
        f"acceptance ÷ start_workflow at {top['senders']} senders: {ratio:.1f}x "
        f"(target ≥ {TARGET_RATIO:.0f}x: {'met' if ratio >= TARGET_RATIO else 'not met'})",
        f"p99 time-to-202 at {top['senders']} senders: {p99:.1f} ms "
        f"(target < {TARGET_P99_MS:.0f} ms: {'met' if p99 < TARGET_P99_MS else 'not met'})",
    ]


def readings(results: dict[str, Any]) -> list[str]:
    """What the figures of this run say, computed from them (nothing here is hand-written per run)."""
    out = []
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
    return out


def sections(results: dict[str, Any]) -> list[Section]:
    return [edge_section(results), baseline_section(results), backlog_section(results), p0_section(results)]


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
    if not sizes:
        return "?"
    accept = ", ".join(f"{n:,} at {c}" for c, n in sizes["accept"].items())
    starts = ", ".join(f"{n:,} at {c}" for c, n in sizes["starts"].items())
    return (
        f"deliveries (and as many GET /healthz) per senders {accept}; start_workflow calls {starts}; "
        f"PostgreSQL-only backlog {sizes['pg_backlog']:,}; P0 deliveries {sizes['p0']}; "
        f"baseline round trips {sizes['roundtrips']}"
    )


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
        "RouteStopArrival example, a fresh `eventId` each) at 1, 10 and 100 concurrent senders, with no worker "
        "running: accepted/s and time-to-202. A 202 means the delivery is committed to the inbox (PostgreSQL). "
        "Baselines from the same run: the same API's `GET /healthz`, and a bare `client.start_workflow` loop "
        "against the same Temporal server (what one workflow per event would cost at the edge).",
        "2. **Backlog drain** — the deliveries of step 1 wait in the inbox; one worker is started and timed "
        "until the inbox says every one is delivered, then every record is read back from every store. Once with "
        "samsara → postgres, redis, graph, qdrant and once with PostgreSQL as the only store; both with the "
        "entities and embeddings enrichers.",
        "3. **P0 latency** — sequential Front deliveries on the idle full stack: 202 → the inbox row's "
        "`delivered_at`, written right after the saga has written every store; and the same while the "
        "full-stack backlog of step 2 drains on the same worker. Baseline: a bare one-activity Temporal "
        "workflow's start → result on the same server.",
        "",
        "Targets (reported, not asserted): acceptance ≥ 10x the start_workflow rate and p99 time-to-202 < 50 ms "
        "at 100 senders.",
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
        f"the last figure. Sizes at this scale: {_sizes(sizes)}.",
        "",
    ]
    return "\n".join(lines)
