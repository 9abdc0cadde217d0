"""The verification key fetch cannot be driven by whoever sends a JWT: one fetch per kid at
a time, a budget of fetches a minute for kids not known to be valid, unknown kids
remembered briefly and evicted first, keys whose `expired_at` is set refused. Against the
fake Plaid over TCP, with the real client."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from apex_connector_plaid import PlaidConnector, samples
from apex_connector_plaid.client import fetch_verification_key
from apex_platform.errors import SignatureError, VerificationUnavailable

BODY = samples.sync_updates_available_body()
FORGER = ec.generate_private_key(ec.SECP256R1())


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def forged(plaid: Any, clock: Clock) -> dict[str, str]:
    return dict(plaid.fake.sign(BODY, kid=f"forged-{uuid.uuid4()}", private_key=FORGER, iat=clock.now))


def outcome(connector: PlaidConnector, headers: dict[str, str]) -> str:
    try:
        connector.verify(headers, BODY)
    except (SignatureError, VerificationUnavailable) as exc:
        return str(exc)
    return "ok"


def test_forged_random_kids_cost_at_most_the_budget_of_fetches(plaid: Any) -> None:
    clock = Clock()
    connector = plaid.connector(clock=clock, key_fetches_per_minute=5)
    answers = [outcome(connector, forged(plaid, clock)) for _ in range(60)]
    assert plaid.fake.key_requests == 5
    assert sum("does not know verification key" in a for a in answers) == 5
    refused = [a for a in answers if "APEX_PLAID_KEY_FETCHES_PER_MINUTE" in a]
    assert len(refused) == 55
    assert all("Plaid was not asked" in a for a in refused)
    clock.now += 61  # a new minute, a new budget
    assert [outcome(connector, forged(plaid, clock)) for _ in range(6)].count("ok") == 0
    assert plaid.fake.key_requests == 10


def test_a_known_key_keeps_working_through_a_flood(plaid: Any) -> None:
    clock = Clock()
    connector = plaid.connector(clock=clock, key_fetches_per_minute=3)
    assert outcome(connector, plaid.fake.sign(BODY, iat=clock.now)) == "ok"
    for _ in range(400):  # more forged kids than the cache holds
        outcome(connector, forged(plaid, clock))
        clock.now += 0.5
    assert outcome(connector, plaid.fake.sign(BODY, iat=clock.now)) == "ok"
    assert plaid.fake.key_requests <= 1 + 3 * (200 // 60 + 2)


def test_unknown_kids_fill_the_cache_without_evicting_the_real_key(plaid: Any) -> None:
    clock = Clock()
    settings = plaid.settings(key_fetches_per_minute=600)
    asked: list[str] = []

    def fetch(kid: str) -> dict[str, Any] | None:
        asked.append(kid)  # forged kids are answered "unknown" here, the real one by the fake over TCP
        return None if kid.startswith("forged-") else fetch_verification_key(settings, kid)

    connector = PlaidConnector(settings, clock=clock, key_fetcher=fetch)
    assert outcome(connector, plaid.fake.sign(BODY, iat=clock.now)) == "ok"
    for _ in range(300):  # more than the cache holds
        clock.now += 0.01
        outcome(connector, forged(plaid, clock))
    assert len(asked) == 301
    assert outcome(connector, plaid.fake.sign(BODY, iat=clock.now)) == "ok"
    assert len(asked) == 301  # the real key is still cached
    assert plaid.fake.key_requests == 1


def test_concurrent_verifications_of_a_new_kid_share_one_fetch(plaid: Any) -> None:
    connector = plaid.connector()
    plaid.fake.key_hold.set()
    try:
        with ThreadPoolExecutor(20) as pool:
            futures = [pool.submit(outcome, connector, plaid.fake.sign(BODY)) for _ in range(20)]
            deadline = time.monotonic() + 10
            while plaid.fake.key_requests < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(0.3)  # every verification is waiting by now
            assert plaid.fake.key_requests == 1
            plaid.fake.key_hold.clear()
            answers = [f.result(timeout=20) for f in futures]
    finally:
        plaid.fake.key_hold.clear()
    assert answers == ["ok"] * 20
    assert plaid.fake.key_requests == 1


def test_a_known_key_being_fetched_again_does_not_hold_other_verifications(plaid: Any) -> None:
    clock = Clock()
    connector = plaid.connector(clock=clock, key_cache_seconds=60, key_fetch_timeout_seconds=5)
    assert outcome(connector, plaid.fake.sign(BODY, iat=clock.now)) == "ok"
    clock.now += 61  # the cached key is due for a fetch
    plaid.fake.key_hold.set()
    done = threading.Event()
    try:
        leader = threading.Thread(target=lambda: (outcome(connector, plaid.fake.sign(BODY, iat=clock.now)), done.set()))
        leader.start()
        deadline = time.monotonic() + 10
        while plaid.fake.key_requests < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        # the refetch is held at Plaid: others are verified with the cached key meanwhile
        assert [outcome(connector, plaid.fake.sign(BODY, iat=clock.now)) for _ in range(5)] == ["ok"] * 5
        assert not done.is_set()
    finally:
        plaid.fake.key_hold.clear()
    leader.join(10)
    assert plaid.fake.key_requests == 2


def test_followers_do_not_wait_forever_for_a_stalled_fetch(plaid: Any) -> None:
    connector = plaid.connector(key_fetch_timeout_seconds=1)
    plaid.fake.key_hold.set()
    try:
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda _: outcome(connector, plaid.fake.sign(BODY)), range(4)))
    finally:
        plaid.fake.key_hold.clear()
    assert plaid.fake.key_requests == 1
    # a stalled Plaid says nothing about the webhook: unavailable (503), not a rejection (401)
    assert all(a.startswith("Plaid webhook not verified yet: ") for a in answers), answers


@pytest.mark.parametrize("offset", [-10.0, 3600.0])
def test_a_key_whose_expired_at_is_set_is_refused(plaid: Any, offset: float) -> None:
    clock = Clock()
    connector = plaid.connector(clock=clock)
    plaid.fake.expire_key(plaid.fake.current_kid, at=clock.now + offset)
    assert "expired at" in outcome(connector, plaid.fake.sign(BODY, iat=clock.now))
    assert "expired at" in outcome(connector, plaid.fake.sign(BODY, iat=clock.now))  # cached as expired
    assert plaid.fake.key_requests == 1
