"""Intuit's own published samples (tests/data/vendor/intuit, sources in its README), fed
verbatim through the connector's real HTTP client against the fake QuickBooks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from apex_connector_financial import FileTokenStore, FinancialConnector
from apex_connector_financial.fake_vendor import REALM, FakeQuickBooks, seed

pytestmark = pytest.mark.timeout(60)

SAMPLES = Path(__file__).parent / "data" / "vendor" / "intuit"


async def test_intuits_refresh_token_answer_is_read_and_its_rotated_token_kept(
    settings_for: Any, fake: FakeQuickBooks, drain: Any
) -> None:
    raw = (SAMPLES / "success_refreshtoken_response.json").read_bytes()
    fake.token_answer = raw  # served byte for byte by the token endpoint
    settings = settings_for()
    connector = FinancialConnector(settings, token_store=FileTokenStore(settings.token_store_path))
    seed(fake)
    records, _ = await drain(connector)
    assert len(records) == 7  # the sample's access token opened the API
    sample = json.loads(raw)
    stored = json.loads(settings.token_store_path.read_text())[REALM]["refresh_token"]
    assert stored == sample["refresh_token"]  # the rotated refresh token of the sample is the one kept
    assert connector.tokens.refreshes == 1
