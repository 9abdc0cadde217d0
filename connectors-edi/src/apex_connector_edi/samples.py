"""Synthetic X12 files for the tests and the demo: 214 status and 210 invoice sets with
our own values (carrier SCAC `APXL`, domains and names made up), written with any
delimiters, line breaks and indentation, and as large as needed without being held whole.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from apex_connector_edi.x12 import Delimiters

STANDARD = Delimiters("*", ">", "~")
SCAC = "APXL"

Segments = list[list[str]]


def isa(
    control: int,
    d: Delimiters = STANDARD,
    *,
    sender: str = "APEXCARRIER",
    receiver: str = "APEXSHIPPER",
    date: str = "260301",
    standard: str = "00401",
) -> str:
    """A fixed-width ISA segment (without its terminator); `standard` is ISA12."""
    fields = [
        "ISA", "00", " " * 10, "00", " " * 10, "ZZ", sender.ljust(15)[:15], "ZZ", receiver.ljust(15)[:15],
        date, "0915", d.repetition or "U", standard, f"{control:09d}", "0", "P", d.component,
    ]  # fmt: skip
    text = d.element.join(fields)
    assert len(text) == 105, len(text)
    return text


def status_set(
    control: int,
    *,
    pro: str,
    status: str = "X6",
    date: str = "20260301",
    time: str = "0915",
    references: int = 0,
    release: str = "004010",
) -> Segments:
    """A 214 with one LX loop and one status (segments ST … SE) in the layout of
    `release`: from 004010 an AT7 (CCYYMMDD date, time, time code) and L11 references;
    003070 an AT7 with a YYMMDD date and its century; before that a Q5 status with N9
    references. `date` is CCYYMMDD; `references` adds that many purchase-order references
    (to make large files)."""
    number = int(release[:6])

    def ref(value: str, qualifier: str) -> list[str]:
        return ["L11", value, qualifier] if number >= 3070 else ["N9", qualifier, value]

    if number >= 4010:
        statuses = [["AT7", status, "NS", "", "", date, time, "CT"], ["MS1", "ALBERT LEA", "MN", "US"]]
    elif number >= 3070:
        statuses = [["AT7", status, "NS", "", "", date[2:], date[:2], time, "CT"], ["MS1", "ALBERT LEA", "MN", "US"]]
    else:
        statuses = [["Q5", status, date[2:], time, "CT", "", "ALBERT LEA", "MN", "US"]]
    body = [
        ["B10", pro, f"SH{pro}", SCAC],
        ref(f"BOL{pro}", "BM"),
        *(ref(f"PO{pro}-{n:04d}", "PO") for n in range(references)),
        ["N1", "SH", "ACME FOODS", "93", "ACME01"],
        ["N4", "DES MOINES", "IA", "50309", "US"],
        ["N1", "CN", "NORTHWIND GROCERS", "93", "NW77"],
        ["N4", "MINNEAPOLIS", "MN", "55401", "US"],
        ["LX", "1"],
        *statuses,
        ["AT8", "G", "L", "18250", "22"],
    ]
    return _wrap("214", control, body)


def invoice_set(control: int, *, invoice: str, pro: str, cents: int = 184500) -> Segments:
    """A 210 with one freight and one fuel charge (segments ST … SE)."""
    fuel = cents // 10
    body = [
        ["B3", "", invoice, pro, "PP", "L", "20260302", str(cents + fuel), "", "20260301", "035", SCAC],
        ["C3", "USD"],
        ["N9", "BM", f"BOL{pro}"],
        ["G62", "35", "20260301"],
        ["N1", "SH", "ACME FOODS", "93", "ACME01"],
        ["N4", "DES MOINES", "IA", "50309", "US"],
        ["N1", "CN", "NORTHWIND GROCERS", "93", "NW77"],
        ["N4", "MINNEAPOLIS", "MN", "55401", "US"],
        ["N1", "BT", "ACME FOODS ACCOUNTS PAYABLE", "93", "ACME02"],
        ["N3", "100 GRAND AVE"],
        ["N4", "DES MOINES", "IA", "50309", "US"],
        ["N7", "APXU", "530117"],
        ["LX", "1"],
        ["L5", "1", "PACKAGED FOODS", "", ""],
        ["L0", "1", "18250", "FR", "18250", "G", "", "", "22", "PLT", "", "L"],
        ["L1", "1", f"{cents / 100:.2f}", "FR", str(cents), "", "", "", "400"],
        ["L1", "2", f"{fuel / 100:.2f}", "FR", str(fuel), "", "", "", "405"],
        ["L3", "18250", "G", "", "", str(cents + fuel)],
    ]
    return _wrap("210", control, body)


def _wrap(kind: str, control: int, body: Segments) -> Segments:
    st = f"{control:04d}"
    return [["ST", kind, st], *body, ["SE", str(len(body) + 2), st]]


def render(segments: Iterable[list[str]], d: Delimiters = STANDARD, *, newline: str = "\n", indent: str = "") -> str:
    return "".join(f"{indent}{d.element.join(seg)}{d.segment}{newline}" for seg in segments)


def interchange_lines(
    sets: Iterable[Segments],
    *,
    functional_id: str,
    control: int = 1,
    d: Delimiters = STANDARD,
    newline: str = "\n",
    indent: str = "",
    release: str = "004010",
) -> Iterator[str]:
    """The text of one interchange with one group (GS08 `release`), piece by piece
    (streamable). Before 004010 the GS date is YYMMDD and ISA12 the release's own."""
    full = release[:6].isdigit() and int(release[:6]) >= 4010
    standard = f"00{release[2:5]}" if release[:6].isdigit() and int(release[:6]) >= 3040 else "00401"
    yield isa(control, d, standard=standard) + d.segment + newline
    gs_date = "20260301" if full else "260301"
    yield render(
        [["GS", functional_id, "APEXCARRIER", "APEXSHIPPER", gs_date, "0915", str(control), "X", release]],
        d,
        newline=newline,
        indent=indent,
    )
    count = 0
    for one in sets:
        count += 1
        yield render(one, d, newline=newline, indent=indent)
    yield render([["GE", str(count), str(control)], ["IEA", "1", f"{control:09d}"]], d, newline=newline, indent=indent)


def write_statuses(
    path: Path, count: int, *, references: int = 0, newline: str = "\n", indent: str = "", release: str = "004010"
) -> Path:
    """A file of `count` 214 sets (one status each) of `release`, written without building
    it in memory."""
    sets = (status_set(n, pro=f"{700000 + n}", references=references, release=release) for n in range(1, count + 1))
    with path.open("w", newline="") as fh:
        for piece in interchange_lines(sets, functional_id="QM", newline=newline, indent=indent, release=release):
            fh.write(piece)
    return path


def demo_files(folder: Path) -> list[Path]:
    """Two small files for a drop folder: statuses of two loads, and their invoices."""
    folder.mkdir(parents=True, exist_ok=True)
    statuses = folder / "apxl-214-demo.x12"
    statuses.write_text(
        "".join(
            interchange_lines(
                [status_set(1, pro="880101", status="AF"), status_set(2, pro="880102", status="D1")],
                functional_id="QM",
                control=101,
            )
        )
    )
    invoices = folder / "apxl-210-demo.x12"
    invoices.write_text(
        "".join(
            interchange_lines(
                [invoice_set(1, invoice="INV880101", pro="880101"), invoice_set(2, invoice="INV880102", pro="880102")],
                functional_id="IM",
                control=102,
            )
        )
    )
    return [statuses, invoices]
