"""poll() against the fake Plaid over TCP: pages, tombstones, Plaid's errors, tokens."""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from apex_connector_plaid import KIND_TRANSACTION, PlaidConnector
from apex_connector_plaid.cursor import SyncCursor
from apex_platform.errors import RestartPagination, VendorError
from apex_platform.models import Page, Record

SECRET = "test-secret-9f8e7d6c5b4a"


async def sync_all(connector: PlaidConnector, item: str, cursor: str | None = None) -> tuple[list[Page], str | None]:
    pages: list[Page] = []
    while True:
        page = await connector.poll(item, cursor)
        pages.append(page)
        cursor = page.next_cursor
        if not page.has_more:
            return pages, cursor


def apply(pages: list[Page], state: dict[str, Record] | None = None) -> dict[str, Record]:
    """What a store keeping the sink rule holds: highest version wins, tombstones delete."""
    state = dict(state or {})
    for page in pages:
        for record in page.records:
            if record.kind != KIND_TRANSACTION:
                continue
            old = state.get(record.id)
            if old is None or record.version >= old.version:
                state[record.id] = record
    return {k: r for k, r in state.items() if not r.deleted}


async def test_multi_page_sync_ends_at_the_vendors_state(plaid: Any) -> None:
    connector = plaid.connector()
    pages, cursor = await sync_all(connector, plaid.item)
    assert len(pages) == 4  # 7 changes, 2 per page
    assert [p.has_more for p in pages] == [True, True, True, False]
    live = apply(pages)
    truth = plaid.fake.final_state(plaid.item)
    assert set(live) == set(truth) == {"t0", "t1", "t3", "t4"}
    assert live["t1"].attributes["amount"] == 99.5
    assert live["t1"].attributes["name"] == "CORRECTED"
    tombstones = [r for p in pages for r in p.records if r.deleted]
    assert [r.id for r in tombstones] == ["t2"]
    versions = [p.records[0].version for p in pages]
    assert versions == sorted(versions)
    assert len(set(versions)) == len(versions)
    assert plaid.fake.sync_calls[plaid.item] == [0, 2, 4, 6]
    # nothing more: an empty page keeps the cursor moving forward and says no more
    again = await connector.poll(plaid.item, cursor)
    assert [r.kind for r in again.records] == ["plaid.account", "plaid.account"]
    assert again.has_more is False


async def test_new_data_after_the_cursor_is_all_that_comes_back(plaid: Any, make_txn: Any) -> None:
    connector = plaid.connector()
    _, cursor = await sync_all(connector, plaid.item)
    plaid.fake.append(plaid.item, ("added", make_txn("t9")), ("removed", {"transaction_id": "t0", "account_id": "a"}))
    pages, _ = await sync_all(connector, plaid.item, cursor)
    changed = [(r.id, r.deleted) for p in pages for r in p.records if r.kind == KIND_TRANSACTION]
    assert changed == [("t9", False), ("t0", True)]


async def test_versions_increase_along_the_cursor_even_when_the_clock_goes_back(plaid: Any) -> None:
    times = iter([2000.0, 1000.0, 1000.0, 500.0])
    connector = plaid.connector(clock=lambda: next(times))
    pages, cursor = await sync_all(connector, plaid.item)
    versions = [p.records[0].version for p in pages]
    assert versions == [2_000_000_000, 2_000_000_001, 2_000_000_002, 2_000_000_003]
    assert SyncCursor.decode(cursor).floor == versions[-1]


async def test_nothing_secret_reaches_cursor_records_or_logs(plaid: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    pages, _ = await sync_all(plaid.connector(), plaid.item)
    dumped = " ".join(p.model_dump_json() for p in pages) + caplog.text
    assert plaid.token not in dumped
    assert SECRET not in dumped
    assert "plaid item" in caplog.text  # the page summary is logged


async def test_mutation_during_pagination_asks_for_a_restart(plaid: Any) -> None:
    connector = plaid.connector()
    first = await connector.poll(plaid.item, None)
    plaid.fake.mutation_on_page(plaid.item, 1)
    with pytest.raises(RestartPagination, match="TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION"):
        await connector.poll(plaid.item, first.next_cursor)
    # once: the restarted loop reads normally
    assert (await connector.poll(plaid.item, None)).has_more


async def test_rate_limit_is_retryable_with_the_vendors_delay(plaid: Any) -> None:
    connector = plaid.connector()
    plaid.fake.fail_on_call(plaid.item, 1, "rate_limit")
    with pytest.raises(VendorError) as info:
        await connector.poll(plaid.item, None)
    assert info.value.retryable
    assert info.value.retry_after == 1.0
    assert "HTTP 429 RATE_LIMIT_EXCEEDED/TRANSACTIONS_SYNC_LIMIT" in str(info.value)


async def test_rate_limit_without_retry_after_uses_the_setting(plaid: Any) -> None:
    connector = plaid.connector(rate_limit_backoff_seconds=42)
    plaid.fake.rate_limit_retry_after = None
    plaid.fake.fail_on_call(plaid.item, 1, "rate_limit")
    with pytest.raises(VendorError) as info:
        await connector.poll(plaid.item, None)
    assert info.value.retry_after == 42


async def test_invalid_token_is_permanent_and_never_shows_the_token(plaid: Any) -> None:
    plaid.fake.echo_secrets = True  # a vendor that echoes what it got
    connector = plaid.connector(access_tokens={plaid.item: "access-sandbox-wrong-token-value"})
    with pytest.raises(VendorError) as info:
        await connector.poll(plaid.item, None)
    message = str(info.value)
    assert not info.value.retryable
    assert f"plaid item {plaid.item}" in message
    assert "INVALID_ACCESS_TOKEN" in message
    assert "access-sandbox-wrong-token-value" not in message
    assert "***" in message


async def test_login_required_is_permanent_with_a_hint(plaid: Any) -> None:
    plaid.fake.fail_on_call(plaid.item, 1, "login_required")
    with pytest.raises(VendorError, match=r"ITEM_LOGIN_REQUIRED.*Link update mode") as info:
        await plaid.connector().poll(plaid.item, None)
    assert not info.value.retryable


async def test_wrong_secret_is_permanent_and_not_shown(plaid: Any) -> None:
    with pytest.raises(VendorError, match="INVALID_API_KEYS") as info:
        await plaid.connector(secret="a-wrong-secret-value").poll(plaid.item, None)
    assert not info.value.retryable
    assert "a-wrong-secret-value" not in str(info.value)


async def test_one_server_error_is_retried_within_the_call(plaid: Any) -> None:
    plaid.fake.fail_on_call(plaid.item, 1, "server_error")
    page = await plaid.connector().poll(plaid.item, None)
    assert page.has_more
    assert plaid.fake.sync_calls[plaid.item] == [0, 0]


async def test_persistent_server_errors_are_retryable(plaid: Any) -> None:
    for n in (1, 2, 3):
        plaid.fake.fail_on_call(plaid.item, n, "server_error")
    with pytest.raises(VendorError, match="HTTP 500 API_ERROR/INTERNAL_SERVER_ERROR") as info:
        await plaid.connector().poll(plaid.item, None)
    assert info.value.retryable


async def test_unreachable_plaid_is_retryable(plaid: Any) -> None:
    with pytest.raises(VendorError, match="ConnectError") as info:
        await plaid.connector(base_url="http://127.0.0.1:9").poll(plaid.item, None)
    assert info.value.retryable


async def test_an_item_without_token_names_the_settings(plaid: Any) -> None:
    with pytest.raises(VendorError, match="APEX_PLAID_ACCESS_TOKENS") as info:
        await plaid.connector().poll("unknown-item", None)
    assert not info.value.retryable


async def test_token_provider_sync_and_async(plaid: Any) -> None:
    asked: list[str] = []

    def sync_provider(item: str) -> SecretStr:
        asked.append(item)
        return SecretStr(plaid.token)

    async def async_provider(item: str) -> str:
        asked.append(item)
        return plaid.token

    for provider in (sync_provider, async_provider):
        connector = PlaidConnector(plaid.settings(access_tokens={}, items=[plaid.item]), token_provider=provider)
        assert connector.accounts() == [plaid.item]
        assert (await connector.poll(plaid.item, None)).records
    assert asked == [plaid.item, plaid.item]


async def test_token_provider_by_import_path(plaid: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "vault_stub.py").write_text(
        textwrap.dedent(
            f"""
            def token_for(item_id):
                return {{"{plaid.item}": "{plaid.token}"}}.get(item_id)

            def broken(item_id):
                raise ConnectionError("vault down")
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    connector = plaid.connector(access_tokens={}, token_provider="vault_stub:token_for")
    assert (await connector.poll(plaid.item, None)).records
    with pytest.raises(VendorError, match="returned no access token") as info:
        await connector.poll("other-item", None)
    assert not info.value.retryable
    with pytest.raises(VendorError, match="token provider failed") as info:
        await plaid.connector(access_tokens={}, token_provider="vault_stub:broken").poll(plaid.item, None)
    assert info.value.retryable
    with pytest.raises(VendorError, match="APEX_PLAID_TOKEN_PROVIDER") as info:
        await plaid.connector(access_tokens={}, token_provider="no_such_module_xyz:f").poll(plaid.item, None)
    assert not info.value.retryable
