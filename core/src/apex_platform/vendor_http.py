"""What every connector's HTTP client does with a vendor's answers: read `Retry-After`,
retry transient failures quickly inside the call, and turn an unexpected status into a
`VendorError` that says where it happened without ever repeating a secret; and what it
must never do in a log: `install_log_redaction` (the platform's logging setup calls it)
hides query values, URL passwords and secret parameters in every log record, because
httpx logs every request's full URL at INFO.

Temporal retries a failed activity later anyway; the quick retries here only smooth over
a dropped connection or a passing 5xx, so a poll is not rescheduled for a blip.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar, overload
from urllib.parse import quote

import httpx
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential, wait_random
from tenacity.wait import wait_base

from apex_platform.errors import PayloadError, VendorError

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


#: an identifier taken from vendor input that may become one segment of an API path:
#: starts with a letter or digit (so never "." or ".."), then letters, digits, "_.:-"
SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")


def path_segment(value: str, *, what: str) -> str:
    """`value` as one percent-encoded path segment, or `PayloadError` naming `what`.

    Refuses what is not a `SAFE_ID` (".." and "." included, which an HTTP client or the
    vendor's server would resolve to the parent path), then quotes every character
    outside the unreserved set, so nothing in an id can add a segment, a query or a fragment.
    """
    if not isinstance(value, str) or not SAFE_ID.fullmatch(value):
        shown = value[:40] if isinstance(value, str) else type(value).__name__
        raise PayloadError(
            f"{what} {shown!r} is not a plain identifier (a letter or digit, then letters, digits, "
            "'_', '.', ':' or '-'; at most 128)"
        )
    return quote(value, safe="")


def fill_path(template: str, what: str, **values: str) -> str:
    """`template` ("/shipments/{id}") with each `{name}` replaced by `path_segment(value)`."""
    path = template
    for name, value in values.items():
        path = path.replace("{" + name + "}", path_segment(value, what=f"{what} {name}"))
    return path


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


# -- secrets in logs ------------------------------------------------------------------------

#: parameter names whose values are secrets wherever they appear as `name=value` in a log
#: line (a form body, a query string, a repr); matched case-insensitively, as whole names
SECRET_PARAMS = (
    "client_secret",
    "secret",
    "password",
    "passwd",
    "access_token",
    "refresh_token",
    "id_token",
    "public_token",
    "link_token",
    "token",
    "api_key",
    "apikey",
    "x-api-key",
    "key",
    "signature",
    "sig",
    "code",
    "assertion",
    "client_assertion",
)
REDACTED = "***"
_URL = re.compile(r"""\b([a-zA-Z][a-zA-Z0-9+.-]*://)([^\s/?#@"'<>]*@)?([^\s?#"'<>]*)(\?[^\s#"'<>]*)?""")
_PARAM = re.compile(
    r"(?i)(?<![\w-])(" + "|".join(re.escape(name) for name in SECRET_PARAMS) + r""")=([^&\s"'<>,;)]+)"""
)
#: the same names as quoted keys of a dict or JSON text: `'password': 'x'`, `"token": "x"`
_QUOTED = re.compile(
    r"""(?i)(["'])(""" + "|".join(re.escape(name) for name in SECRET_PARAMS) + r""")\1(\s*:\s*)(["'])(?:(?!\4).)*\4"""
)
_RECORD_FLAG = "_apex_redacted"


def _redact_url(match: re.Match[str]) -> str:
    scheme, userinfo, rest, query = match.group(1), match.group(2), match.group(3), match.group(4)
    if userinfo:
        user = userinfo[:-1].split(":", 1)[0]
        userinfo = f"{user}:{REDACTED}@" if ":" in userinfo else userinfo
    if query and len(query) > 1:
        query = "?" + "&".join(
            f"{part.split('=', 1)[0]}={REDACTED}" if "=" in part else REDACTED for part in query[1:].split("&")
        )
    return f"{scheme}{userinfo or ''}{rest}{query or ''}"


def redact_log_text(text: str) -> str:
    """`text` with the value of every query parameter of every URL, every URL password,
    and the value of every `SECRET_PARAMS` name (as `name=value` or as a quoted key)
    replaced by `***`."""
    if "://" in text:
        text = _URL.sub(_redact_url, text)
    if "=" in text:
        text = _PARAM.sub(lambda m: f"{m.group(1)}={REDACTED}", text)
    if ":" in text:
        text = _QUOTED.sub(
            lambda m: f"{m.group(1)}{m.group(2)}{m.group(1)}{m.group(3)}{m.group(4)}{REDACTED}{m.group(4)}", text
        )
    return text


def redact_record(record: logging.LogRecord) -> logging.LogRecord:
    """Redact one record in place (its message, arguments merged; its traceback text)."""
    if getattr(record, _RECORD_FLAG, False):
        return record
    setattr(record, _RECORD_FLAG, True)
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - a broken format string is the handler's to report
        return record
    redacted = redact_log_text(message)
    if redacted != message:
        record.msg, record.args = redacted, None
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = redact_log_text(record.exc_text)
    if record.stack_info:
        record.stack_info = redact_log_text(record.stack_info)
    return record


class RedactingFilter(logging.Filter):
    """A logging filter that redacts (never drops) records; for handlers configured
    outside the platform's logging setup."""

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
        return True


_installed: list[Callable[..., logging.LogRecord]] = []


def install_log_redaction() -> None:
    """Redact every log record of this process when it is created, whatever logger and
    handler it goes to (httpx and httpcore included). Idempotent."""
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        return redact_record(previous(*args, **kwargs))

    _installed.append(previous)
    logging.setLogRecordFactory(factory)


def uninstall_log_redaction() -> None:
    """Undo `install_log_redaction` (tests)."""
    if _installed:
        logging.setLogRecordFactory(_installed.pop())
