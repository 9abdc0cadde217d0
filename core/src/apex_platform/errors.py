"""Errors that carry what a user or a vendor needs to act on them."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError


class ApexError(Exception):
    """Base of every error Apex raises on purpose."""


class PluginError(ApexError):
    """A plugin is broken, misnamed or registered twice."""


class SettingsError(ApexError):
    """A setting is missing or invalid; the message names the environment variable."""


class SignatureError(ApexError):
    """The request is not authentic: bad, missing or stale signature / token (HTTP 401)."""


class VerificationUnavailable(ApexError):
    """The signature cannot be checked now — e.g. the vendor's key service is unreachable or
    failing — so nothing is known about the request's authenticity (HTTP 503 with
    Retry-After: the vendor sends it again; never 401, which would call a genuine delivery
    forged). `retry_after` is in seconds."""

    def __init__(self, message: str, *, retry_after: float = 10.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PayloadError(ApexError):
    """The body cannot be understood (HTTP 400); the message says what is wrong."""


#: Errors about what an input holds (a body, a file, a unit of a file): the same input
#: gives the same error, so retrying never helps. A connector's `parse` and `split` are
#: pure, so these are the input's fault even when the connector did not name them as
#: `PayloadError` (a pydantic `ValidationError` or `UnicodeDecodeError` is a `ValueError`,
#: a missing field a `LookupError`).
MALFORMED_INPUT: tuple[type[Exception], ...] = (PayloadError, ValueError, TypeError, LookupError)


def input_problem(exc: BaseException) -> str:
    """One line saying what is wrong with an input, from one of `MALFORMED_INPUT`."""
    if isinstance(exc, ValidationError):
        fields = "; ".join(
            f"{'.'.join(str(part) for part in err['loc']) or 'value'}: {err['msg']}" for err in exc.errors()[:5]
        )
        more = f" and {exc.error_count() - 5} more" if exc.error_count() > 5 else ""
        return f"invalid {exc.title}: {fields}{more}"
    if isinstance(exc, PayloadError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class VendorError(ApexError):
    """A vendor API answered with an error; `retryable` says whether trying again can help."""

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


class SinkError(ApexError):
    """A sink could not complete a write or a compensation."""


class RecordsRefused(SinkError):
    """A permanent, record-level refusal: the sink stored every record of the call but
    these, which it can never hold as they are (a NUL character PostgreSQL refuses, a
    number out of range…). `refused` maps each record key (`RecordKey`) to the reason.
    Never retried, never counted by a circuit breaker: the saga quarantines the records
    in the dead-letter queue and commits the rest of the batch. `previous` is what the
    write returns when it succeeds (see `contracts.Sink`): the state before, for every key
    whose content the call changed."""

    def __init__(self, sink: str, refused: dict[Any, str], *, previous: dict[Any, Any] | None = None) -> None:
        self.sink = sink
        self.refused = dict(refused)
        self.previous = dict(previous or {})
        listed = "; ".join(f"{key}: {reason}" for key, reason in list(self.refused.items())[:5])
        more = f" and {len(self.refused) - 5} more" if len(self.refused) > 5 else ""
        super().__init__(f"{sink} refused {len(self.refused)} record(s): {listed}{more}")


class RestartPagination(ApexError):
    """A poll source says the pages read since the loop began are void: restart the loop
    from the cursor it began with (Plaid's TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION)."""
