"""vendor_http: Retry-After in every form a vendor sends it, quick retries, status errors without secrets."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from litestar import Litestar, post
from tenacity import wait_none

from apex_platform.errors import PayloadError, RestartPagination, VendorError
from apex_platform.testing.vendor_server import FakeVendorServer
from apex_platform.vendor_http import (
    SAFE_ID,
    TransientFailure,
    fill_path,
    install_log_redaction,
    parse_retry_after,
    redact,
    redact_log_text,
    retry_transient,
    status_error,
    uninstall_log_redaction,
)

NOW = datetime(2026, 3, 10, 14, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("3", 3.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("0.40235", 0.40235),  # Samsara sends decimals
        ("-3", 0.0),
        ("99999", 60.0),
        ("inf", 60.0),
        ("Tue, 10 Mar 2026 14:00:30 GMT", 30.0),
        ("Tue, 10 Mar 2026 14:00:30 +0100", 0.0),  # an hour in the past
        ("Tue, 10 Mar 2026 14:00:30 -0000", 30.0),  # no zone given: taken as UTC
        ("Tue, 10 Mar 2026 16:00:00 GMT", 60.0),
        ("Mon, 09 Mar 2026 14:00:00 GMT", 0.0),
    ],
)
def test_seconds_and_http_dates(value: str, seconds: float) -> None:
    assert parse_retry_after(value, default=5.0, cap=60.0, now=NOW) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "value", [None, "", "   ", "soon", "nan", "NaN", "1e", "Tue, 99 Foo 2026", "Tue, 10 Mar 2026 25:61:00 GMT", "\x00"]
)
def test_missing_or_garbage_gives_the_default(value: str | None) -> None:
    assert parse_retry_after(value, default=5.0, cap=60.0, now=NOW) == 5.0
    assert parse_retry_after(value, default=None, cap=60.0, now=NOW) is None


def test_an_http_date_is_read_against_the_clock_by_default() -> None:
    assert parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", default=None, cap=60.0) == 60.0
    assert parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT", default=None, cap=60.0) == 0.0


def test_redact_replaces_every_secret_longest_first() -> None:
    text = "token abc123 and abc123xyz and secret s3cr3t"
    assert redact(text, ["abc123", "", "abc123xyz", "s3cr3t"]) == "token *** and *** and secret ***"
    assert redact("nothing here", []) == "nothing here"


async def test_retry_transient_tries_again_then_returns() -> None:
    calls: list[int] = []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise TransientFailure(VendorError("blip", retryable=True))
        return "ok"

    assert await retry_transient(flaky, attempts=3, wait=wait_none()) == "ok"
    assert len(calls) == 3


async def test_retry_transient_raises_the_wrapped_error_when_tries_run_out() -> None:
    calls: list[int] = []
    last = VendorError("x answered HTTP 503", retryable=True, retry_after=4)

    async def down() -> None:
        calls.append(1)
        raise TransientFailure(last)

    with pytest.raises(VendorError) as info:
        await retry_transient(down, attempts=2, wait=wait_none())
    assert info.value is last
    assert info.value.__suppress_context__  # no TransientFailure chained into the report
    assert len(calls) == 2


async def test_other_errors_pass_at_once() -> None:
    calls: list[int] = []

    async def restart() -> None:
        calls.append(1)
        raise RestartPagination("start over")

    with pytest.raises(RestartPagination):
        await retry_transient(restart, attempts=5, wait=wait_none())
    assert len(calls) == 1


async def test_zero_attempts_still_calls_once() -> None:
    async def ok() -> int:
        return 1

    assert await retry_transient(ok, attempts=0, wait=wait_none()) == 1


def answer(status: int, body: str = "", headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, text=body, headers=headers or {})


def test_429_is_retryable_after_the_vendors_wait_or_the_backoff() -> None:
    error = status_error(answer(429, headers={"Retry-After": "12"}), where="acme a1: GET /x", rate_limit_backoff=30)
    assert (error.retryable, error.retry_after) == (True, 12)
    assert str(error) == "acme a1: GET /x answered 429 Too Many Requests"
    for headers in ({}, {"Retry-After": "soon"}, {"Retry-After": "0"}):
        assert status_error(answer(429, headers=headers), where="w", rate_limit_backoff=30).retry_after == 30
    capped = status_error(answer(429, headers={"Retry-After": "86400"}), where="w", rate_limit_backoff=30, cap=600)
    assert capped.retry_after == 600


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_is_retryable_with_the_vendors_wait_if_any(status: int) -> None:
    error = status_error(answer(status, "<html>down</html>", {"Retry-After": "7"}), where="w", rate_limit_backoff=30)
    assert (error.retryable, error.retry_after) == (True, 7)
    assert str(error) == f"w answered HTTP {status}"
    assert status_error(answer(status), where="w", rate_limit_backoff=30).retry_after is None


@pytest.mark.parametrize("status", [400, 403, 404, 408, 422])
def test_other_statuses_are_not_retryable_and_quote_the_body_without_secrets(status: int) -> None:
    body = '{"error": "bad key sk-live-123456", "echo": "pw-hunter2"}' + " " * 50 + "x" * 500
    error = status_error(
        answer(status, body), where="w", rate_limit_backoff=30, secrets=["sk-live-123456", "pw-hunter2"]
    )
    assert not error.retryable
    assert error.retry_after is None
    assert str(error).startswith(f'w answered HTTP {status}: {{"error": "bad key ***", "echo": "***"}}')
    assert "sk-live" not in str(error)
    assert "hunter2" not in str(error)
    assert len(str(error)) < 260


def test_a_secret_cut_by_the_length_limit_is_still_hidden() -> None:
    secret = "s" * 40
    body = "x" * 180 + secret
    error = status_error(answer(400, body), where="w", rate_limit_backoff=30, secrets=[secret])
    assert "sssss" not in str(error)


# -- secrets in logs --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "shown"),
    [
        (
            'HTTP Request: POST http://127.0.0.1:8/oauth/token?client_id=publicapi&client_secret=S3 "HTTP/1.1 200 OK"',
            'HTTP Request: POST http://127.0.0.1:8/oauth/token?client_id=***&client_secret=*** "HTTP/1.1 200 OK"',
        ),
        ("GET https://u:S3@host/feed?types=gps&after=S3#top", "GET https://u:***@host/feed?types=***&after=***#top"),
        ("https://host/p?S3", "https://host/p?***"),
        (
            "grant_type=password&username=dana&password=S3&scope=read",
            "grant_type=password&username=dana&password=***&scope=read",
        ),
        ("{'client_secret': 'S3', 'client_id': 'publicapi'}", "{'client_secret': '***', 'client_id': 'publicapi'}"),
        ('{"Access_Token": "S3", "expires_in": 3600}', '{"Access_Token": "***", "expires_in": 3600}'),
        ("monkey=ok tokens=ok keyboard=ok", "monkey=ok tokens=ok keyboard=ok"),
        ("nothing to hide: 12 records in 3 s", "nothing to hide: 12 records in 3 s"),
    ],
)
def test_redact_log_text(line: str, shown: str) -> None:
    assert redact_log_text(line) == shown


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def debug_records() -> Iterator[_Records]:
    handler = _Records()
    root = logging.getLogger()
    before = root.level, logging.getLogger("httpx").level, logging.getLogger("httpcore").level
    root.addHandler(handler)
    for name in ("", "httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        for name, level in zip(("", "httpx", "httpcore"), before, strict=True):
            logging.getLogger(name).setLevel(level)
        uninstall_log_redaction()


@pytest.fixture(scope="module")
def vendor() -> Iterator[str]:
    @post("/oauth/token", status_code=500)
    async def token() -> dict[str, str]:
        return {"error": "boom"}

    with FakeVendorServer(Litestar([token]), name="fake vendor") as server:
        yield server.base_url


def test_httpx_request_lines_keep_no_query_secret_once_redaction_is_installed(
    vendor: str, debug_records: _Records
) -> None:
    marker = "mark-" + uuid.uuid4().hex
    url = f"{vendor}/oauth/token?client_id=publicapi&client_secret={marker}"
    install_log_redaction()
    install_log_redaction()  # idempotent
    with httpx.Client() as http:
        resp = http.post(url, data={"password": marker})
    try:
        resp.raise_for_status()
    except httpx.HTTPStatusError:
        logging.getLogger("apex.test").exception("token request failed")  # the URL is in the error
    lines = debug_records.lines
    assert any(line.startswith("httpx HTTP Request: POST") and "client_secret=***" in line for line in lines), lines
    assert any("token request failed" in line for line in lines)
    assert [line for line in lines if marker in line] == []


def test_without_redaction_httpx_would_log_the_secret(vendor: str, debug_records: _Records) -> None:
    marker = "mark-" + uuid.uuid4().hex
    with httpx.Client() as http:
        http.get(f"{vendor}/oauth/token?client_secret={marker}")
    assert any(marker in line for line in debug_records.lines)  # what the redaction is for


def test_the_platform_logging_setup_installs_the_redaction(debug_records: _Records) -> None:
    from apex_platform.cli import _logging

    _logging("DEBUG")
    logging.getLogger("apex.test").info("GET https://host/x?token=%s", "s3cr3t")
    assert debug_records.lines[-1] == "apex.test GET https://host/x?token=***"


# -- ids from vendor input in API paths ------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ("1000304706", "/v1/shipments/1000304706"),
        ("M290969", "/v1/shipments/M290969"),
        ("SH:4.2-a_b", "/v1/shipments/SH%3A4.2-a_b"),
    ],
)
def test_fill_path_quotes_each_id_as_one_segment(value: str, path: str) -> None:
    assert fill_path("/v1/shipments/{id}", "Acme shipment", id=value) == path


@pytest.mark.parametrize(
    "value", ["..", ".", "", "../v2", "a/b", "a?b", "a#b", "%2e%2e", "-1", ".hidden", "a b", "x" * 129]
)
def test_an_id_that_could_change_the_path_is_refused_naming_it(value: str) -> None:
    with pytest.raises(PayloadError, match=r"^Acme shipment id .* is not a plain identifier"):
        fill_path("/v1/shipments/{id}", "Acme shipment", id=value)
    assert not SAFE_ID.fullmatch(value)
