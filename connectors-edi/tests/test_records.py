"""Records of the two third-party samples, their variants, and the synthetic sets."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import pytest

from apex_connector_edi import EdiConnector, dates, samples
from apex_connector_edi.invoice import implied_cents
from apex_connector_edi.x12 import Delimiters
from apex_platform.errors import PayloadError
from apex_platform.models import InboundEvent, Record

Records = Callable[[Path], list[Record]]
Variant = Callable[[Path, Callable[[str], str]], Path]


def refs(record: Record, type_: str) -> list[str]:
    return [e.key for e in record.entities if e.type == type_]


def rels(record: Record) -> set[tuple[str, str, str]]:
    return {(r.src, r.type, r.dst) for r in record.relations}


def test_214_sample_status_record(records: Records, sample_214: Path) -> None:
    (rec,) = records(sample_214)
    assert rec.source == "edi"
    assert rec.kind == "edi.shipment_status"
    assert rec.id == "BAWC:123456:X3:199709250830"
    # 08:30 Central Time on 25 September 1997 is daylight time (CDT, -05:00)
    assert rec.occurred_at == datetime(1997, 9, 25, 13, 30, tzinfo=UTC)
    assert rec.version == int(rec.occurred_at.timestamp()) * 1_000_000
    a = rec.attributes
    assert (a["pro"], a["scac"]) == ("123456", "BAWC")
    assert "shipment_id" not in a  # B10-02 is empty in the sample
    assert a["status"]["code"] == "X3"
    assert a["status"]["description"] == "Arrived at pick-up location"
    assert a["status"]["reason_code"] == "NS"
    assert a["status"]["time_zone"] == "CT"
    assert a["location"]["city"] == "DECORAH"
    assert a["location"]["state"] == "IA"
    assert a["location"]["latitude"] == pytest.approx(43.31, abs=0.001)
    assert a["location"]["longitude"] == pytest.approx(-91.7906, abs=0.001)
    assert "inferred" in a["location"]["source"]
    assert {"qualifier": "EQ", "value": "55555555", "name": "equipment number"} in a["references"]
    assert {"qualifier": "RU", "value": "ROUTE1"} in a["references"]
    assert [(p["role"], p["city"]) for p in a["parties"]] == [("SF", "DECORAH"), ("ST", "SUMMIT")]
    assert a["interline"] == {"scac": "BAWC", "routing_sequence": "B", "mode": "GG"}
    assert a["envelope"]["interchange_control_number"] == "000000263"
    assert a["envelope"]["set_control_number"] == "0006"
    assert refs(rec, "Shipment") == ["123456"]
    assert refs(rec, "Carrier") == ["SCAC:BAWC"]
    assert set(refs(rec, "Place")) == {"DECORAH, IA", "SUMMIT, IL"}
    assert set(refs(rec, "Organization")) == {"92:23083C", "92:00073"}
    assert rels(rec) >= {
        ("Shipment:123456", "CARRIED_BY", "Carrier:SCAC:BAWC"),
        ("Shipment:123456", "STATUS_AT", "Place:DECORAH, IA"),
        ("Shipment:123456", "SHIPPED_FROM", "Organization:92:23083C"),
        ("Shipment:123456", "SHIPPED_TO", "Organization:92:00073"),
        ("Organization:92:23083C", "LOCATED_IN", "Place:DECORAH, IA"),
    }
    assert "DECORAH" in rec.title
    assert "X3" in rec.title


def test_210_sample_invoice_record(records: Records, sample_210: Path) -> None:
    (rec,) = records(sample_210)
    assert rec.kind == "edi.freight_invoice"
    assert rec.id == "NLMI:3410889"
    assert rec.occurred_at == datetime(2007, 10, 31, tzinfo=UTC)
    assert rec.version == int(rec.occurred_at.timestamp()) * 1_000_000 + 1  # + set control number 00000001
    a = rec.attributes
    assert (a["invoice_number"], a["shipment_id"], a["scac"]) == ("3410889", "545930791T", "NLMI")
    assert (a["amount_due"], a["amount_due_cents"], a["currency"]) == ("51.65", 5165, "USD")
    assert a["payment_method"] == "TP"
    assert a["delivery_date"] == "20071029"
    assert [r["qualifier"] for r in a["references"]] == ["AE", "OP", "IK"]
    assert a["dates"] == [{"qualifier": "86", "date": "20071031", "date_iso": "2007-10-31"}]
    assert (a["invoice_date_iso"], a["delivery_date_iso"]) == ("2007-10-31", "2007-10-29")
    assert "date_notes" not in a  # 004010 dates with 8 digits
    assert [p["role"] for p in a["parties"]] == ["SH", "CN", "BT", "CA", "ZZ"]
    consignee = a["parties"][1]
    assert consignee["name"] == "BRAMPTON ASSEMBLY - COLLINS AND AIKMAN"
    assert consignee["address"] == ["500 LAIRD ROAD", "GUELPH PRODUCTS"]
    assert (consignee["city"], consignee["state"], consignee["country"]) == ("GUELPH", "ON", "CA")
    assert a["equipment"] == [{"number": "53456", "description_code": "TL", "length": "5300", "type": "53ST"}]
    (line,) = a["line_items"]
    (charge,) = line["charges"]
    assert charge["rate"] == "51.65"
    assert (charge["amount"], charge["amount_cents"]) == ("51.65", 5165)
    assert (charge["code"], charge["code_name"]) == ("400", "freight")
    assert line["quantities"][0]["weight"] == "1499"
    assert line["lading"][0]["commodity_code"] == "2"
    assert a["totals"] == {"weight": "2619", "weight_qualifier": "G", "charge": "51.65", "charge_cents": 5165}
    assert a["charges_total"] == "51.65"
    assert refs(rec, "Invoice") == ["3410889"]
    assert refs(rec, "Shipment") == ["545930791T"]
    assert refs(rec, "Carrier") == ["SCAC:NLMI"]
    carrier = next(e for e in rec.entities if e.type == "Carrier")
    assert carrier.properties["name"] == "NATIONAL LOGISTICS MANAGEMENT"
    assert refs(rec, "Equipment") == ["53456"]
    assert "GUELPH, ON" in refs(rec, "Place")
    assert rels(rec) >= {
        ("Invoice:3410889", "BILLS", "Shipment:545930791T"),
        ("Invoice:3410889", "ISSUED_BY", "Carrier:SCAC:NLMI"),
        ("Invoice:3410889", "BILL_TO", "Organization:BRAMPTON ASSEMBLY - MAIN"),
        ("Shipment:545930791T", "CARRIED_BY", "Carrier:SCAC:NLMI"),
        ("Shipment:545930791T", "SHIPPED_FROM", "Organization:SIEMENS VDO S A DE C V - SIEMENS AUTOMOTIVE"),
        ("Shipment:545930791T", "SHIPPED_TO", "Organization:BRAMPTON ASSEMBLY - COLLINS AND AIKMAN"),
        ("Shipment:545930791T", "HAS_PARTY", "Organization:EXPEDITORS/EMERY WORLDWIDE"),
        ("Shipment:545930791T", "USES_EQUIPMENT", "Equipment:53456"),
    }
    assert "51.65 USD" in rec.title


def _crlf(text: str) -> str:
    return text.replace("\n", "\r\n")


def _one_line(text: str) -> str:
    return text.replace("\n", "")


@pytest.mark.parametrize("change", [_crlf, _one_line], ids=["crlf", "one-line"])
@pytest.mark.parametrize("which", ["214", "210"])
def test_layout_variants_give_identical_records(
    records: Records, variant: Variant, sample_214: Path, sample_210: Path, which: str, change: Callable[[str], str]
) -> None:
    sample = sample_214 if which == "214" else sample_210
    assert records(variant(sample, change)) == records(sample)


@pytest.mark.parametrize("which", ["214", "210"])
def test_indented_files_with_blank_lines_give_identical_records(
    records: Records, variant: Variant, sample_214: Path, sample_210: Path, which: str
) -> None:
    sample = sample_214 if which == "214" else sample_210

    def indent(text: str) -> str:
        lines = text.split("\n")
        return "\r\n\r\n".join([lines[0]] + ["    " + line if line else line for line in lines[1:]])

    assert records(variant(sample, indent)) == records(sample)


@pytest.mark.parametrize(
    ("element", "component", "segment", "newline"),
    [("|", "^", "\n", ""), ("^", ":", "'", "\n"), ("\x1d", "\x1f", "\x1c", ""), ("!", "@", "\r", "\n")],
)
@pytest.mark.parametrize("which", ["214", "210"])
def test_other_delimiters_give_identical_records(
    records: Records,
    variant: Variant,
    sample_214: Path,
    sample_210: Path,
    which: str,
    element: str,
    component: str,
    segment: str,
    newline: str,
) -> None:
    sample = sample_214 if which == "214" else sample_210

    def redelimit(text: str) -> str:
        out = text.replace("\n", "")
        out = out.replace("*", "\x01").replace(">", "\x02").replace("~", "\x03")
        return out.replace("\x01", element).replace("\x02", component).replace("\x03", segment + newline)

    changed = variant(sample, redelimit)
    assert "*" not in changed.read_text()
    assert records(changed) == records(sample)


def test_composites_do_not_depend_on_the_component_separator(tmp_path: Path, records: Records) -> None:
    sets = [samples.status_set(1, pro="42")]
    sets[0][8] = ["AT7", "X6", "NS", "", "", "20260301", "0915", "CT"]
    a = Delimiters("*", ">", "~")
    b = Delimiters("|", "^", "\n")
    for d, name in ((a, "a.x12"), (b, "b.x12")):
        text = "".join(samples.interchange_lines(sets, functional_id="QM", d=d))
        text = text.replace(f"MS1{d.element}ALBERT LEA", f"MS1{d.element}ALBERT{d.component}LEA")
        (tmp_path / name).write_text(text)
    ra, rb = records(tmp_path / "a.x12"), records(tmp_path / "b.x12")
    assert ra == rb
    assert ra[0].attributes["location"]["city"] == "ALBERT"  # a composite's first component


def test_synthetic_214_and_210(tmp_path: Path, records: Records) -> None:
    files = samples.demo_files(tmp_path)
    statuses = records(files[0])
    assert [r.id for r in statuses] == ["APXL:SH880101:AF:202603010915", "APXL:SH880102:D1:202603010915"]
    assert statuses[0].attributes["location"] == {
        "city": "ALBERT LEA",
        "state": "MN",
        "country": "US",
        "source": "MS1",
    }
    assert statuses[0].attributes["weights"] == [
        {"qualifier": "G", "unit": "L", "unit_name": "pounds", "weight": "18250", "lading_quantity": "22"}
    ]
    assert statuses[1].attributes["status"]["description"].startswith("Completed unloading")
    invoices = records(files[1])
    assert [r.id for r in invoices] == ["APXL:INV880101", "APXL:INV880102"]
    charges = invoices[0].attributes["line_items"][0]["charges"]
    assert [(c["code_name"], c["amount"]) for c in charges] == [("freight", "1845.00"), ("fuel surcharge", "184.50")]
    assert invoices[0].attributes["amount_due"] == "2029.50"
    assert invoices[0].attributes["charges_total"] == "2029.50"
    assert ("Invoice:INV880101", "BILLS", "Shipment:880101") in rels(invoices[0])


def test_several_statuses_in_several_loops(tmp_path: Path, records: Records) -> None:
    one = samples.status_set(1, pro="555")
    at = one.index(["LX", "1"])
    one[at:-1] = [
        ["LX", "1"],
        ["AT7", "X3", "NS", "", "", "20260301", "0700", "ET"],
        ["MS1", "", "", "", "0914726", "0431836", "W", "N"],
        ["AT7", "AF", "NS", "", "", "20260301", "0815", "ET"],
        ["LX", "2"],
        ["AT7", "X1", "NS", "", "", "20260302", "1400", "PT"],
        ["MS1", "DENVER", "CO", "US"],
        ["AT8", "G", "K", "900"],
        ["AT7", "D1", "NS", "", "", "20260302", "1530", "LT"],
    ]
    one[-1] = ["SE", str(len(one)), "0001"]
    path = tmp_path / "loops.x12"
    path.write_text("".join(samples.interchange_lines([one], functional_id="QM")))
    recs = records(path)
    assert [r.attributes["status"]["code"] for r in recs] == ["X3", "AF", "X1", "D1"]
    assert recs[0].occurred_at == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)  # EST in March 1
    assert recs[0].attributes["location"]["city"] == "DES MOINES"  # inferred from SH
    assert recs[0].attributes["location"]["latitude"] == pytest.approx(43.31)
    assert recs[1].attributes["location"]["city"] == "DES MOINES"
    assert recs[2].occurred_at == datetime(2026, 3, 2, 22, 0, tzinfo=UTC)
    assert recs[2].attributes["location"]["source"] == "MS1"
    assert recs[2].attributes["weights"][0]["unit_name"] == "kilograms"
    # LT: local time of a place whose offset is not sent — said so, not passed off as UTC
    assert recs[3].attributes["status"]["utc_offset"] == "unknown"
    assert recs[3].attributes["status"]["at"] == "2026-03-02T15:30:00"
    assert "time_zone_assumed" not in recs[3].attributes["status"]
    assert "local time (UTC offset not sent)" in recs[3].text
    assert recs[3].attributes["location"]["city"] == "MINNEAPOLIS"  # delivered: the consignee's city
    assert len({r.id for r in recs}) == 4


@pytest.mark.parametrize(
    ("code", "local", "utc"),
    [
        ("UT", datetime(2026, 1, 15, 12, 0), datetime(2026, 1, 15, 12, 0)),
        ("ES", datetime(2026, 7, 15, 12, 0), datetime(2026, 7, 15, 17, 0)),
        ("ED", datetime(2026, 7, 15, 12, 0), datetime(2026, 7, 15, 16, 0)),
        ("CT", datetime(2026, 1, 15, 12, 0), datetime(2026, 1, 15, 18, 0)),
        ("CT", datetime(2026, 7, 15, 12, 0), datetime(2026, 7, 15, 17, 0)),
        ("PT", datetime(2026, 7, 15, 12, 0), datetime(2026, 7, 15, 19, 0)),
        ("NS", datetime(2026, 1, 15, 12, 0), datetime(2026, 1, 15, 15, 30)),
        ("HS", datetime(2026, 1, 15, 12, 0), datetime(2026, 1, 15, 22, 0)),
        ("LT", datetime(2026, 1, 15, 12, 0), datetime(2026, 1, 15, 12, 0)),
        ("", datetime(2026, 1, 15, 12, 0), datetime(2026, 1, 15, 12, 0)),
    ],
)
def test_time_zone_codes(code: str, local: datetime, utc: datetime) -> None:
    moment, assumed = dates.to_utc(local.date(), local.time(), code)
    assert moment == utc.replace(tzinfo=UTC)
    assert assumed == (code in ("LT", ""))


def test_dates_and_times() -> None:
    assert dates.parse_date("071216") == date(2007, 12, 16)
    assert dates.parse_date("971216") == date(1997, 12, 16)
    assert dates.parse_date("20260230") is None
    assert dates.parse_date("2026ABCD") is None
    assert dates.parse_time("0830") == time(8, 30)
    assert dates.parse_time("083015") == time(8, 30, 15)
    assert dates.parse_time("08301525") == time(8, 30, 15, 250_000)
    assert dates.parse_time("2400") == time(23, 59, 59, 999_999)
    assert dates.parse_time("2561") is None
    assert dates.micros(datetime(1960, 1, 1, tzinfo=UTC)) == 0


@pytest.mark.parametrize(
    ("raw", "cents"), [("5165", 5165), ("0", 0), ("-150", -150), ("51.65", 5165), ("", None), ("5,165", None)]
)
def test_implied_cents(raw: str, cents: int | None) -> None:
    assert implied_cents(raw) == cents


def test_unknown_set_types_are_kept_as_generic_records(tmp_path: Path, records: Records) -> None:
    other = [["ST", "990", "0001"], ["B1", "APXL", "LOAD1", "20260301", "A"], ["SE", "3", "0001"]]
    path = tmp_path / "990.x12"
    path.write_text("".join(samples.interchange_lines([other], functional_id="GF")))
    (rec,) = records(path)
    assert rec.kind == "edi.transaction_set"
    assert rec.id == "APEXCARRIER:000000001:1:0001"
    assert rec.attributes["segments"][1] == ["B1", "APXL", "LOAD1", "20260301", "A"]
    assert "B1*APXL*LOAD1" in rec.text
    assert rec.occurred_at == datetime(2026, 3, 1, 9, 15, tzinfo=UTC)


def test_a_214_without_statuses_is_kept_whole(tmp_path: Path, records: Records) -> None:
    one = [s for s in samples.status_set(1, pro="9") if s[0] not in ("LX", "AT7", "MS1", "AT8")]
    one[-1] = ["SE", str(len(one)), "0001"]
    path = tmp_path / "nostatus.x12"
    path.write_text("".join(samples.interchange_lines([one], functional_id="QM")))
    (rec,) = records(path)
    assert rec.kind == "edi.transaction_set"


def _event(payload: Any) -> InboundEvent:
    return InboundEvent(source="edi", event_id="f.x12:1:1:1", received_at=datetime.now(UTC), payload=payload)


@pytest.mark.parametrize(
    ("payload", "says"),
    [
        (None, "no payload"),
        ("ST*214", "must be an object"),
        ({}, "no segments"),
        ({"segments": "x"}, "no segments"),
        ({"segments": [[]]}, "segment 1"),
        ({"segments": [["ST", 214]]}, "not text"),
        ({"segments": [["ST", "214", "1"]], "set": {"type": 214}}, "set"),
        ({"segments": [["ST", "214", "1"], ["SE", "2", "1"]]}, "B10"),
        ({"segments": [["ST", "214", "1"], ["B10"], ["SE", "3", "1"]]}, "neither"),
        ({"segments": [["ST", "210", "1"], ["SE", "2", "1"]]}, "B3"),
        ({"segments": [["ST", "210", "1"], ["B3", ""], ["SE", "3", "1"]]}, "invoice number"),
        ({"segments": [["ST", "210", "1"], ["B3", "", "INV1", "", "", "", "bad"], ["SE", "3", "1"]]}, "no usable date"),
    ],
)
def test_hostile_payloads_are_payload_errors(connector: EdiConnector, payload: Any, says: str) -> None:
    with pytest.raises(PayloadError, match=says):
        connector.parse(_event(payload))
