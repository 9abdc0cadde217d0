"""Pure parsing: CDC answers read defensively, records, versions, faults, the token store."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apex_connector_financial import FileTokenStore, FinancialConnector, FinancialSettings
from apex_connector_financial.cdc import (
    Change,
    ShapeError,
    format_time,
    parse_cdc,
    parse_query,
    parse_time,
    query_time,
)
from apex_connector_financial.client import fault_of
from apex_connector_financial.cursor import decode
from apex_connector_financial.records import build_record, version_of
from apex_connector_financial.tokens import fingerprint
from apex_platform.errors import PayloadError, SettingsError, VendorError
from apex_platform.models import InboundEvent
from apex_platform.settings import load

T = datetime(2015, 12, 23, 20, 55, 50, tzinfo=UTC)


def cdc_doc(*responses: dict[str, Any]) -> dict[str, Any]:
    return {"CDCResponse": [{"QueryResponse": list(responses)}], "time": "2015-12-23T12:56:06.196-08:00"}


def test_documented_sample_answer() -> None:
    doc = cdc_doc(
        {
            "Customer": [{"Id": "63", "SyncToken": "2", "MetaData": {"LastUpdatedTime": "2015-12-23T12:55:50-08:00"}}],
            "startPosition": 1,
            "maxResults": 1,
        },
        {
            "startPosition": 1,
            "totalCount": 5,
            "Estimate": [
                {
                    "status": "Deleted",
                    "domain": "QBO",
                    "Id": "979",
                    "MetaData": {"LastUpdatedTime": "2015-12-23T12:55:50-08:00"},
                }
            ],
            "maxResults": 5,
        },
    )
    answer = parse_cdc(doc, "w")
    assert answer.time == datetime(2015, 12, 23, 20, 56, 6, 196000, tzinfo=UTC)
    assert [(c.entity, c.id, c.deleted, c.sync_token) for c in answer.changes] == [
        ("Customer", "63", False, 2),
        ("Estimate", "979", True, None),
    ]
    assert answer.changes[0].updated == T
    assert parse_cdc({"CDCResponse": [{}], "time": "2015-12-23T12:56:06Z"}, "w").changes == []


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], "not a JSON object"),
        ({"CDCResponse": []}, "time is missing"),
        ({"time": "2015-12-23T12:56:06Z"}, "CDCResponse is missing"),
        ({"CDCResponse": {}, "time": "2015-12-23T12:56:06Z"}, "CDCResponse is not a list"),
        ({"CDCResponse": [{"QueryResponse": {}}], "time": "2015-12-23T12:56:06Z"}, "QueryResponse is not a list"),
        (cdc_doc({"Invoice": {}}), "Invoice is not a list"),
        (cdc_doc({"Invoice": [{"MetaData": {}}]}), r"Invoice\[0\].Id"),
        (cdc_doc({"Invoice": [{"Id": "1", "MetaData": {"LastUpdatedTime": "soon"}}]}), "LastUpdatedTime"),
        (
            cdc_doc({"Invoice": [{"Id": "1", "MetaData": {"LastUpdatedTime": "1900-01-01T00:00:00Z"}}]}),
            "LastUpdatedTime",
        ),
        (cdc_doc({"Invoice": [{"Id": "1 OR 1=1", "MetaData": {}}]}), "not a QuickBooks id"),
        (cdc_doc({"Invoice": ["x"]}), "not an object"),
    ],
)
def test_hostile_answers(doc: Any, message: str) -> None:
    with pytest.raises(ShapeError, match=message):
        parse_cdc(doc, "w")


def change(
    entity: str = "Invoice",
    body: dict[str, Any] | None = None,
    *,
    sync: int | None = 0,
    deleted: bool = False,
    when: datetime = T,
) -> Change:
    return Change(entity, "42", when, deleted, sync, body or {})


def test_versions_are_monotonic_with_the_sync_token_as_tie_breaker() -> None:
    same_second = [version_of(change(sync=s)) for s in (0, 1, 2, 998, 999, 5000)]
    assert same_second == sorted(same_second)
    assert same_second[-1] == same_second[-2]  # saturates: documented
    later = version_of(change(sync=0, when=T.replace(second=51)))
    assert later > same_second[-1]
    assert version_of(change(deleted=True, sync=None)) == same_second[-1]  # a deletion wins its second
    assert version_of(change(when=datetime(9999, 12, 31, tzinfo=UTC))) < 2**63
    assert version_of(change(sync=7)) == int(T.timestamp()) * 1_000_000 + 7


def test_invoice_with_hostile_lines_and_refs() -> None:
    body = {
        "DocNumber": 1042,
        "TotalAmt": "12.5",
        "CurrencyRef": "USD",
        "CustomerRef": {"value": 7},
        "Line": [
            "junk",
            {"Amount": "x", "DetailType": "SalesItemLineDetail", "SalesItemLineDetail": []},
            {"Amount": 3, "Description": "d" * 900},
        ],
        "DueDate": "tomorrow",
        "Balance": True,
    }
    record = build_record("1", change(body=body))
    assert record.attributes["doc_number"] == "1042"
    assert record.attributes["amount"] == 12.5
    assert "currency" not in record.attributes
    assert "due_date" not in record.attributes
    assert "balance" not in record.attributes
    assert record.attributes["customer_id"] == "7"
    assert record.attributes["lines"] == [
        {"detail_type": "SalesItemLineDetail"},
        {"amount": 3.0, "description": "d" * 400},
    ]
    assert [(r.type, r.dst) for r in record.relations] == [("FOR_CUSTOMER", "Customer:qbo:1:7")]
    assert record.title == "Invoice 1042"


def test_payment_links_only_invoices() -> None:
    body = {
        "TotalAmt": 10,
        "Line": [
            {
                "LinkedTxn": [
                    {"TxnId": "5", "TxnType": "Invoice"},
                    {"TxnId": "6", "TxnType": "CreditMemo"},
                    {"TxnId": "5", "TxnType": "Invoice"},
                ]
            },
            {"LinkedTxn": "x"},
        ],
    }
    record = build_record("1", change("Payment", body))
    assert record.attributes["invoice_ids"] == ["5"]
    assert [(r.src, r.type, r.dst) for r in record.relations] == [("Payment:qbo:1:42", "PAYS", "Invoice:qbo:1:5")]


def test_other_entities_get_generic_records() -> None:
    record = build_record("1", change("Estimate", {"TotalAmt": 5, "CurrencyRef": {"value": "CAD"}}))
    assert (record.kind, record.id, record.entities[0].ref) == (
        "financial.estimate",
        "1:estimate:42",
        "Estimate:qbo:1:42",
    )
    assert (record.attributes["amount"], record.attributes["currency"]) == (5.0, "CAD")


def test_tombstone() -> None:
    record = build_record("1", change("Customer", {}, deleted=True, sync=None))
    assert record.deleted
    assert (record.kind, record.id) == ("financial.customer", "1:customer:42")
    assert record.entities == ()


def test_faults() -> None:
    assert fault_of(
        {"Fault": {"Error": [{"Message": "m", "Detail": "d", "code": "3200"}], "type": "AuthenticationFault"}}
    ) == ("AuthenticationFault: 3200 m d")
    assert fault_of({"Fault": {"Error": "x"}}) == "Fault: no detail"
    assert fault_of({"QueryResponse": {}}) is None
    assert fault_of([]) is None
    assert len(fault_of({"Fault": {"Error": [{"Message": "m" * 5000}]}}) or "") <= 300


def test_times() -> None:
    assert parse_time("2015-12-23T12:55:50-08:00") == T
    assert parse_time("2015-12-23T20:55:50Z") == T
    assert format_time(T) == "2015-12-23T20:55:50.000+00:00"
    for bad in (None, 5, "", "x" * 80, "2015-13-01"):
        assert parse_time(bad) is None


def test_cursor() -> None:
    assert decode(None, where="w").since == {}
    for bad in ("nope", '{"since": {"Invoice": "soon"}}', '{"v": 2}', '{"since": [], "v": 1}'):
        with pytest.raises(VendorError) as info:
            decode(bad, where="w")
        assert not info.value.retryable


def test_file_token_store(tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path / "deep" / "tokens.json")
    assert store.load("1", "seed") is None
    store.save("1", "rt-1", "seed")
    store.save("2", "rt-2", "other")
    assert store.load("1", "seed") == "rt-1"
    assert store.load("1", "new-seed") is None  # the operator configured a new token: that one wins
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert list(store.path.parent.glob(".tokens-*")) == []
    assert json.loads(store.path.read_text())["2"]["refresh_token"] == "rt-2"
    with store.lock():
        pass
    store.path.write_text("not json")
    with pytest.raises(VendorError, match="token store"):
        store.load("1", "seed")


def test_fingerprint_does_not_reveal_the_token() -> None:
    assert fingerprint("AB11secret") != fingerprint("AB11secreu")
    assert "secret" not in fingerprint("AB11secret")


def test_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APEX_FINANCIAL_REFRESH_TOKENS", '{"123": "rt"}')
    monkeypatch.setenv("APEX_FINANCIAL_ENTITIES", "Invoice, Estimate,Invoice")
    s = load(FinancialSettings)
    assert s.entities == ["Invoice", "Estimate"]
    assert s.refresh_tokens["123"].get_secret_value() == "rt"
    assert "rt" not in repr(s)
    assert FinancialConnector(s).accounts() == ["123"]
    monkeypatch.setenv("APEX_FINANCIAL_REFRESH_TOKENS", '{"../x": "rt"}')
    with pytest.raises(SettingsError, match="APEX_FINANCIAL_REFRESH_TOKENS"):
        load(FinancialSettings)
    monkeypatch.setenv("APEX_FINANCIAL_REFRESH_TOKENS", "{}")
    monkeypatch.setenv("APEX_FINANCIAL_ENTITIES", "Invoice;DROP")
    with pytest.raises(SettingsError, match="APEX_FINANCIAL_ENTITIES"):
        load(FinancialSettings)


def test_parse_of_a_delivered_object() -> None:
    connector = FinancialConnector(FinancialSettings())
    obj = {
        "Id": "9",
        "SyncToken": "3",
        "MetaData": {"LastUpdatedTime": "2015-12-23T12:55:50-08:00"},
        "DisplayName": "Acme",
    }
    event = InboundEvent(
        source="financial", event_id="e", received_at=T, payload={"realm_id": "1", "entity": "Customer", "object": obj}
    )
    (record,) = connector.parse(event)
    assert (record.id, record.version % 1000, record.title) == ("1:customer:9", 3, "Customer Acme")
    for payload in (
        None,
        {},
        {"realm_id": "x", "entity": "Customer"},
        {"realm_id": "1", "entity": "Customer", "object": {}},
    ):
        with pytest.raises(PayloadError):
            connector.parse(event.model_copy(update={"payload": payload}))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda c: (
        st.lists(c, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "Id",
                    "MetaData",
                    "LastUpdatedTime",
                    "SyncToken",
                    "Line",
                    "LinkedTxn",
                    "TxnId",
                    "TxnType",
                    "CustomerRef",
                    "value",
                    "name",
                    "TotalAmt",
                    "CurrencyRef",
                    "DetailType",
                    "status",
                    "x",
                ]
            ),
            c,
            max_size=5,
        )
    ),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(body=json_values, entity=st.sampled_from(["Invoice", "Payment", "Bill", "Customer", "Vendor", "Estimate"]))
def test_any_object_becomes_a_record_or_a_shape_error(body: Any, entity: str) -> None:
    if isinstance(body, dict):
        body = {**body, "Id": "5", "MetaData": {"LastUpdatedTime": "2015-12-23T12:55:50-08:00"}}
    doc = cdc_doc({entity: [body]})
    try:
        answer = parse_cdc(doc, "w")
    except ShapeError:
        return
    for c in answer.changes:
        build_record("1", c)


def test_query_answers() -> None:
    live = {"Id": "7", "SyncToken": "1", "MetaData": {"LastUpdatedTime": "2015-12-23T12:55:50-08:00"}}
    doc = {"QueryResponse": {"Invoice": [live], "startPosition": 1, "maxResults": 1}, "time": "2015-12-23T12:56:06Z"}
    answer = parse_query(doc, "Invoice", "w")
    assert [(c.entity, c.id, c.updated) for c in answer.changes] == [("Invoice", "7", T)]
    assert parse_query({"QueryResponse": {}, "time": "2015-12-23T12:56:06Z"}, "Invoice", "w").changes == []
    assert parse_query({"QueryResponse": {"totalCount": 5}}, "Invoice", "w").total_count == 5
    assert query_time(datetime(2015, 12, 23, 20, 55, 50, 999000, tzinfo=UTC)) == "'2015-12-23T20:55:50+00:00'"


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], "not a JSON object"),
        ({}, "QueryResponse is missing"),
        ({"QueryResponse": []}, "QueryResponse is not an object"),
        ({"QueryResponse": {"totalCount": -1}}, "totalCount is not a count"),
        ({"QueryResponse": {"totalCount": True}}, "totalCount is not a count"),
        ({"QueryResponse": {"Invoice": {}}}, "Invoice is not a list"),
        ({"QueryResponse": {"Bill": []}}, "holds Bill, not the Invoice objects"),
        (
            {
                "QueryResponse": {
                    "Invoice": [
                        {"status": "Deleted", "Id": "1", "MetaData": {"LastUpdatedTime": "2015-12-23T12:55:50Z"}}
                    ]
                }
            },
            "holds a deleted Invoice",
        ),
        ({"QueryResponse": {"Invoice": [{"Id": "1"}]}}, "LastUpdatedTime is missing"),
    ],
)
def test_hostile_query_answers(doc: Any, message: str) -> None:
    with pytest.raises(ShapeError, match=message):
        parse_query(doc, "Invoice", "w")
