"""Records of a /transactions/sync page (pure) and the versioned cursor."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from apex_connector_plaid import KIND_ACCOUNT, KIND_TRANSACTION, KIND_UNREADABLE, samples
from apex_connector_plaid.cursor import SyncCursor
from apex_connector_plaid.records import page_records

READ_AT = datetime(2026, 3, 7, 12, 0, tzinfo=UTC)
ITEM = samples.DEMO_ITEM_ID


def page(**lists: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "added": [],
        "modified": [],
        "removed": [],
        "accounts": [],
        "next_cursor": "c",
        "has_more": False,
    }
    doc.update(lists)
    return doc


def by_id(records: list[Any]) -> dict[str, Any]:
    return {r.id: r for r in records}


def test_a_transaction_with_merchant_counterparty_and_category() -> None:
    changes = dict((doc["transaction_id"], doc) for _, doc in samples.demo_changes()[:1])
    (record,) = page_records(page(added=list(changes.values())), ITEM, 42, READ_AT)
    assert (record.kind, record.id, record.version, record.deleted) == (
        KIND_TRANSACTION,
        "eyg8o776k0QmNgVpAmaQj4WgzW9Qzo6O51gdd",
        42,
        False,
    )
    assert record.occurred_at == datetime(2026, 3, 2, tzinfo=UTC)
    assert record.title == "Pilot Flying J: 612.48 USD"
    assert "Transaction 612.48 USD (money out) at Pilot Flying J on 2026-03-02." in record.text
    assert record.attributes["item_id"] == ITEM
    assert record.attributes["category_detailed"] == "TRANSPORTATION_GAS"
    refs = {e.ref for e in record.entities}
    assert refs == {
        "Transaction:eyg8o776k0QmNgVpAmaQj4WgzW9Qzo6O51gdd",
        f"Account:{samples.FUEL_CARD}",
        "Merchant:NjRoD5vGgqQ93vMvDzKnzNkp3q4e5BN8r6eyL",
        "Counterparty:NjRoD5vGgqQ93vMvDzKnzNkp3q4e5BN8r6eyL",
        "Category:TRANSPORTATION_GAS",
    }
    rels = {(r.type, r.dst) for r in record.relations}
    assert rels == {
        ("POSTED_TO", f"Account:{samples.FUEL_CARD}"),
        ("PAID_TO", "Merchant:NjRoD5vGgqQ93vMvDzKnzNkp3q4e5BN8r6eyL"),
        ("WITH_COUNTERPARTY", "Counterparty:NjRoD5vGgqQ93vMvDzKnzNkp3q4e5BN8r6eyL"),
        ("IN_CATEGORY", "Category:TRANSPORTATION_GAS"),
    }
    assert all(r.src == "Transaction:eyg8o776k0QmNgVpAmaQj4WgzW9Qzo6O51gdd" for r in record.relations)


def test_merchant_without_entity_id_is_keyed_by_normalized_name() -> None:
    doc = samples.transaction("t1", "a1", 5.0, "2026-03-01", "X", merchant_name="  Illinois   TOLLWAY ")
    (record,) = page_records(page(added=[doc]), ITEM, 1, READ_AT)
    assert "Merchant:name:illinois tollway" in {e.ref for e in record.entities}
    assert "Counterparty:name:illinois tollway" in {e.ref for e in record.entities}


def test_money_in_and_pending_read_naturally() -> None:
    doc = samples.transaction("t1", "a1", -18450.0, "2026-03-03", "ACH CREDIT ACME", pending=True)
    (record,) = page_records(page(modified=[doc]), ITEM, 1, READ_AT)
    assert record.text.startswith("Pending transaction -18450.00 USD (money in) at ACH CREDIT ACME")


def test_accounts_carry_balances_and_belong_to_the_item() -> None:
    records = page_records(page(accounts=samples.demo_accounts()), ITEM, 7, READ_AT)
    card = by_id(records)[samples.FUEL_CARD]
    assert card.kind == KIND_ACCOUNT
    assert card.version == 7
    assert card.occurred_at == READ_AT
    assert card.title == "Fleet Fuel Card ••3333"
    assert card.attributes["balances"]["limit"] == 15000
    assert "Current balance: 2310.40 USD." in card.text
    assert [(r.src, r.type, r.dst) for r in card.relations] == [
        (f"Account:{samples.FUEL_CARD}", "BELONGS_TO", f"Item:{ITEM}")
    ]
    account = next(e for e in card.entities if e.type == "Account")
    assert account.properties == {"name": "Fleet Fuel Card", "mask": "3333", "type": "credit", "subtype": "credit card"}


def test_removed_transactions_are_tombstones() -> None:
    (record,) = page_records(page(removed=[{"transaction_id": "t9", "account_id": "a1"}]), ITEM, 9, READ_AT)
    assert (record.kind, record.id, record.version, record.deleted) == (KIND_TRANSACTION, "t9", 9, True)
    assert record.attributes == {"item_id": ITEM, "account_id": "a1"}


def test_entries_without_an_id_are_kept_as_unreadable_records() -> None:
    records = page_records(
        page(added=[{"amount": 3}, "junk"], removed=[{"transaction_id": ""}], accounts=[{"name": "no id"}]),
        ITEM,
        1,
        READ_AT,
    )
    assert [r.kind for r in records] == [KIND_UNREADABLE] * 4
    assert len({r.id for r in records}) == 4
    assert records[1].attributes["where"] == "added"


def test_hostile_fields_are_ignored_not_fatal() -> None:
    doc = {
        "transaction_id": "t1",
        "account_id": "a" * 1000,
        "amount": "lots",
        "merchant_entity_id": ["x"],
        "merchant_name": 5,
        "counterparties": "nope",
        "personal_finance_category": {"primary": None, "detailed": "\x00bad"},
        "date": "not a date",
        "location": {"city": {"deep": 1}},
    }
    (record,) = page_records(page(added=[doc]), ITEM, 1, READ_AT)
    assert record.kind == KIND_TRANSACTION
    assert record.occurred_at == READ_AT
    assert [e.type for e in record.entities] == ["Transaction"]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.dictionaries(
            st.sampled_from(list(samples.transaction("t", "a", 1, "2026-01-01", "n"))),
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
        ),
        max_size=5,
    )
)
def test_any_entries_give_one_record_each(entries: list[dict[str, Any]]) -> None:
    records = page_records(page(added=entries), ITEM, 1, READ_AT)
    assert len(records) == len(entries)


def test_cursor_round_trip_and_monotonic_versions() -> None:
    assert SyncCursor.decode(None) == SyncCursor("", 0)
    assert SyncCursor.decode("") == SyncCursor("", 0)
    c = SyncCursor("opaque:with:colons==", 1_000)
    assert SyncCursor.decode(c.encode()) == c
    assert SyncCursor.decode("bare-plaid-cursor") == SyncCursor("bare-plaid-cursor", 0)
    assert SyncCursor.decode("apex1:notanumber:x") == SyncCursor("apex1:notanumber:x", 0)
    # a worker whose clock is behind still issues a higher version than the last page's
    assert c.next_version(now_us=500) == 1_001
    assert c.next_version(now_us=5_000) == 5_000
