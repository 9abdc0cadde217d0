"""The soak's verdict on resource series (tests/chaos/soak.py `slopes`): a leak is not flat,
a pool that fills once during the warm-up is, a step in the steady state is not, a store
that grows with what it stores is judged per stored record."""

from __future__ import annotations

import random

from tests.chaos.soak import slopes, warmup_minutes


def _run(minutes: int, series: dict[str, object], *, noise: float = 0.5, seed: int = 1) -> list[dict[str, float]]:
    rng = random.Random(seed)
    out = []
    for m in range(minutes + 1):
        sample: dict[str, float] = {"minute": float(m), "delivered": 1000.0 * m, "records": 900.0 * m}
        for name, f in series.items():
            sample[name] = f(m) + rng.uniform(-noise, noise)  # type: ignore[operator]
        out.append(sample)
    return out


def test_the_warm_up_is_the_first_third_and_at_least_two_minutes() -> None:
    assert warmup_minutes(30) == 10
    assert warmup_minutes(3) == 2


def test_a_leak_is_not_flat() -> None:
    got = slopes(_run(30, {"rss_mb:worker0": lambda m: 160 + 3 * m}), 30)
    assert got["rss_mb:worker0"]["flat"] is False
    assert got["rss_mb:worker0"]["slope_per_min"] > 2.5


def test_a_slow_leak_is_not_flat_either() -> None:
    # 1.5 MB a minute: 30 MB over the 20 judged minutes of a ~200 MB process, above 10% of it
    got = slopes(_run(30, {"rss_mb:worker0": lambda m: 160 + 1.5 * m}, noise=0.3), 30)
    assert got["rss_mb:worker0"]["flat"] is False


def test_a_pool_that_fills_during_the_warm_up_and_stays_is_flat() -> None:
    got = slopes(
        _run(30, {"fds:api0": lambda m: 17 if m < 6 else 23, "rss_mb:worker0": lambda m: 160 + min(m, 8) * 15}), 30
    )
    assert got["fds:api0"]["flat"] is True
    assert got["rss_mb:worker0"]["flat"] is True


def test_a_step_in_the_steady_state_is_not_flat() -> None:
    got = slopes(_run(30, {"rss_mb:worker0": lambda m: 160 if m < 20 else 280}), 30)
    assert got["rss_mb:worker0"]["flat"] is False


def test_a_store_is_judged_per_stored_record() -> None:
    proportional = lambda m: 50 + 0.004 * 900 * m  # noqa: E731 - 4 KB per stored record
    rising_cost = lambda m: 50 + 0.0002 * 900 * m * m  # noqa: E731 - the cost per record keeps rising
    got = slopes(_run(30, {"redis_mb:cache": proportional, "inbox_mb": rising_cost}, noise=0.1), 30)
    assert got["redis_mb:cache"]["kind"] == "data"
    assert got["redis_mb:cache"]["flat"] is True
    assert got["redis_mb:cache"]["per_1k_records"] > 3.5
    assert got["inbox_mb"]["flat"] is False


def test_a_backlog_that_rises_does_not_keep_up_and_one_that_drains_does() -> None:
    rising = slopes(_run(30, {"backlog": lambda m: 100 * m}), 30)
    draining = slopes(_run(30, {"backlog": lambda m: max(0, 3000 - 100 * m)}), 30)
    assert rising["backlog"]["flat"] is False
    assert draining["backlog"]["flat"] is True


def test_histories_are_judged_by_the_continue_as_new_bound() -> None:
    under = slopes(_run(30, {"history_total": lambda m: 500 * m, "history_max": lambda m: 9000}), 30)
    over = slopes(_run(30, {"history_total": lambda m: 500 * m, "history_max": lambda m: 400 * m}), 30)
    assert under["history_total"]["flat"] is True
    assert over["history_total"]["flat"] is False


def test_a_process_that_gives_memory_back_is_flat() -> None:
    got = slopes(_run(30, {"rss_mb:worker0": lambda m: 220 - 1.5 * m, "fds:edi-watcher": lambda m: 14 - m / 10}), 30)
    assert got["rss_mb:worker0"]["flat"] is True
    assert got["fds:edi-watcher"]["flat"] is True


def test_the_longest_history_is_judged_by_the_bound_too() -> None:
    got = slopes(_run(30, {"history_max": lambda m: 300 * m}), 30)
    assert got["history_max"]["kind"] == "bounded"
    assert got["history_max"]["flat"] is True


def test_one_burst_does_not_make_a_flat_series_climb_or_fall() -> None:
    # seed 4010's PostgreSQL descriptors: a burst of backends at the first judged sample
    # made a least-squares fit of the first half fall and of the second rise
    burst = lambda m: 1185 if m == 10 else 930 + (7 if m % 3 else -9)  # noqa: E731
    got = slopes(_run(30, {"fds:postgres": burst, "rss_mb:worker0": burst}), 30)
    assert got["fds:postgres"]["flat"] is True
    assert got["rss_mb:worker0"]["flat"] is True


def test_a_climb_with_bursts_is_still_not_flat() -> None:
    spiky = lambda m: 160 + 1.5 * m + (25 if m % 7 == 0 else 0)  # noqa: E731
    got = slopes(_run(30, {"rss_mb:worker0": spiky}), 30)
    assert got["rss_mb:worker0"]["flat"] is False
    assert 1.2 < got["rss_mb:worker0"]["slope_per_min"] < 1.8


def _rest(drained: bool = True, spread: float = 0.5, **rss: float) -> dict[str, object]:
    return {
        "drained": drained,
        "drain_s": 3.0,
        "rss_mb": {f"rss_mb:{k}": v for k, v in rss.items()},
        "spread_mb": {f"rss_mb:{k}": spread for k in rss},
    }


def test_memory_that_follows_the_load_is_judged_at_rest() -> None:
    """A worker that took a larger share of the load in the second half holds more under
    load (+2 MB a minute) but gives it back: at rest it holds what it held after the
    warm-up. Flat, and the under-load figure says it was not flat under load."""
    samples = _run(30, {"rss_mb:worker0": lambda m: 180 + (2 * (m - 10) if m > 10 else 0), "fds:worker0": lambda m: 40})
    got = slopes(samples, 30, (_rest(worker0=150.0), _rest(worker0=154.0)))
    row = got["rss_mb:worker0"]
    assert row["flat_under_load"] is False
    assert (row["rest_begin"], row["rest_end"], row["rest_change"]) == (150.0, 154.0, 4.0)
    assert row["flat"] is True
    assert "rest_begin" not in got["fds:worker0"]  # descriptors are judged under load only


def test_a_leak_is_still_held_at_rest_and_fails() -> None:
    samples = _run(30, {"rss_mb:worker0": lambda m: 160 + 1.5 * m})
    got = slopes(samples, 30, (_rest(worker0=150.0), _rest(worker0=180.0)))
    assert got["rss_mb:worker0"]["flat"] is False
    assert got["rss_mb:worker0"]["rest_change"] == 30.0


def test_growth_seen_only_at_rest_fails_too() -> None:
    """Flat under load (within the noise of a busy process) but 20% more kept at rest."""
    samples = _run(30, {"rss_mb:worker0": lambda m: 200}, noise=8)
    got = slopes(samples, 30, (_rest(worker0=150.0), _rest(worker0=180.0)))
    assert got["rss_mb:worker0"]["flat_under_load"] is True
    assert got["rss_mb:worker0"]["flat"] is False


def test_without_a_rest_memory_is_judged_under_load() -> None:
    """A stack that did not drain before the rest sample was never at rest: the under-load
    test decides, as it does for a process sampled at only one of the rests."""
    samples = _run(30, {"rss_mb:worker0": lambda m: 160 + 2 * m, "rss_mb:api0": lambda m: 100 + 2 * m})
    got = slopes(samples, 30, (_rest(drained=False, worker0=150.0), _rest(worker0=150.0)))
    assert got["rss_mb:worker0"]["flat"] is False
    assert "rest_begin" not in got["rss_mb:worker0"]
    got = slopes(samples, 30, (_rest(worker0=150.0), _rest(worker0=150.0)))
    assert got["rss_mb:worker0"]["flat"] is True
    assert got["rss_mb:api0"]["flat"] is False  # not sampled at rest


def test_the_rest_tolerance_is_ten_percent_or_the_sampling_spread() -> None:
    got = slopes(_run(30, {"rss_mb:w": lambda m: 200}), 30, (_rest(w=200.0), _rest(w=219.0)))
    assert got["rss_mb:w"]["rest_allowed"] == 20.0
    assert got["rss_mb:w"]["flat"] is True
    got = slopes(_run(30, {"rss_mb:w": lambda m: 200}), 30, (_rest(w=200.0), _rest(w=221.0)))
    assert got["rss_mb:w"]["flat"] is False
    noisy = (_rest(spread=15.0, w=200.0), _rest(spread=15.0, w=221.0))
    assert slopes(_run(30, {"rss_mb:w": lambda m: 200}), 30, noisy)["rss_mb:w"]["flat"] is True


def test_worker1_alone_can_be_given_an_environment() -> None:
    """`--worker1-env KEY=VALUE`: one worker against the other on the same load."""
    import pytest

    from tests.chaos.run import config, parse_args

    cfg = config(parse_args(["--profile", "soak", "--seed", "1", "--worker1-env", "PYTHONMALLOC=malloc"]))
    assert cfg.worker1_env == (("PYTHONMALLOC", "malloc"),)
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        config(parse_args(["--seed", "1", "--worker1-env", "PYTHONMALLOC"]))
