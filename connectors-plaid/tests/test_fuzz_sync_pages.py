"""Hypothesis over `/transactions/sync` answers as the connector reads them: the real HTTP
client (`transactions_sync`, over an httpx mock transport answering the mutated body) and
the real `poll` (cursor, has_more, record builders). A malformed page is a PayloadError or
a VendorError naming what is wrong, never a TypeError, KeyError or any other crash; what
a page does yield are records the stores can take."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from functools import partial
from typing import Any
from unittest import mock

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apex_connector_plaid import connector as connector_module
from apex_connector_plaid import samples
from apex_connector_plaid.client import transactions_sync
from apex_connector_plaid.connector import PlaidConnector
from apex_connector_plaid.settings import PlaidSettings
from apex_platform.errors import PayloadError, VendorError
from apex_platform.testing.hostile_json import hostile_bodies
from apex_platform.testing.mutations import JSON_VALUES, deadline, mutated_docs

CLIENT_ID = "fuzz-client-id"
SECRET = "fuzz-secret-0d9c8b7a6f5e"
ITEM = "item-fuzz-1"
TOKEN = "access-sandbox-fuzz-token-0123456789"

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def real_page() -> dict[str, Any]:
    changes = samples.demo_changes()
    txns = [doc for _op, doc in changes if "transaction_id" in doc]
    return {
        "accounts": samples.demo_accounts(),
        "added": txns[:3],
        "modified": txns[3:5],
        "removed": [{"transaction_id": t["transaction_id"], "account_id": t.get("account_id")} for t in txns[5:7]],
        "next_cursor": "cursor-1",
        "has_more": False,
        "transactions_update_status": "HISTORICAL_UPDATE_COMPLETE",
        "request_id": "req1",
    }


PAGE = real_page()

VALUES = JSON_VALUES


def mutated_pages() -> st.SearchStrategy[Any]:
    """The real page with a few values replaced by others of any type, or removed."""
    return mutated_docs(PAGE)


def plaid_settings() -> PlaidSettings:
    return PlaidSettings(base_url="http://127.0.0.1:9", client_id=CLIENT_ID, secret=SECRET, access_tokens={ITEM: TOKEN})


def poll_answering(body: bytes, status: int = 200) -> Any:
    """One real `poll` of a page whose HTTP answer is `body`: the page, or the exception."""

    def answer(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body, headers={"Content-Type": "application/json"})

    sync: Callable[..., Any] = partial(transactions_sync, transport=httpx.MockTransport(answer))
    connector = PlaidConnector(plaid_settings())
    with deadline(10), mock.patch.object(connector_module, "transactions_sync", sync):
        try:
            return asyncio.run(connector.poll(ITEM, None))
        except (PayloadError, VendorError) as exc:
            return exc


def check(outcome: Any) -> None:
    if isinstance(outcome, (PayloadError, VendorError)):
        message = str(outcome)
        assert message.startswith(f"plaid item {ITEM}"), message  # names the Item...
        assert len(message) > len(f"plaid item {ITEM}: ") + 10, message  # ...and what is wrong
        assert TOKEN not in message
        assert SECRET not in message
        return
    for record in outcome.records:
        record.model_dump_json()  # the stores can take it
        assert record.source == "plaid"


def test_the_real_page_reads() -> None:
    page = poll_answering(json.dumps(PAGE).encode())
    assert not isinstance(page, Exception), page
    assert len(page.records) == 7 + len(PAGE["accounts"])


@FUZZ
@given(doc=mutated_pages())
def test_mutated_pages_are_read_or_refused_by_name(doc: Any) -> None:
    check(poll_answering(json.dumps(doc).encode()))


@FUZZ
@given(body=hostile_bodies([PAGE]))
def test_hostile_literals_in_a_page(body: tuple[bytes, str, str]) -> None:
    check(poll_answering(body[0]))


@FUZZ
@given(cuts=st.lists(st.tuples(st.integers(0, 4000), st.integers(0, 30), st.binary(max_size=8)), max_size=4))
def test_spliced_bytes(cuts: list[tuple[int, int, bytes]]) -> None:
    data = bytearray(json.dumps(PAGE).encode())
    for at, length, insert in cuts:
        at %= len(data) + 1
        data[at : at + length] = insert
    check(poll_answering(bytes(data)))


@FUZZ
@given(status=st.sampled_from([400, 401, 404, 429, 500, 503]), doc=VALUES)
def test_error_answers_of_any_shape(status: int, doc: Any) -> None:
    check(poll_answering(json.dumps(doc).encode(), status))
