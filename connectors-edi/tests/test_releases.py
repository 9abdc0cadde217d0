"""Each set read with the layout of its group's release (GS08): 214s and 210s in the
releases carriers still send (003040 … 005010), files of thousands of sets in the old
layouts, time codes, and what happens when GS08 and the data disagree."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from apex_connector_edi import dates, samples
from apex_connector_edi.releases import AT7_003070, AT7_004010, Release
from apex_platform.models import Record

Records = Callable[[Path], list[Record]]
Write = Callable[[str, str], Path]
DATA = Path(__file__).parent / "data" / "releases"


def by_code(records: list[Record]) -> dict[str, Record]:
    return {r.attributes["status"]["code"]: r for r in records}


# -- 214 ------------------------------------------------------------------------------------


def test_003070_at7_reads_the_century_the_time_and_the_time_code(records: Records, sample_214: Path) -> None:
    """003070: AT7-05 YYMMDD, AT7-06 century, AT7-07 time, AT7-08 time code. Read as
    004010 the century is taken for the time and the time for the zone: midnight, "UTC"."""
    recs = records(DATA / "214_003070.x12")
    x3, af, d1 = (by_code(recs)[c] for c in ("X3", "AF", "D1"))
    # 08:30 Central Daylight Time on 25 September 1997
    assert x3.occurred_at == datetime(1997, 9, 25, 13, 30, tzinfo=UTC)
    status = x3.attributes["status"]
    assert (status["date"], status["century"], status["time"], status["time_zone"]) == ("970925", "19", "0830", "CT")
    assert status["layout"] == "AT7 003070"
    assert status["reason"] == "Normal status"  # AT7-02 is table 1651 in 003070 too
    assert status["utc_offset"] == "-05:00"
    assert status["local_time"] == "1997-09-25T08:30:00"
    assert "century_assumed" not in status
    assert "layout_note" not in status
    assert af.occurred_at == datetime(1997, 9, 25, 17, 15, tzinfo=UTC)
    # across 2000 the century element decides (16:15:00 Pacific Standard Time)
    assert d1.occurred_at == datetime(2000, 1, 4, 0, 15, tzinfo=UTC)
    assert d1.attributes["envelope"]["version"] == "003070"
    assert "release_note" not in d1.attributes["envelope"]
    # the same event as the 004010 sample: same id, same instant, whatever the release
    (sample,) = records(sample_214)
    assert (x3.id, x3.version) == (sample.id, sample.version) == ("BAWC:123456:X3:199709250830", x3.version)


def test_003070_ms1_has_no_directions_so_no_coordinates_are_invented(records: Records) -> None:
    """003070's MS1 has no E/W, N/S elements (MS1-06/07 came with 004010): the codes are
    kept, unsigned, and no longitude east of Greenwich is made up."""
    x3 = by_code(records(DATA / "214_003070.x12"))["X3"]
    location = x3.attributes["location"]
    assert (location["longitude_code"], location["latitude_code"]) == ("0914726", "0431836")
    assert "longitude" not in location
    assert "latitude" not in location
    assert "003070 has no MS1-06/07" in location["coordinates_note"]
    assert location["city"] == "DECORAH"  # the ship-from party's, as for the 004010 sample
    places = [e for e in x3.entities if e.type == "Place" and e.key == "DECORAH, IA"]
    assert places
    assert "longitude" not in places[0].properties


def test_003040_statuses_are_q5_references_n9_interline_r3(records: Records) -> None:
    """Before 003070 the 214 reports statuses in Q5 (date YYMMDD, time, time code, city,
    state, equipment), references in N9 (qualifier first) and the interline carrier in R3."""
    recs = records(DATA / "214_003040.x12")
    assert [r.kind for r in recs] == ["edi.shipment_status", "edi.shipment_status"]
    af, d1 = (by_code(recs)[c] for c in ("AF", "D1"))
    assert af.id == "ODFL:BOL55120:AF:199907141430"
    assert af.occurred_at == datetime(1999, 7, 14, 19, 30, tzinfo=UTC)  # 14:30 CDT
    status = af.attributes["status"]
    assert status["layout"] == "Q5"
    assert status["description"] == "Carrier departed pick-up location with shipment"
    assert status["century_assumed"].startswith("19")  # Q5 has no century element
    assert af.attributes["location"] == {"city": "DES MOINES", "state": "IA", "country": "US", "source": "Q5"}
    assert af.attributes["equipment"] == {"initial": "ODFL", "number": "5301"}
    refs = {(r["qualifier"], r["value"]) for r in af.attributes["references"]}
    assert refs == {("BM", "BOL55120"), ("PO", "4500017781"), ("QN", "1")}
    assert af.attributes["interline"] == {"scac": "ODFL", "routing_sequence": "B", "mode": "M"}
    assert ("Shipment:BOL55120", "STATUS_AT", "Place:DES MOINES, IA") in {(r.src, r.type, r.dst) for r in af.relations}
    # LT: local time whose offset is not sent — said so, not read as UTC
    assert d1.attributes["status"]["utc_offset"] == "unknown"
    assert d1.attributes["status"]["at"] == "1999-07-16T09:05:00"
    assert d1.attributes["location"]["source"] == "Q5"


def test_003050_q5_with_seconds_and_a_numeric_time_code(records: Records) -> None:
    (x1,) = records(DATA / "214_003050.x12")
    # 08:15:30 at ISO M06 (code 19 = UTC-6) on 3 January 2000
    assert x1.occurred_at == datetime(2000, 1, 3, 14, 15, 30, tzinfo=UTC)
    assert x1.attributes["status"]["utc_offset"] == "-06:00"
    assert x1.attributes["references"] == [{"qualifier": "BM", "value": "SID998", "name": "bill of lading number"}]


@pytest.mark.parametrize(
    ("name", "code", "utc", "location"),
    [
        ("214_004010.x12", "AF", datetime(2026, 3, 1, 15, 15, tzinfo=UTC), {"longitude": -93.629167}),
        ("214_004030.x12", "X1", datetime(2026, 3, 2, 12, 30, tzinfo=UTC), {"postal_code": "30303"}),
        ("214_005010.x12", "X3", datetime(2026, 3, 3, 6, 15, tzinfo=UTC), {"city": "DENVER"}),
    ],
)
def test_004010_and_later_at7(
    records: Records, name: str, code: str, utc: datetime, location: dict[str, object]
) -> None:
    (rec,) = records(DATA / name)
    assert rec.attributes["status"]["code"] == code
    assert rec.attributes["status"]["layout"] == "AT7 004010"
    assert rec.occurred_at == utc
    for key, value in location.items():
        assert rec.attributes["location"][key] == (pytest.approx(value) if isinstance(value, float) else value)
    assert "century_assumed" not in rec.attributes["status"]


def test_005010_parties_inside_the_lx_loop(records: Records) -> None:
    (rec,) = records(DATA / "214_005010.x12")
    assert [p["role"] for p in rec.attributes["parties"]] == ["SH"]
    assert rec.attributes["weights"][0]["weight"] == "9000"
    assert {"qualifier": "BM", "value": "BOL880103", "name": "bill of lading number"} in rec.attributes["references"]


def test_an_at7_that_contradicts_its_gs08_is_read_by_its_shape_and_says_so(records: Records, x12_file: Write) -> None:
    """A carrier that labels its group 004010 but still writes 003070 AT7s (century at
    AT7-06): read with the layout the data fits, and the record says which and why."""
    text = (DATA / "214_003070.x12").read_text().replace("*X*003070~", "*X*004010~")
    x3 = by_code(records(x12_file("mislabelled.x12", text)))["X3"]
    assert x3.occurred_at == datetime(1997, 9, 25, 13, 30, tzinfo=UTC)
    assert x3.attributes["status"]["layout"] == "AT7 003070"
    assert "do not fit the 004010 layout of GS08 004010" in x3.attributes["status"]["layout_note"]
    # and the other way round: 004010 AT7s in a group that says 003070
    text = (DATA / "214_004010.x12").read_text().replace("*X*004010~", "*X*003070~")
    (af,) = records(x12_file("mislabelled-2.x12", text))
    assert af.occurred_at == datetime(2026, 3, 1, 15, 15, tzinfo=UTC)
    assert af.attributes["status"]["layout"] == "AT7 004010"
    assert "do not fit the 003070 layout" in af.attributes["status"]["layout_note"]


@pytest.mark.parametrize(
    ("gs08", "says"),
    [("", "GS08 empty is not"), ("4010", "GS08 '4010' is not"), ("X12", "GS08 'X12' is not"), ("002040", "older")],
)
def test_a_gs08_that_is_no_known_release_reads_by_shape_and_says_so(
    records: Records, x12_file: Write, gs08: str, says: str
) -> None:
    text = (DATA / "214_003070.x12").read_text().replace("*X*003070~", f"*X*{gs08}~")
    x3 = by_code(records(x12_file("unknown.x12", text)))["X3"]
    assert x3.occurred_at == datetime(1997, 9, 25, 13, 30, tzinfo=UTC)
    assert x3.attributes["status"]["layout"] == "AT7 003070"
    note = x3.attributes["envelope"]["release_note"]
    assert says in note
    assert "read by the layout its data fits" in note


def test_an_at7_that_fits_no_layout_keeps_its_values_and_flags_them(records: Records, x12_file: Write) -> None:
    text = (DATA / "214_003070.x12").read_text().replace("AT7*X3*NS***970925*19*0830*CT", "AT7*X3*NS***9709*19*08X0*CT")
    x3 = by_code(records(x12_file("bad.x12", text)))["X3"]
    status = x3.attributes["status"]
    assert status["date_invalid"] is True
    assert status["time_invalid"] is True
    assert "fits neither" in status["layout_note"]
    assert x3.occurred_at == datetime(1997, 9, 25, 10, 15, tzinfo=UTC)  # the GS date and time, as said


@pytest.mark.parametrize("release", ["003040", "003050", "003060", "003070", "004010", "004030", "005010"])
def test_thousands_of_sets_in_each_release_parse(tmp_path: Path, records: Records, release: str) -> None:
    """5,000 one-status sets per file in each release's layout: every set gives its
    status at the same instant (09:15 CST on 1 March 2026), none is dropped."""
    path = samples.write_statuses(tmp_path / f"large-{release}.x12", 5_000, release=release)
    recs = records(path)
    assert len(recs) == 5_000
    assert {r.kind for r in recs} == {"edi.shipment_status"}
    assert {r.occurred_at for r in recs} == {datetime(2026, 3, 1, 15, 15, tzinfo=UTC)}
    assert len({r.id for r in recs}) == 5_000
    assert recs[0].id == "APXL:SH700001:X6:202603010915"  # the same ids in every release
    expected = "Q5" if release < "003070" else "AT7 003070" if release == "003070" else "AT7 004010"
    assert {r.attributes["status"]["layout"] for r in recs} == {expected}


# -- 210 ------------------------------------------------------------------------------------


def test_003040_invoice_dates_are_yymmdd_and_g62_has_its_century(records: Records) -> None:
    (inv,) = records(DATA / "210_003040.x12")
    a = inv.attributes
    assert inv.id == "ODFL:I7712345"
    assert inv.occurred_at == datetime(1999, 7, 20, tzinfo=UTC)
    assert (a["invoice_date"], a["invoice_date_iso"]) == ("990720", "1999-07-20")
    assert a["delivery_date_iso"] == "1999-07-16"
    assert a["dates"] == [{"qualifier": "86", "date": "990720", "century": "19", "date_iso": "1999-07-20"}]
    assert (a["amount_due"], a["currency"]) == ("1845.00", "USD")
    charges = a["line_items"][0]["charges"]
    assert [(c["code_name"], c["amount"]) for c in charges] == [("freight", "1677.27"), ("fuel surcharge", "167.73")]
    assert a["charges_total"] == "1845.00"
    assert a["totals"]["charge"] == "1845.00"
    assert a["line_items"][0]["quantities"][0]["weight"] == "18250"
    assert a["route"] == [{"scac": "ODFL", "routing_sequence": "B", "mode": "M"}]
    assert "date_notes" not in a


def test_003070_invoice_across_2000(records: Records) -> None:
    (inv,) = records(DATA / "210_003070.x12")
    a = inv.attributes
    assert inv.occurred_at == datetime(2000, 1, 5, tzinfo=UTC)
    assert a["invoice_date_iso"] == "2000-01-05"
    assert a["dates"][0]["date_iso"] == "2000-01-03"
    assert (a["amount_due"], a["payment_method_name"]) == ("525.00", "collect")


def test_005010_invoice(records: Records) -> None:
    (inv,) = records(DATA / "210_005010.x12")
    assert inv.id == "APXL:INV880103"
    assert inv.attributes["invoice_date_iso"] == "2026-03-05"
    assert inv.attributes["amount_due"] == "1000.00"
    assert inv.attributes["totals"]["charge"] == "1000.00"


def test_210_dates_that_do_not_have_their_release_s_digits_are_said(records: Records, x12_file: Write) -> None:
    text = (DATA / "210_005010.x12").read_text().replace("*PP*L*20260305*", "*PP*L*260305*")
    (inv,) = records(x12_file("short-date.x12", text))
    assert inv.attributes["invoice_date_iso"] == "2026-03-05"
    assert inv.attributes["date_notes"] == ["B3-06 '260305' has 6 digits; release 005010 dates have 8"]


# -- the tables ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gs08", "number", "full", "at7"),
    [
        ("003040", 3040, False, None),
        ("003060", 3060, False, None),
        ("003070", 3070, False, AT7_003070),
        ("004010VICS", 4010, True, AT7_004010),
        ("005030", 5030, True, AT7_004010),
        (" 008010 ", 8010, True, AT7_004010),
        ("002040", 2040, None, None),
        ("4010", None, None, None),
    ],
)
def test_release_table(gs08: str, number: int | None, full: bool | None, at7: object) -> None:
    release = Release.of(gs08)
    assert (release.number, release.full_dates, release.at7) == (number, full, at7)
    assert (release.note() is None) == (full is not None)


@pytest.mark.parametrize(
    ("code", "hours"),
    [("01", 1), ("12", 12), ("13", -12), ("19", -6), ("24", -1), ("UT", 0), ("ES", -5), ("ND", -2.5)],
)
def test_numeric_and_named_time_codes(code: str, hours: float) -> None:
    moment, unknown = dates.to_utc(date(2026, 1, 15), None, code)
    assert not unknown
    # local midnight at UTC+h is h hours before midnight UTC
    assert (datetime(2026, 1, 15, tzinfo=UTC) - moment).total_seconds() == hours * 3600


def test_three_letter_zones_some_carriers_send_are_read_and_named(records: Records, x12_file: Write) -> None:
    text = (DATA / "214_004030.x12").read_text().replace("*0730*ET~", "*0730*EDT~")
    (rec,) = records(x12_file("edt.x12", text))
    assert rec.occurred_at == datetime(2026, 3, 2, 11, 30, tzinfo=UTC)
    assert rec.attributes["status"]["utc_offset"] == "-04:00"
    assert rec.attributes["status"]["time_zone_note"] == "'EDT' is not an X12 time code; read as ED"


def test_century_element() -> None:
    assert dates.parse_date("491231", "19") == date(1949, 12, 31)  # the pivot would say 2049
    assert dates.parse_date("491231") == date(2049, 12, 31)
    assert dates.parse_date("000103", "20") == date(2000, 1, 3)
    assert dates.parse_date("000103", "x") == date(2000, 1, 3)  # an unusable century: the pivot
