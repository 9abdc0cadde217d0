"""The fake vendors the stream and poller scenarios read from, each in its own process:
the connectors' own fakes (`fake_vendor.py`) served over HTTP on loopback.

    python vendors.py samsara-feed --vehicles V --points P --expected-out FILE
    python vendors.py plaid --transactions N --expected-out FILE

`samsara-feed`: Samsara's vehicle stats feed (the documented shape: vehicles with `gps` and
`engineStates` points, 500 points a page) with V vehicles of P GPS points each and an
engine state every fifth point. `plaid`: `/transactions/sync` of one Item whose history
is N added transactions (Plaid's documented transaction object, built by the connector's
`samples.transaction`), paged 500 at a time as Plaid does at most.

Each writes the record keys the connector must produce for the whole data set to FILE,
prints one JSON line `{"url": ...}` and serves until its standard input closes.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

SAMSARA_TOKEN = "apex-benchmark-samsara-token"
MERCHANTS = [
    ("PILOT 00412 JOLIET IL", "Pilot Flying J", ("TRANSPORTATION", "TRANSPORTATION_GAS")),
    ("LOVES #0321 GARY IN", "Love's Travel Stops", ("TRANSPORTATION", "TRANSPORTATION_GAS")),
    ("IPASS TOLLWAY AUTO REPLENISH", "Illinois Tollway", ("TRANSPORTATION", "TRANSPORTATION_TOLLS")),
    ("TA PETRO 112 EFFINGHAM IL", "TravelCenters of America", ("TRANSPORTATION", "TRANSPORTATION_GAS")),
    ("ACH CREDIT ACME FOODS AP", None, ("INCOME", "INCOME_OTHER_INCOME")),
]


def samsara_feed(vehicles: int, points: int) -> tuple[Any, list[tuple[str, str]]]:
    from apex_connector_samsara.fake_vendor import FakeSamsara, FakeServer
    from apex_connector_samsara.feed import feed_answer
    from apex_connector_samsara.settings import DEFAULT_ACCOUNT

    fake = FakeSamsara(vehicles=vehicles, points=points, page_size=500, token=SAMSARA_TOKEN, engine_every=5)
    page_size, fake.page_size = fake.page_size, len(fake._items) + 1
    _, whole, _ = fake._feed(f"Bearer {SAMSARA_TOKEN}", "gps,engineStates", None)
    fake.page_size = page_size
    keys = sorted({(r.source, r.id) for r in feed_answer(whole, DEFAULT_ACCOUNT).records})
    return FakeServer(fake), keys


def plaid(transactions: int) -> tuple[Any, list[tuple[str, str]]]:
    from apex_connector_plaid import samples
    from apex_connector_plaid.fake_vendor import FakeItem, FakePlaid, FakeVendorServer
    from apex_connector_plaid.records import transaction_record

    rng = random.Random(15)
    accounts = samples.demo_accounts()
    log = []
    for i in range(transactions):
        name, merchant, category = rng.choice(MERCHANTS)
        day = (date(2026, 3, 1) + timedelta(days=rng.randrange(60))).isoformat()
        doc = samples.transaction(
            f"bench{i:08d}{rng.getrandbits(64):016x}",
            rng.choice(accounts)["account_id"],
            round(rng.uniform(-25000, 2500), 2),
            day,
            f"{name} {rng.randrange(10**6)}",
            merchant_name=merchant,
            category=category,
        )
        log.append(("added", doc))
    fake = FakePlaid(samples.DEMO_CLIENT_ID, samples.DEMO_SECRET)
    fake.add_item(
        FakeItem(item_id=samples.DEMO_ITEM_ID, access_token=samples.DEMO_ACCESS_TOKEN, accounts=accounts, log=log)
    )
    now = datetime.now(UTC)
    keys = sorted({(r.source, r.id) for r in (transaction_record(d, samples.DEMO_ITEM_ID, 0, now) for _, d in log)})
    return FakeVendorServer(fake), keys


def plaid_env(url: str) -> dict[str, str]:
    from apex_connector_plaid import samples

    return {
        "APEX_PLAID_BASE_URL": url,
        "APEX_PLAID_CLIENT_ID": samples.DEMO_CLIENT_ID,
        "APEX_PLAID_SECRET": samples.DEMO_SECRET,
        "APEX_PLAID_ACCESS_TOKENS": json.dumps({samples.DEMO_ITEM_ID: samples.DEMO_ACCESS_TOKEN}),
        "APEX_PLAID_PAGE_SIZE": "500",
        "APEX_PLAID_POLL_INTERVAL_SECONDS": "600",
    }


def samsara_env(url: str) -> dict[str, str]:
    return {"APEX_SAMSARA_API_TOKEN": SAMSARA_TOKEN, "APEX_SAMSARA_BASE_URL": url}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    feed = sub.add_parser("samsara-feed")
    feed.add_argument("--vehicles", type=int, required=True)
    feed.add_argument("--points", type=int, required=True)
    feed.add_argument("--expected-out", type=Path, required=True)
    poll = sub.add_parser("plaid")
    poll.add_argument("--transactions", type=int, required=True)
    poll.add_argument("--expected-out", type=Path, required=True)
    args = parser.parse_args()
    if args.command == "samsara-feed":
        server, keys = samsara_feed(args.vehicles, args.points)
    else:
        server, keys = plaid(args.transactions)
    args.expected_out.write_text(json.dumps(keys))
    url = server.start()
    sys.stdout.write(json.dumps({"url": url, "expected": len(keys)}) + "\n")
    sys.stdout.flush()
    try:
        sys.stdin.read()  # until the benchmark closes our standard input
    finally:
        server.stop()


if __name__ == "__main__":
    main()
