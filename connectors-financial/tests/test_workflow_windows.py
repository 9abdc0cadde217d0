"""A window paged through the query API, end to end: core's PollWorkflow on the real Temporal
dev server, one page per activity, with the shared PostgreSQL token store."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from apex_connector_financial import FinancialConnector
from apex_connector_financial.fake_vendor import REALM, FakeQuickBooks
from apex_platform.models import RecordKey

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def connector(settings_for: Any, apex_postgres_server: Any) -> FinancialConnector:
    """The worker's connector (it overrides conftest's): answers of 5 objects, tokens in PostgreSQL."""
    return FinancialConnector(
        settings_for(
            max_objects=5,
            entities="Invoice,Customer",
            token_store="postgres",
            token_store_dsn=apex_postgres_server.dsn,
            token_store_schema=f"fin_{uuid.uuid4().hex[:10]}",
        )
    )


async def test_a_window_lands_whole_through_the_poll_workflow(worker: Any, fake: FakeQuickBooks) -> None:
    fake.max_objects = 5
    invoices = [fake.add("Invoice", {"DocNumber": f"N{i}", "TotalAmt": i}) for i in range(23)]
    customers = [fake.add("Customer", {"DisplayName": f"C{i}"}) for i in range(2)]
    fake.delete("Invoice", invoices[5])
    state = await worker.sync()
    assert state.last_error is None
    rows = worker.rows
    for oid in invoices:
        assert RecordKey("financial", f"{REALM}:invoice:{oid}") in rows
    for oid in customers:
        assert RecordKey("financial", f"{REALM}:customer:{oid}") in rows
    assert rows[RecordKey("financial", f"{REALM}:invoice:{invoices[5]}")].deleted
    assert "windows" not in json.loads(state.cursor or "")
    assert fake.queries  # the window went through the query API
    assert fake.token_requests == 1  # one access token, kept in the shared store, for every activity
