"""The soak (issue 10, item 4): the chaos harness's stack and load at a sustained rate, no
faults, with every process's resources sampled once a minute and the slope of each.

Rates are ten times the field rates of ../shared/design/VENDOR-CONTRACTS.md (Front
1,000/day, Samsara 1,000 events/min, Plaid 200/day, Turvo 500/day, SONAR 300/day, HubSpot
100/day, QuickBooks 50/day, EDI 50 files/day; LLM pushes, which the contracts give no rate,
taken as 1,000/day), scaled by `--soak-scale`. Samsara's 10,000 events/min are half
webhooks, half stat points of the feed.

The slopes are taken over the steady state: the samples after the warm-up, which is the
first third of the run (at least `WARMUP_MINUTES`). Pools, caches and allocator arenas
fill once while the load ramps up and then stay; a leak keeps rising through the last two
thirds and fails, a one-time step inside them fails too.

Sampled per minute: RSS and open file descriptors of every Apex process and every server
(with its children), PostgreSQL connections, the longest and the total history of the
running workflows, the inbox's and lineage's size on disk, the backlog, the blob store's
size, Redis memory and key count of both Redis servers, deliveries delivered. Each series
gets a least-squares slope over the samples after the warm-up; it is *flat* when the
fitted change over the run is within 10% of its mean or within twice the scatter around
the fit. The run ends with the chaos verdict (nothing lost, nothing duplicated).

Memory is judged at rest as well as under load. Under load a process's memory is what it
keeps plus what its work in flight holds, and the second follows the load it happens to
take: which worker runs which drain partition, how large the batches are while a backlog
drains. So the load pauses twice, at the end of the warm-up and at the end of the run:
once the inbox is drained and two trims have passed (`REST_SETTLE_SECONDS`) each
process's memory is sampled at rest (`at_rest`). A process's memory is flat when what
it holds at rest after the run is within the noise of what it held at rest after the
warm-up; what it held under load is reported beside it. Descriptors, connections, the
backlog and the stores are judged under load as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import random
import statistics
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import psutil
import redis.asyncio as aioredis

from tests.chaos import verdict as verdict_mod
from tests.chaos.load import Load, Sender
from tests.chaos.vendors import Samsara

if TYPE_CHECKING:
    from tests.chaos.harness import Harness

#: events per minute at 10x the field rates (see the module docstring)
SOAK_PER_MINUTE: dict[str, float] = {
    "samsara": 5000.0,
    "samsara-feed": 5000.0,
    "frontapp": 10_000 / 1440,
    "turvo": 5_000 / 1440,
    "llm": 10_000 / 1440,
    "sonar": 3_000 / 1440 / 2,  # alerts; the other half are revisions of ticker values
    "sonar-revisions": 3_000 / 1440 / 2,
    "plaid": 2_000 / 1440,  # transactions changed at the bank
    "plaid-triggers": 2_000 / 1440 / 10,
    "crm": 1_000 / 1440,
    "financial": 500 / 1440,
    "edi": 500 / 1440,
}

WARMUP_MINUTES = 2.0
"""the shortest warm-up; a run's warm-up is its first third (`warmup_minutes`)"""


def warmup_minutes(duration_minutes: float) -> float:
    """The samples before this minute are the ramp-up: pools and caches filling once."""
    return max(WARMUP_MINUTES, duration_minutes / 3)


def _tree(pid: int | None) -> list[psutil.Process]:
    if pid is None:
        return []
    try:
        main = psutil.Process(pid)
        return [main, *main.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _usage(procs: list[psutil.Process]) -> tuple[float, int]:
    """Memory and descriptors of a process tree. Memory is the proportional set size (PSS):
    a server's fork (Redis saving its snapshot) shares its pages with the parent, and
    summing RSS counted them twice — the graph server's series jumped by its whole size
    whenever a sample met a save."""
    rss, fds = 0, 0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            try:
                rss += proc.memory_full_info().pss
            except (AttributeError, psutil.AccessDenied):  # no PSS on this platform
                rss += proc.memory_info().rss
            fds += proc.num_fds()
    return rss / 2**20, fds


def _folder_bytes(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


#: the inbox's deliveries not delivered yet (the backlog)
PENDING = "SELECT count(*) FROM apex_inbox.deliveries WHERE status = 'pending'"


def _processes(h: Harness) -> list[tuple[str, int | None]]:
    """Every Apex process and server by the name its series carry, with its pid (None for
    an Apex process that is not running)."""
    assert h.apex is not None
    out: list[tuple[str, int | None]] = [
        (child.name, child.proc.pid if child.proc is not None and child.running else None) for child in h.apex.all
    ]
    out += [(h.servers.name(server), server.pid) for server in h.servers.all]
    return out


async def sample(h: Harness, started: float) -> dict[str, float]:
    """One sample of every resource series."""
    out: dict[str, float] = {"minute": round((h.now() - started) / 60, 2)}
    for name, pid in _processes(h):
        rss, fds = _usage(_tree(pid))
        out[f"rss_mb:{name}"], out[f"fds:{name}"] = round(rss, 1), fds
    conn = await asyncpg.connect(h.servers.postgres.dsn, timeout=10)
    try:
        out["pg_connections"] = float(await conn.fetchval("SELECT count(*) FROM pg_stat_activity"))
        out["inbox_mb"] = round(
            float(
                await conn.fetchval(
                    "SELECT (pg_total_relation_size('apex_inbox.deliveries') + pg_total_relation_size('apex_inbox.lineage'))"
                    " / 1048576.0"
                )
            ),
            2,
        )
        out["backlog"] = float(await conn.fetchval(PENDING))
        out["delivered"] = float(await conn.fetchval(PENDING.replace("'pending'", "'delivered'")))
        out["records"] = float(await conn.fetchval("SELECT count(*) FROM apex.records"))
    finally:
        await conn.close()
    out["blob_mb"] = round(await asyncio.to_thread(_folder_bytes, h.dir / "home" / "blobs") / 2**20, 2)
    for name, server in (("redis", h.servers.cache), ("graph", h.servers.graph)):
        client = aioredis.from_url(server.url, socket_timeout=10)
        try:
            info = await client.info("memory")
            out[f"redis_mb:{name}"] = round(int(info["used_memory"]) / 2**20, 2)
            out[f"redis_keys:{name}"] = float(await client.dbsize())
        finally:
            await client.aclose()
    histories = await _histories(h)
    out["history_max"], out["history_total"], out["workflows_running"] = histories
    return out


async def _histories(h: Harness) -> tuple[float, float, float]:
    from temporalio.client import Client

    client = await Client.connect(h.servers.temporal.address)
    # visibility has a history length only for closed runs: describe each running one
    lengths: list[int] = []
    async for wf in client.list_workflows("ExecutionStatus = 'Running'"):
        with contextlib.suppress(Exception):  # it may close meanwhile
            info = (await client.get_workflow_handle(wf.id, run_id=wf.run_id).describe()).raw_description
            lengths.append(info.workflow_execution_info.history_length)
    return float(max(lengths, default=0)), float(sum(lengths)), float(len(lengths))


#: after the inbox is drained, the wait before memory is sampled at rest: twice the workers'
#: trim interval (`APEX_TEMPORAL_MEMORY_TRIM_SECONDS`, 30 s) and some margin
REST_SETTLE_SECONDS = 75.0
#: samples at rest, `REST_SPACING_SECONDS` apart; their median is the figure, their spread the noise
REST_SAMPLES = 3
REST_SPACING_SECONDS = 10.0


def _memory(h: Harness) -> dict[str, float]:
    """`rss_mb:<process>` of every running Apex process and server, as `sample` names them."""
    return {f"rss_mb:{name}": round(_usage(_tree(pid))[0], 1) for name, pid in _processes(h) if pid is not None}


async def at_rest(
    h: Harness, *, within: float, settle: float = REST_SETTLE_SECONDS, spacing: float = REST_SPACING_SECONDS
) -> dict[str, Any]:
    """Wait (at most `within` seconds) until the inbox has nothing pending and the senders
    nothing in flight, then `settle` seconds more, then sample every process's memory
    `REST_SAMPLES` times: per process the median and the spread. `drained` says whether the
    stack really came to rest; memory sampled while it still worked is not judged."""
    began = h.now()
    deadline = began + within
    drained = False
    while h.now() < deadline:
        try:
            conn = await asyncpg.connect(h.servers.postgres.dsn, timeout=10)
            try:
                backlog = int(await conn.fetchval(PENDING))
            finally:
                await conn.close()
        except Exception as exc:
            h.note("rest: inbox not readable", error=f"{type(exc).__name__}: {exc}"[:200])
            backlog = -1
        sending = h.sender.in_flight if h.sender is not None else 0
        if backlog == 0 and not sending:
            drained = True
            break
        await asyncio.sleep(2)
    waited = h.now() - began
    await asyncio.sleep(settle)
    rounds: list[dict[str, float]] = []
    for i in range(REST_SAMPLES):
        if i:
            await asyncio.sleep(spacing)
        rounds.append(_memory(h))
    names = sorted(set().union(*rounds))
    values = {n: [r[n] for r in rounds if n in r] for n in names}
    out = {
        "drained": drained,
        "drain_s": round(waited, 1),
        "rss_mb": {n: round(statistics.median(v), 1) for n, v in values.items()},
        "spread_mb": {n: round(max(v) - min(v), 1) for n, v in values.items()},
        "settle_s": settle,
    }
    h.note("at rest", drained=drained, drain_s=round(waited, 1), rss_mb=out["rss_mb"])
    return out


def rest_verdict(begin: dict[str, Any], end: dict[str, Any], name: str) -> dict[str, Any] | None:
    """A process's memory at rest after the warm-up and after the run: flat when it holds
    no more than 10% (or twice the sampling spread, at least 1 MB) above what it held at
    the first rest. None when either rest was not reached or the process was not sampled."""
    if not (begin.get("drained") and end.get("drained")):
        return None
    first, last = begin["rss_mb"].get(name), end["rss_mb"].get(name)
    if first is None or last is None:
        return None
    spread = max(begin["spread_mb"].get(name, 0.0), end["spread_mb"].get(name, 0.0))
    allowed = max(0.10 * abs(first), 2 * spread, 1.0)
    return {
        "rest_begin": first,
        "rest_end": last,
        "rest_change": round(last - first, 1),
        "rest_allowed": round(allowed, 1),
        "rest_flat": last - first <= allowed,
    }


#: series that grow with the data the stores hold, by design: judged per stored record —
#: flat when what is left after the part the stored records explain has no trend (a store
#: that keeps 4 KB per record is fine; one whose cost per record keeps rising is not)
DATA_BOUND = ("redis_keys:", "redis_mb:", "rss_mb:redis", "rss_mb:graph", "rss_mb:postgres", "fds:postgres")
DATA_BOUND_EXACT = ("inbox_mb", "blob_mb")
#: the inbox's pending deliveries: flat means the stack keeps up with the offered rate
QUEUE = ("backlog",)


#: workflows continue as new before this many history events (workflows.MAX_HISTORY_EVENTS):
#: the longest history and the sum over the running workflows climb until each reaches it,
#: so both are judged by the longest history staying under the bound, not by a slope
HISTORY_BOUND = 10_000


def kind_of(name: str) -> str:
    if name in QUEUE:
        return "queue"
    if name in ("history_total", "history_max"):
        return "bounded"
    if name in DATA_BOUND_EXACT or name.startswith(DATA_BOUND):
        return "data"
    return "process"


def _fit(xs: list[float], ys: list[float]) -> tuple[float, float, float]:
    """The Theil-Sen line y = a + b·x: (b, mean of y, scatter around the line).

    b is the median of the slopes between every pair of samples, a the median of
    y - b·x: one burst (a sample taken while a batch of backends or a batch's buffers
    were alive) moves a least-squares line as much as a steady climb would, the median
    of pairwise slopes not. A series that climbs keeps a positive median slope whatever
    its spikes, so a leak still shows."""
    my = statistics.fmean(ys)
    pairs = [(ys[j] - ys[i]) / (xs[j] - xs[i]) for i in range(len(xs)) for j in range(i + 1, len(xs)) if xs[j] != xs[i]]
    slope = statistics.median(pairs) if pairs else 0.0
    intercept = statistics.median([y - slope * x for x, y in zip(xs, ys, strict=True)])
    scatter = statistics.pstdev([y - (intercept + slope * x) for x, y in zip(xs, ys, strict=True)])
    return slope, my, scatter


def slopes(
    samples: list[dict[str, float]],
    duration_minutes: float,
    rest: tuple[dict[str, Any], dict[str, Any]] | None = None,
    warmup: float | None = None,
) -> dict[str, dict[str, Any]]:
    """Per series: least-squares slope per minute over the samples after the warm-up, the
    fitted change over the run, the mean, the scatter, and whether that is flat. A
    process's series (RSS, descriptors, connections, histories) must be flat as it is; a
    store's (`DATA_BOUND`) after taking out what the stored records explain (its cost
    per 1,000 records is reported); the backlog must be flat for the stack to keep up.

    With `rest` (memory at rest after the warm-up and after the run, `at_rest`), a
    process's memory is judged at rest (`rest_verdict`); whether it was flat under load is
    kept as `flat_under_load`. Without it, or when the stack did not come to rest, it is
    judged under load."""
    start = warmup_minutes(duration_minutes) if warmup is None else warmup  # in minutes
    kept = [s for s in samples if s["minute"] >= start] or samples
    out: dict[str, dict[str, Any]] = {}
    if len(kept) < 3:
        return out
    xs = [s["minute"] for s in kept]
    stored = [float(s.get("records", math.nan)) for s in kept]
    for name in sorted(kept[-1]):
        if name in ("minute", "delivered", "records"):
            continue  # counters: they grow by design (their rate is the throughput)
        ys = [float(s.get(name, math.nan)) for s in kept]
        if any(math.isnan(y) for y in ys):
            continue
        slope, my, residual = _fit(xs, ys)
        change = slope * (xs[-1] - xs[0])
        kind = kind_of(name)
        row: dict[str, Any] = {
            "kind": kind,
            "slope_per_min": round(slope, 4),
            "change": round(change, 2),
            "mean": round(my, 2),
            "scatter": round(residual, 2),
        }
        if kind == "data" and not any(math.isnan(r) for r in stored) and statistics.pstdev(stored) > 0:
            per_record, _, _ = _fit(stored, ys)
            mr = statistics.fmean(stored)
            left = [y - (my + per_record * (r - mr)) for y, r in zip(ys, stored, strict=True)]
            left_slope, _, left_scatter = _fit(xs, left)
            left_change = left_slope * (xs[-1] - xs[0])
            row["per_1k_records"] = round(per_record * 1000, 4)
            row["unexplained_change"] = round(left_change, 2)
            # At a steady rate the records grow with time, so a cost per record that keeps
            # rising still fits a line through them: compare the cost per record of the
            # two halves of the steady state; what the second half grew beyond the first
            # half's cost must stay within the noise.
            half = len(kept) // 2
            first, second = slice(0, half + 1), slice(half, len(kept))
            rise = 0.0
            if len(kept) >= 6 and statistics.pstdev(stored[first]) > 0 and statistics.pstdev(stored[second]) > 0:
                early, _, _ = _fit(stored[first], ys[first])
                late, _, _ = _fit(stored[second], ys[second])
                rise = (late - early) * (stored[-1] - stored[half])
                row["per_1k_records_late"] = round(late * 1000, 4)
            allowed = max(0.10 * abs(my), 2 * left_scatter, 1.0)
            row["flat"] = abs(left_change) <= allowed and rise <= allowed
        elif kind == "queue":  # keeping up: not rising (a backlog that shrinks is fine)
            row["flat"] = change <= max(0.10 * abs(my), 2 * residual, 1.0)
        elif kind == "bounded":
            longest = max(float(s.get("history_max", 0.0)) for s in kept)
            row["bound"] = HISTORY_BOUND
            row["flat"] = longest <= HISTORY_BOUND
        else:  # a process's resource: rising is a leak, falling (memory given back) is not
            row["flat"] = change <= max(0.10 * abs(my), 2 * residual, 1.0)
            judged = rest_verdict(*rest, name) if rest is not None and name.startswith("rss_mb:") else None
            if judged is not None:
                row["flat_under_load"] = row["flat"]
                row.update(judged)
                row["flat"] = judged["rest_flat"]
        out[name] = row
    return out


async def _stream(h: Harness, until: float, per_minute: float, action: Any, rng: random.Random) -> None:
    """Events at `per_minute` on average (a Poisson process), as long as the load runs."""
    if per_minute <= 0:
        return
    rate = per_minute / 60
    while h.now() < until:
        await asyncio.sleep(min(rng.expovariate(rate), max(0.0, until - h.now())))
        if h.now() >= until:
            return
        result = action()
        if asyncio.iscoroutine(result):
            await result


async def run_soak(h: Harness) -> dict[str, Any]:
    cfg = h.cfg
    await h.start()
    assert h.apex is not None
    began = h.now()
    load_end = began + cfg.duration
    h.sender = Sender(
        h.apex.urls,
        random.Random(h.rng.random()),
        resend_share=cfg.resend_share,
        concurrency=max(cfg.concurrency, 96),
        deadline=lambda: h.t0 + load_end + cfg.drain_timeout * 0.6,
    )
    h.load = load = Load(
        random.Random(h.rng.random()),
        h.secrets,
        h.vendors,
        poison_share=cfg.poison_share,
        big_share=cfg.big_share,
        edi_inbox=h.edi_inbox,
    )
    sender = h.sender
    feed: Samsara = h.vendors["samsara-feed"]  # type: ignore[assignment]
    scale = cfg.soak_scale
    rng = random.Random(h.rng.random())
    actions: dict[str, Any] = {
        "samsara": lambda: sender.submit(load.samsara()),
        "frontapp": lambda: sender.submit(load.front()),
        "turvo": lambda: sender.submit(load.turvo()),
        "llm": lambda: sender.submit(load.llm()),
        "sonar": lambda: sender.submit(load.sonar()),
        "plaid-triggers": lambda: sender.submit(load.plaid_trigger()),
        "sonar-revisions": h.vendors["sonar"].grow,
        "plaid": h.vendors["plaid"].grow,
        "crm": h.vendors["crm"].grow,
        "financial": h.vendors["financial"].grow,
        "edi": lambda: asyncio.to_thread(load.edi_file),
        "samsara-feed": lambda: feed.fake.append_points(rng, 1),
    }
    samples: list[dict[str, float]] = []
    #: the load's own clock: minutes of load, the pause at rest left out
    origin = began

    async def sampler(until: float, *, first_after: float = 0.0) -> None:
        # after a pause the first sample waits a minute: one taken as the load resumes
        # would show the process at rest, not under load
        await asyncio.sleep(first_after)
        while h.now() < until:
            try:
                samples.append(await sample(h, origin))
                last = samples[-1]
                h.note("soak sample", minute=last["minute"], backlog=last["backlog"], delivered=last["delivered"])
            except Exception as exc:
                h.note("soak sample failed", error=f"{type(exc).__name__}: {exc}"[:200])
            (h.dir / "soak-samples.json").write_text(json.dumps(samples, indent=1))
            await asyncio.sleep(max(0.0, min(cfg.sample_seconds, until - h.now())))

    def streams(until: float) -> list[Any]:
        return [
            _stream(h, until, SOAK_PER_MINUTE[name] * scale, action, random.Random(rng.random()))
            for name, action in actions.items()
        ]

    h.note(
        "soak",
        minutes=cfg.duration / 60,
        scale=scale,
        per_minute={k: round(v * scale, 2) for k, v in SOAK_PER_MINUTE.items()},
    )
    warm = min(
        cfg.duration, warmup_minutes(cfg.duration / 60) * 60 if cfg.warmup_seconds is None else cfg.warmup_seconds
    )
    # the warm-up, then a pause at rest, then the rest of the load (judged), then rest again
    first_end = began + warm
    load_end = first_end + cfg.drain_timeout  # the senders' deadline meanwhile (see Sender)
    await asyncio.gather(sampler(first_end), *streams(first_end))
    rest_begin = await at_rest(h, within=cfg.drain_timeout / 2, settle=cfg.rest_settle, spacing=cfg.rest_spacing)
    paused = h.now() - first_end
    origin = began + paused
    load_end = h.now() + cfg.duration - warm
    await asyncio.gather(sampler(load_end, first_after=cfg.sample_seconds), *streams(load_end))
    with contextlib.suppress(Exception):
        samples.append(await sample(h, origin))
    h.note("load stopped", deliveries=len(sender.ledger))
    rest_end = await at_rest(h, within=cfg.drain_timeout / 2, settle=cfg.rest_settle, spacing=cfg.rest_spacing)
    result = await verdict_mod.settle_and_judge(h, deadline=h.now() + cfg.drain_timeout)
    result["soak"] = {
        "per_minute": {k: round(v * scale, 3) for k, v in SOAK_PER_MINUTE.items()},
        "samples": samples,
        "rest": {"after_warmup": rest_begin, "after_load": rest_end, "paused_s": round(paused, 1)},
        "slopes": slopes(samples, cfg.duration / 60, (rest_begin, rest_end), warm / 60),
        "warmup_minutes": round(warm / 60, 2),
        "throughput_per_min": _throughput(samples, warm / 60),
        "finished_at": time.time(),
    }
    result["events"] = h.events
    return result


def _throughput(samples: list[dict[str, float]], warmup: float) -> float | None:
    kept = [s for s in samples if s["minute"] >= warmup]
    if len(kept) < 2 or kept[-1]["minute"] <= kept[0]["minute"]:
        return None
    return round((kept[-1]["delivered"] - kept[0]["delivered"]) / (kept[-1]["minute"] - kept[0]["minute"]), 1)


def render(soak: dict[str, Any]) -> str:
    lines = [
        "",
        "soak: rates per minute " + json.dumps(soak["per_minute"]),
        f"warm-up (not judged): the first {soak.get('warmup_minutes', WARMUP_MINUTES):g} minutes",
        f"deliveries delivered per minute after the warm-up: {soak['throughput_per_min']}",
    ]
    rest = soak.get("rest")
    if rest:
        for label, key in (("after the warm-up", "after_warmup"), ("after the load", "after_load")):
            r = rest[key]
            state = f"drained in {r['drain_s']:g} s" if r["drained"] else f"NOT drained after {r['drain_s']:g} s"
            settle = r.get("settle_s", REST_SETTLE_SECONDS)
            lines.append(f"at rest {label}: {state}, memory sampled {settle:g} s later")
        lines.append(f"load paused {rest['paused_s']:g} s at the end of the warm-up (not counted as load)")
    lines.append(
        f"  {'series':<28}{'kind':>8}{'mean':>12}{'change':>12}{'slope/min':>12}{'scatter':>10}"
        f"{'per 1k rec':>12}{'unexplained':>12}{'at rest':>18}{'under load':>11}  flat"
    )
    for name, s in soak["slopes"].items():
        at_rest_col = f"{s['rest_begin']:g}->{s['rest_end']:g}" if "rest_begin" in s else ""
        under = ("yes" if s["flat_under_load"] else "no") if "flat_under_load" in s else ""
        lines.append(
            f"  {name:<28}{s.get('kind', ''):>8}{s['mean']:>12}{s['change']:>12}{s['slope_per_min']:>12}"
            f"{s['scatter']:>10}{s.get('per_1k_records', ''):>12}{s.get('unexplained_change', ''):>12}"
            f"{at_rest_col:>18}{under:>11}  {'yes' if s['flat'] else 'NO'}"
        )
    return "\n".join(lines) + "\n"
