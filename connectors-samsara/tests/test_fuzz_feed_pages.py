"""Hypothesis over Samsara feed pages as the connector reads them: the real `FeedReader`
(its HTTP client over an httpx mock transport answering the mutated body, the strict
structure check, `feed_answer` and the record builders). A malformed page is a
PayloadError or a VendorError naming what is wrong, never a TypeError, KeyError or any
other crash; a bad point is an anomaly record, and every record is one the stores take."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apex_connector_samsara.fake_vendor import FakeSamsara
from apex_connector_samsara.feed import FeedReader
from apex_connector_samsara.settings import SamsaraSettings
from apex_platform.errors import PayloadError, VendorError
from apex_platform.testing.hostile_json import hostile_bodies
from apex_platform.testing.mutations import JSON_VALUES, deadline, mutated_docs

TOKEN = "samsara-fuzz-token-0123456789"
FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def real_page() -> dict[str, Any]:
    fake = FakeSamsara(vehicles=2, points=3, page_size=6, token=TOKEN, engine_every=2)
    status, body, _ = fake.feed(f"Bearer {TOKEN}", "gps,engineStates", None)
    assert status == 200
    return body


PAGE = real_page()

VALUES = JSON_VALUES


def mutated_pages() -> st.SearchStrategy[Any]:
    """The real page with a few values replaced by others of any type, or removed."""
    return mutated_docs(PAGE)


def read_answering(body: bytes, status: int = 200) -> Any:
    """One real page read whose HTTP answer is `body`: the page, or the exception."""

    def answer(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body, headers={"Content-Type": "application/json"})

    settings_ = SamsaraSettings(base_url="http://127.0.0.1:9", api_token=TOKEN, http_attempts=1)
    reader = FeedReader(settings_, transport=httpx.MockTransport(answer))
    with deadline(10):
        try:
            return asyncio.run(reader.read_page("default", None))
        except (PayloadError, VendorError) as exc:
            return exc


def check(outcome: Any) -> None:
    if isinstance(outcome, (PayloadError, VendorError)):
        message = str(outcome)
        assert "Samsara feed" in message or "samsara account 'default'" in message, message  # where...
        assert len(message) > 40, message  # ...and what is wrong
        assert TOKEN not in message
        return
    for record in outcome.records:
        record.model_dump_json()  # the stores can take it
        assert record.source == "samsara"


def test_the_real_page_reads() -> None:
    page = read_answering(json.dumps(PAGE).encode())
    assert not isinstance(page, Exception), page
    assert page.records


@FUZZ
@given(doc=mutated_pages())
def test_mutated_pages_are_read_or_refused_by_name(doc: Any) -> None:
    check(read_answering(json.dumps(doc).encode()))


@FUZZ
@given(body=hostile_bodies([PAGE]))
def test_hostile_literals_in_a_page(body: tuple[bytes, str, str]) -> None:
    check(read_answering(body[0]))


@FUZZ
@given(cuts=st.lists(st.tuples(st.integers(0, 4000), st.integers(0, 30), st.binary(max_size=8)), max_size=4))
def test_spliced_bytes(cuts: list[tuple[int, int, bytes]]) -> None:
    data = bytearray(json.dumps(PAGE).encode())
    for at, length, insert in cuts:
        at %= len(data) + 1
        data[at : at + length] = insert
    check(read_answering(bytes(data)))


@FUZZ
@given(status=st.sampled_from([400, 401, 403, 404, 429, 500, 503]), doc=VALUES)
def test_error_answers_of_any_shape(status: int, doc: Any) -> None:
    check(read_answering(json.dumps(doc).encode(), status))
