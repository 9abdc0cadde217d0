"""What every connector's HTTP client does with a vendor's answers: read `Retry-After`,
retry transient failures quickly inside the call, and turn an unexpected status into a
`VendorError` that says where it happened without ever repeating a secret.

Temporal retries a failed activity later anyway; the quick retries here only smooth over
a dropped connection or a passing 5xx, so a poll is not rescheduled for a blip.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar, overload

import httpx
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential, wait_random
from tenacity.wait import wait_base

from apex_platform.errors import VendorError

T = TypeVar("T")

#: the longest Retry-After honoured unless a connector says otherwise
DEFAULT_RETRY_AFTER_CAP = 3600.0
#: quick in-call retries: 0.2 s, 0.4 s … at most 2 s apart, with jitter
QUICK_RETRY_WAIT: wait_base = wait_exponential(multiplier=0.2, max=2.0) + wait_random(0, 0.1)
_MAX_DETAIL = 200


@overload
def parse_retry_after(value: str | None, *, default: float, cap: float, now: datetime | None = None) -> float: ...


@overload
def parse_retry_after(value: str | None, *, default: None, cap: float, now: datetime | None = None) -> float | None: ...


def parse_retry_after(
    value: str | None, *, default: float | None, cap: float, now: datetime | None = None
) -> float | None:
    """Seconds to wait from a `Retry-After` header, between 0 and `cap`.

    Delta-seconds (decimals too: Samsara sends "0.40235") or an HTTP date (a date without
    a zone is taken as UTC). `default` when the header is missing, empty or unreadable.
    """
    if value is None or not value.strip():
        return default
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            moment = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return default
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        seconds = (moment - (now or datetime.now(UTC))).total_seconds()
    if math.isnan(seconds):
        return default
    return min(max(seconds, 0.0), cap)


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret replaced by `***`, in case a vendor echoes one back."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


class TransientFailure(Exception):
    """Raised inside a call given to `retry_transient`: worth another quick try.

    `error` is what the caller gets when the tries run out (usually a retryable `VendorError`).
    """

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


async def retry_transient(call: Callable[[], Awaitable[T]], *, attempts: int, wait: wait_base = QUICK_RETRY_WAIT) -> T:
    """`await call()`, tried up to `attempts` times while it raises `TransientFailure`;
    then the last failure's `error` is raised. Any other exception passes at once."""
    try:
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(TransientFailure),
            stop=stop_after_attempt(max(1, attempts)),
            wait=wait,
            reraise=True,
        ):
            with attempt:
                return await call()
    except TransientFailure as exc:
        raise exc.error from None
    raise AssertionError("unreachable")  # pragma: no cover


def status_error(
    response: httpx.Response,
    *,
    where: str,
    rate_limit_backoff: float,
    cap: float = DEFAULT_RETRY_AFTER_CAP,
    secrets: Iterable[str] = (),
) -> VendorError:
    """The `VendorError` for an answer that is neither a success nor a case the caller handles.

    429 is retryable after the vendor's `Retry-After` (else `rate_limit_backoff`: a
    `Retry-After: 0` would only run into the same limit); 5xx is retryable, after the
    vendor's `Retry-After` if it sent one; anything else is not, and the message quotes
    the start of the body with `secrets` redacted. `where` names source, account and endpoint.
    """
    code = response.status_code
    retry_after = parse_retry_after(response.headers.get("retry-after"), default=None, cap=cap)
    if code == 429:
        wait = retry_after or rate_limit_backoff
        return VendorError(f"{where} answered 429 Too Many Requests", retryable=True, retry_after=wait)
    if code >= 500:
        return VendorError(f"{where} answered HTTP {code}", retryable=True, retry_after=retry_after)
    detail = redact(response.text, secrets)[:_MAX_DETAIL].strip()
    return VendorError(f"{where} answered HTTP {code}: {detail}", retryable=False)
