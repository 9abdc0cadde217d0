"""Errors that carry what a user or a vendor needs to act on them."""

from __future__ import annotations


class ApexError(Exception):
    """Base of every error Apex raises on purpose."""


class PluginError(ApexError):
    """A plugin is broken, misnamed or registered twice."""


class SettingsError(ApexError):
    """A setting is missing or invalid; the message names the environment variable."""


class SignatureError(ApexError):
    """The request is not authentic: bad, missing or stale signature / token (HTTP 401)."""


class PayloadError(ApexError):
    """The body cannot be understood (HTTP 400); the message says what is wrong."""


class VendorError(ApexError):
    """A vendor API answered with an error; `retryable` says whether trying again can help."""

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


class SinkError(ApexError):
    """A sink could not complete a write or a compensation."""


class RestartPagination(ApexError):
    """A poll source says the pages read since the loop began are void: restart the loop
    from the cursor it began with (Plaid's TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION)."""
