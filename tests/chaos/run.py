"""`python -m tests.chaos [--seed N] [--duration 20m] [--profile full|smoke] [--run-dir DIR]`

Starts its own embedded servers on free ports, two API processes, two workers and the
EDI drop-folder watcher, drives a mixed load from every source while a seeded controller
injects faults, stops the faults, drains (bounded), judges from the stores and writes
`chaos-report.json` and `chaos-report.txt` into the run dir. Exit 0 only when the
verdict passes; a failed run keeps its run dir (seed, fault schedule, ledger, every log).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from tests.chaos import report
from tests.chaos.config import Config, parse_duration
from tests.chaos.topology import ROOT


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__.split("\n\n")[1] if __doc__ else None)
    p.add_argument("--seed", type=int, default=None, help="the run's seed (default: a random one, printed)")
    p.add_argument(
        "--profile",
        choices=("full", "smoke", "soak", "soak-smoke"),
        default="full",
        help="full (default), smoke (≤ 3 min), soak (15 min at 10x the field rates, no faults, resources "
        "sampled) or soak-smoke (the soak's machinery in ~3 min)",
    )
    p.add_argument(
        "--soak-scale", type=float, default=None, help="the soak's rates as a multiple of 10x the field rates"
    )
    p.add_argument("--duration", default=None, help="load and faults, e.g. 20m (full default) or 100s (smoke)")
    p.add_argument("--drain-timeout", default=None, help="the longest drain and verify phase, e.g. 8m")
    p.add_argument("--fault-interval", type=float, default=None, help="mean seconds between two faults")
    p.add_argument("--rate", type=float, default=None, help="webhook and push deliveries per second")
    p.add_argument("--run-dir", type=Path, default=None, help="where logs, data and the report go")
    p.add_argument("--keep", action="store_true", help="keep the run dir's server data after a passing run")
    p.add_argument("--no-faults", action="store_true", help="the load alone (a baseline; the verdict is the same)")
    p.add_argument(
        "--worker1-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an environment variable for worker1 only (compare one worker against the other)",
    )
    p.add_argument(
        "--tolerate",
        action="append",
        default=[],
        choices=("stale-cache",),
        help="report a known defect without failing the run (stale-cache: docs/reliability.md)",
    )
    return p.parse_args(argv)


def config(args: argparse.Namespace) -> Config:
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 2**31)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = args.run_dir or Path(tempfile.gettempdir()) / f"apex-chaos-{stamp}-seed{seed}"
    if args.profile == "smoke":
        cfg = Config.smoke(seed, run_dir)
    elif args.profile == "soak":
        cfg = Config.soak(seed, run_dir)
    elif args.profile == "soak-smoke":
        cfg = Config.soak_smoke(seed, run_dir)
    else:
        cfg = Config(seed=seed, run_dir=run_dir)
    if args.soak_scale is not None:
        cfg = replace(cfg, soak_scale=args.soak_scale)
    if args.duration:
        cfg = replace(cfg, duration=parse_duration(args.duration))
    if args.drain_timeout:
        cfg = replace(cfg, drain_timeout=parse_duration(args.drain_timeout))
    if args.fault_interval:
        cfg = replace(cfg, fault_interval=args.fault_interval)
    if args.rate:
        cfg = replace(cfg, rate=args.rate)
    if args.no_faults:
        cfg = replace(cfg, weights={})
    pairs = []
    for item in args.worker1_env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--worker1-env takes KEY=VALUE, not {item!r}")
        pairs.append((key, value))
    return replace(cfg, keep=args.keep, tolerate=tuple(args.tolerate), worker1_env=tuple(pairs))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = config(args)
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    # the harness's own logger, apart from the root one (which the platform's imports configure)
    chaos_log = logging.getLogger("chaos")
    chaos_log.setLevel(logging.INFO)
    chaos_log.propagate = False
    for handler in (logging.StreamHandler(sys.stdout), logging.FileHandler(cfg.run_dir / "harness.log")):
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        chaos_log.addHandler(handler)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in (
        "httpx",
        "httpcore",
        "uvicorn",
        "uvicorn.error",
        "litestar",
        "asyncio",
        "apex_platform",
        "apex_sink_postgres",
    ):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    print(
        f"chaos: seed {cfg.seed}, profile {cfg.profile}, duration {cfg.duration:.0f}s, run dir {cfg.run_dir}",
        flush=True,
    )
    began = time.monotonic()
    commit = report.git_commit(ROOT)  # the code the processes import: read before they start
    from tests.chaos.harness import Harness

    harness = Harness(cfg)
    crash: str | None = None
    try:
        verdict = asyncio.run(harness.soak() if cfg.profile == "soak" else harness.run())
    except BaseException as exc:
        crash = f"{type(exc).__name__}: {exc}"
        verdict = {
            "passed": False,
            "failures": [f"the harness stopped: {crash}"],
            "rows": {},
            "cursors": {},
            "http_statuses": {},
            "events": harness.events,
        }
        if isinstance(exc, KeyboardInterrupt):
            print("interrupted", flush=True)
    faults = [f.doc() for f in harness.controller.done] if harness.controller else []
    ledger = [d.summary() for d in harness.sender.ledger] if harness.sender else []
    (cfg.run_dir / "ledger.jsonl").write_text("".join(json.dumps(x) + "\n" for x in ledger))
    doc = {
        "seed": cfg.seed,
        "profile": cfg.profile,
        "duration_s": cfg.duration,
        "wall_s": round(time.monotonic() - began, 1),
        "run_dir": str(cfg.run_dir),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in cfg.__dict__.items()},
        "machine": report.machine(),
        "versions": report.versions(),
        "commit": commit,
        "faults_injected": sum(1 for f in faults if not f["skipped"]),
        "faults_by_kind": report.faults_table(faults),
        "faults": faults,
        "wipes": harness.controller.wipes if harness.controller else [],
        "vendor_changes": {name: v.changes for name, v in harness.vendors.items()},
        "duplicated_by_source": dict(report.duplicated_by_source(verdict.get("duplicates", {}))),
        "verdict": {k: v for k, v in verdict.items() if k != "events"},
        "events": verdict.get("events", []),
    }
    soak = verdict.get("soak")
    if soak is not None:
        not_flat = sorted(name for name, s in soak["slopes"].items() if not s["flat"])
        if not_flat and cfg.judge_flat:
            verdict.setdefault("failures", []).append(f"not flat over the soak: {', '.join(not_flat)}")
            verdict["passed"] = False
        doc["soak"] = soak
        doc["verdict"] = {k: v for k, v in verdict.items() if k not in ("events", "soak")}
    text = report.write(cfg.run_dir, doc)
    if soak is not None:
        from tests.chaos.soak import render

        text += render(soak)
        (cfg.run_dir / "chaos-report.txt").write_text(text)
    print(text, flush=True)
    passed = bool(verdict.get("passed"))
    if passed and not cfg.keep:
        shutil.rmtree(cfg.run_dir / "servers", ignore_errors=True)  # the data; logs and the report stay
    print(
        f"chaos: seed {cfg.seed} {'passed' if passed else 'FAILED'}; report {cfg.run_dir / 'chaos-report.txt'}",
        flush=True,
    )
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
