"""Where an Item's access token comes from: the `APEX_PLAID_ACCESS_TOKENS` map, or a
deployment's own provider (`APEX_PLAID_TOKEN_PROVIDER="package.module:function"`).

A provider is called with the item id and returns the access token as `str` or
`SecretStr` (or an awaitable of one), or None when it has no token for that Item. It
runs in the worker, once per page read, so a vault client should cache on its side.
Tokens never leave this module except into the body of the request to Plaid.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

from pydantic import SecretStr

from apex_connector_plaid.settings import PlaidSettings
from apex_platform.errors import SettingsError, VendorError

TokenProvider = Callable[[str], Any]


def load_provider(path: str) -> TokenProvider:
    """Import `package.module:function`; a SettingsError names the setting when it fails."""
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name.strip() or not attr.strip():
        raise SettingsError(f"APEX_PLAID_TOKEN_PROVIDER must look like 'package.module:function', got {path!r}")
    try:
        module = importlib.import_module(module_name.strip())
    except ImportError as exc:
        raise SettingsError(f"APEX_PLAID_TOKEN_PROVIDER: cannot import {module_name!r}: {exc}") from None
    target: Any = module
    for part in attr.strip().split("."):
        target = getattr(target, part, None)
        if target is None:
            raise SettingsError(f"APEX_PLAID_TOKEN_PROVIDER: {module_name!r} has no attribute {attr!r}")
    if not callable(target):
        raise SettingsError(f"APEX_PLAID_TOKEN_PROVIDER: {path!r} is not callable")
    return target  # type: ignore[no-any-return]


class TokenSource:
    """Resolves access tokens; the provider is imported on first use."""

    def __init__(self, settings: PlaidSettings, provider: TokenProvider | None = None) -> None:
        self._settings = settings
        self._provider = provider

    @property
    def has_provider(self) -> bool:
        return self._provider is not None or bool(self._settings.token_provider)

    def item_ids(self) -> list[str]:
        """Every configured Item: the token map's keys, then `APEX_PLAID_ITEMS`."""
        return list(dict.fromkeys([*self._settings.access_tokens, *self._settings.items]))

    def knows(self, item_id: str) -> bool:
        """Whether a token for `item_id` can be had (no I/O: a provider is assumed to know)."""
        return item_id in self._settings.access_tokens or self.has_provider

    async def token(self, item_id: str) -> str:
        static = self._settings.access_tokens.get(item_id)
        if static is not None:
            return static.get_secret_value()
        if not self.has_provider:
            raise VendorError(
                f"plaid item {item_id}: no access token; add it to APEX_PLAID_ACCESS_TOKENS "
                "or set APEX_PLAID_TOKEN_PROVIDER",
                retryable=False,
            )
        if self._provider is None:
            self._provider = load_provider(self._settings.token_provider or "")
        try:
            value = self._provider(item_id)
            if inspect.isawaitable(value):
                value = await value
        except Exception as exc:  # noqa: BLE001 - a vault outage is worth retrying
            raise VendorError(
                f"plaid item {item_id}: the token provider failed ({type(exc).__name__})", retryable=True
            ) from None
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if not isinstance(value, str) or not value.strip():
            raise VendorError(f"plaid item {item_id}: the token provider returned no access token", retryable=False)
        return value.strip()
