"""docs/operations.md and the code keep the same metrics: every `apex_*` metric the code
defines (every module of the platform and of the installed plugins imported, so the
process registry holds all of them) is documented with its type and exact labels, every
documented one exists, and every label used is in the labels table."""

from __future__ import annotations

import importlib
import pkgutil
import re
from importlib.metadata import entry_points
from pathlib import Path

from prometheus_client import REGISTRY

import apex_platform
from apex_platform import metrics

DOC = Path(__file__).parents[1] / "docs" / "operations.md"
ROW = re.compile(r"^\|\s*`(apex_[a-z0-9_]+)`\s*\|\s*(counter|gauge|histogram)\s*\|\s*([^|]*)\|")


def import_everything() -> None:
    for info in pkgutil.walk_packages(apex_platform.__path__, "apex_platform."):
        if ".testing" in info.name or info.name.endswith("__main__"):
            continue
        importlib.import_module(info.name)
    for ep in entry_points(group="apex.plugins"):
        importlib.import_module(ep.value.split(":")[0])


def code_metrics() -> dict[str, tuple[str, tuple[str, ...]]]:
    """name -> (type, labels) of every apex_* collector registered in this process."""
    import_everything()
    found: dict[str, tuple[str, tuple[str, ...]]] = {}
    for family in REGISTRY.collect():
        if family.name.startswith("apex_"):  # labels filled in below for the usual metric classes
            found[family.name + ("_total" if family.type == "counter" else "")] = (family.type, ())
    for family in metrics.INBOX.describe():  # read at scrape time: described even when empty
        labels = ("source",) if family.name != "apex_inbox_up" else ()
        found[family.name] = (family.type, labels)
    from prometheus_client.metrics import MetricWrapperBase

    for collector in list(REGISTRY._collector_to_names):  # private, but the only list of collectors
        if isinstance(collector, MetricWrapperBase) and collector._name.startswith("apex_"):
            name = collector._name + ("_total" if collector._type == "counter" else "")
            found[name] = (str(collector._type), tuple(collector._labelnames))
    return found


def doc_metrics() -> dict[str, tuple[str, tuple[str, ...]]]:
    found: dict[str, tuple[str, tuple[str, ...]]] = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        match = ROW.match(line)
        if match:
            name, kind, cell = match.groups()
            assert name not in found, f"{name} documented twice"
            found[name] = (kind, tuple(re.findall(r"`([a-z_]+)`", cell)))
    return found


def doc_labels() -> set[str]:
    text = DOC.read_text(encoding="utf-8")
    section = text.split("### Labels", 1)[1].split("###", 1)[0]
    return set(re.findall(r"^\|\s*`([a-z_]+)`\s*\|", section, flags=re.MULTILINE))


def test_every_metric_of_the_code_is_documented_and_every_documented_one_exists() -> None:
    code, doc = code_metrics(), doc_metrics()
    assert len(code) >= 30, sorted(code)  # the walk found the catalog
    assert sorted(set(code) - set(doc)) == [], "defined in the code, missing in docs/operations.md"
    assert sorted(set(doc) - set(code)) == [], "documented, but the code defines no such metric"


def test_documented_types_and_labels_are_the_code_s() -> None:
    code, doc = code_metrics(), doc_metrics()
    wrong = {name: (doc[name], code[name]) for name in code if name in doc and doc[name] != code[name]}
    assert wrong == {}, "docs (type, labels) != code (type, labels)"


def test_every_label_is_explained() -> None:
    used = {label for _, labels in code_metrics().values() for label in labels}
    assert sorted(used - doc_labels()) == []
    assert sorted(doc_labels() - used) == []
