"""Settings of one chaos run: the seed, how long, how hard, and the two profiles."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

#: every fault kind the controller injects (the report counts them by these names)
FAULT_KINDS = (
    "kill_worker",
    "kill_api",
    "power_cut",
    "temporal_restart",
    "pause_postgres",
    "pause_redis",
    "restart_postgres",
    "redis_data_loss",
    "flaky_sink",
    "vendor",
)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*$")


def parse_duration(text: str) -> float:
    """`20m`, `90s`, `1.5h` or seconds."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration (e.g. 20m, 180s)")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


@dataclass(frozen=True)
class Config:
    seed: int
    #: seconds of load and faults, from the moment the stack is up
    duration: float = 20 * 60
    #: at most this long to drain and verify once the faults stop
    drain_timeout: float = 8 * 60
    run_dir: Path = Path("chaos-runs")
    #: mean seconds between two fault starts (faults overlap when they touch different parts)
    fault_interval: float = 4.5
    #: relative weights of the fault kinds
    weights: dict[str, float] = field(
        default_factory=lambda: {
            "kill_worker": 3,
            "kill_api": 3,
            "power_cut": 0.6,
            "temporal_restart": 1.2,
            "pause_postgres": 1.5,
            "pause_redis": 1.5,
            "restart_postgres": 0.8,
            "redis_data_loss": 0.8,
            "flaky_sink": 2,
            "vendor": 4,
        }
    )
    #: the longest pause of PostgreSQL or Redis (a log-uniform draw between 2 s and this)
    max_pause: float = 60.0
    #: deliveries per second over every webhook and push source
    rate: float = 5.0
    #: EDI files dropped per minute
    edi_per_minute: float = 3.0
    #: vendor changes (poll and stream sources) per second, over all vendors
    vendor_rate: float = 2.0
    poison_share: float = 0.015
    big_share: float = 0.01
    resend_share: float = 0.04
    #: how long a probe may take to land before its recovery time is "not within"
    probe_timeout: float = 240.0
    concurrency: int = 48
    profile: str = "full"
    keep: bool = False
    #: a bound on the whole run (start to report), the drain shortened to keep it (None: no bound)
    max_wall: float | None = None
    #: the soak's rates, as a multiple of 10x the field rates (tests/chaos/soak.py)
    soak_scale: float = 1.0
    #: known defects reported but not failing the run (`stale-cache`: see docs/reliability.md)
    tolerate: tuple[str, ...] = ()
    #: the soak: seconds between two samples; the warm-up (None: the first third, at least
    #: 2 minutes, `soak.warmup_minutes`); the wait at rest before memory is sampled (twice
    #: the workers' trim interval and a margin) and between the samples at rest
    sample_seconds: float = 60.0
    warmup_seconds: float | None = None
    rest_settle: float = 75.0
    rest_spacing: float = 10.0
    #: `APEX_TEMPORAL_MEMORY_TRIM_SECONDS` of the workers (None: their default, 30 s)
    trim_seconds: float | None = None
    #: whether a series that is not flat fails the soak (the soak smoke is too short to say)
    judge_flat: bool = True
    #: environment given to worker1 only (`--worker1-env`): one worker against the other,
    #: e.g. an allocator setting, on the same load
    worker1_env: tuple[tuple[str, str], ...] = ()

    @classmethod
    def smoke(cls, seed: int, run_dir: Path) -> Config:
        """`nox -s tests`: ≤ 3 minutes, a few faults of each kind, each fault short."""
        base = cls(seed=seed, run_dir=run_dir)
        return replace(
            base,
            duration=80,
            # a poll that failed five times in a row waits 16 s, then 32 s, before its next
            # attempt (Temporal's backoff): the drain must outlast that, in the same 3 minutes
            drain_timeout=60,
            fault_interval=3.4,  # two of each kind
            weights=dict.fromkeys(FAULT_KINDS, 1.0),
            max_pause=8.0,
            rate=5.0,
            edi_per_minute=6.0,
            vendor_rate=2.0,
            probe_timeout=60.0,
            profile="smoke",
            max_wall=170.0,
        )

    @classmethod
    def soak_smoke(cls, seed: int, run_dir: Path) -> Config:
        """`nox -s tests`: the soak's machinery in small — its load at a tenth of its rates
        for 75 s, sampled every 10 s, the two rests (workers trimming every 5 s), the
        verdict. Too short to say anything about leaks: the full soak does."""
        return replace(
            cls.soak(seed, run_dir),
            duration=75,
            drain_timeout=60,
            soak_scale=0.1,
            sample_seconds=10.0,
            warmup_seconds=25.0,
            rest_settle=12.0,
            rest_spacing=3.0,
            trim_seconds=5.0,
            judge_flat=False,
        )

    @classmethod
    def soak(cls, seed: int, run_dir: Path) -> Config:
        """`nox -s soak`: 15 minutes at 10x the field rates, no faults, resources sampled."""
        return replace(
            cls(seed=seed, run_dir=run_dir), duration=15 * 60, drain_timeout=12 * 60, weights={}, profile="soak"
        )
