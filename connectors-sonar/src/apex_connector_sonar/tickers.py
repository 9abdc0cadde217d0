"""SONAR tickers and their data points as records.

A configured ticker is ``INDEX.GRANULARITY``: ``OTRI.ATL`` is the Outbound Tender Rejection
Index of the Atlanta market, read at ``GET /data/OTRI/ATL/<date>`` (or ``…/<start>/<end>``).
A 3-letter granularity other than ``USA`` is a market; ``USA`` is the national level; a
6-letter one (``ATLCHI``) is a lane between two markets.

Record id ``{TICKER}:{date}``, version = the date in µs (+ the revision number when the API
sends one). SONAR recomputes recent values; every run fetches the last
`APEX_SONAR_LOOKBACK_DAYS` again. A revised value without a revision number gets the same
version with new content: the sinks' rule (at an equal version, the later write is a
correction and wins) makes it supersede, and an unchanged value is an identical record the
saga skips.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from apex_platform.errors import PayloadError
from apex_platform.models import Entity, Record, Relation

SOURCE = "sonar"
KIND_TICKER_VALUE = "sonar.ticker_value"
_TICKER = re.compile(r"^([A-Z0-9]{1,16})\.([A-Z0-9]{1,16})$")
_MAX_REVISION = 999_999  # stays inside one day's microseconds


@dataclass(frozen=True)
class Ticker:
    index: str
    granularity: str

    @property
    def symbol(self) -> str:
        return f"{self.index}.{self.granularity}"

    @classmethod
    def parse(cls, symbol: str) -> Ticker:
        match = _TICKER.match(symbol.strip().upper())
        if match is None:
            raise PayloadError(
                f"SONAR ticker {symbol!r} is not INDEX.GRANULARITY (e.g. OTRI.ATL); see APEX_SONAR_TICKERS"
            )
        return cls(match.group(1), match.group(2))

    def entities(self) -> tuple[list[Entity], list[Relation]]:
        index = Entity(type="Index", key=self.index)
        g = self.granularity
        if len(g) == 6 and g.isalpha():
            lane = Entity(type="Lane", key=g, properties={"origin": g[:3], "destination": g[3:]})
            origin, dest = Entity(type="Market", key=g[:3]), Entity(type="Market", key=g[3:])
            return [index, lane, origin, dest], [
                Relation(src=index.ref, type="MEASURES", dst=lane.ref),
                Relation(src=lane.ref, type="FROM_MARKET", dst=origin.ref),
                Relation(src=lane.ref, type="TO_MARKET", dst=dest.ref),
            ]
        level = "national" if g == "USA" else "market"
        market = Entity(type="Market", key=g, properties={"level": level})
        return [index, market], [Relation(src=index.ref, type="MEASURES", dst=market.ref)]


def day_us(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * 1_000_000


def point_date(point: dict[str, Any]) -> date | None:
    raw = point.get("data_Timestamp") or point.get("timestamp") or point.get("date")
    if not isinstance(raw, str):
        return None
    try:
        return datetime.fromisoformat(raw.strip()).date()
    except ValueError:
        return None


def point_value(point: dict[str, Any]) -> float | None:
    raw = point.get("data_Value", point.get("value"))
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int | float):
        return float(raw)
    if isinstance(raw, str):
        try:
            return float(raw)
        except ValueError:
            return None
    return None


def point_revision(point: dict[str, Any], fields: list[str]) -> int | None:
    for name in fields:
        raw = point.get(name)
        if isinstance(raw, int) and not isinstance(raw, bool) and 0 <= raw <= _MAX_REVISION:
            return raw
    return None


def value_record(ticker: Ticker, point: dict[str, Any], revision_fields: list[str]) -> Record | None:
    """The record of one data point, or None when it has no date or no numeric value."""
    day, value = point_date(point), point_value(point)
    if day is None or value is None:
        return None
    revision = point_revision(point, revision_fields)
    entities, relations = ticker.entities()
    iso_day = day.isoformat()
    return Record(
        source=SOURCE,
        kind=KIND_TICKER_VALUE,
        id=f"{ticker.symbol}:{iso_day}",
        version=day_us(day) + (revision or 0),
        occurred_at=datetime(day.year, day.month, day.day, tzinfo=UTC),
        title=f"{ticker.symbol} {iso_day}: {value:g}",
        text=f"SONAR {ticker.index} for {ticker.granularity} on {iso_day} was {value:g}.",
        attributes={
            "ticker": ticker.symbol,
            "index": ticker.index,
            "granularity": ticker.granularity,
            "date": iso_day,
            "value": value,
            "revision": revision,
        },
        entities=tuple(entities),
        relations=tuple(relations),
    )
