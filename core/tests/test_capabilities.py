"""The optional capabilities (apex_platform.capabilities): how core asks for them, and
that the first-party plugins declare the ones core used to find by getattr or by the
name of a module."""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from apex_platform import capabilities as cap
from apex_platform.plugins import build_registry
from apex_platform.testing.sinks import MemorySink


class Bare:
    name = "bare"


class Declaring:
    name = "declaring"
    redacted_keys: ClassVar[frozenset[str]] = frozenset({"public_token"})
    atomic_pagination = True
    pagination_cursor_max_age_seconds = 12.5
    single_process = True


def test_accessors_read_declared_capabilities_and_default_otherwise() -> None:
    assert cap.redacted_keys(Declaring()) == {"public_token"}
    assert cap.redacted_keys(Bare()) == frozenset()
    assert cap.atomic_pagination(Declaring()) is True
    assert cap.atomic_pagination(Bare()) is False
    assert cap.loop_cursor_max_age(Declaring()) == 12.5
    assert cap.loop_cursor_max_age(Bare()) == cap.DEFAULT_LOOP_CURSOR_MAX_AGE_SECONDS
    assert cap.single_process(Declaring()) is True
    assert cap.single_process(MemorySink("plain")) is False


def test_truthy_values_that_are_not_true_do_not_switch_a_capability_on() -> None:
    class Sloppy:
        atomic_pagination = "yes"
        single_process = 1
        pagination_cursor_max_age_seconds = True

    assert cap.atomic_pagination(Sloppy()) is False
    assert cap.single_process(Sloppy()) is False
    assert cap.loop_cursor_max_age(Sloppy()) == cap.DEFAULT_LOOP_CURSOR_MAX_AGE_SECONDS


@pytest.fixture
def clean_env() -> Iterator[None]:
    before = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(before)


def test_the_demo_uses_the_declared_fake_vendor_and_environment(clean_env: None) -> None:
    from apex_platform.devstack import _demo_environment

    stopped: list[str] = []

    class Source:
        name = "acme"

        def demo_environment(self) -> dict[str, str]:
            return {"APEX_ACME_SECRET": "generated", "APEX_ACME_KEPT": "generated"}

        def start_fake_vendor(self) -> cap.FakeVendor:
            return cap.FakeVendor("http://127.0.0.1:1", lambda: stopped.append("acme"), {"APEX_ACME_BASE_URL": "x"})

    os.environ["APEX_ACME_KEPT"] = "configured"
    stops = _demo_environment([Source()])  # type: ignore[list-item]
    assert os.environ["APEX_ACME_SECRET"] == "generated"
    assert os.environ["APEX_ACME_KEPT"] == "configured"  # demo_environment never overrides
    assert os.environ["APEX_ACME_BASE_URL"] == "x"
    for stop in stops:
        stop()
    assert stopped == ["acme"]


def test_demo_files_come_from_the_source() -> None:
    from apex_platform.devstack import _demo_files

    class Files:
        def demo_files(self, folder: Path) -> list[Path]:
            return [folder / "a.edi"]

    assert _demo_files(Files(), Path("/x")) == [Path("/x/a.edi")]
    assert _demo_files(Bare(), Path("/x")) == []


def _first_party() -> dict[str, Any]:
    registry = build_registry("all")
    return {**registry.sources, **registry.enrichers, **registry.sinks}


def test_first_party_plugins_declare_what_core_reads() -> None:
    objects = _first_party()
    if "plaid" in objects:
        assert isinstance(objects["plaid"], cap.RedactingSource)
        assert cap.atomic_pagination(objects["plaid"])
        assert isinstance(objects["plaid"], cap.LoopCursorAgeSource)
    if "edi" in objects:
        assert isinstance(objects["edi"], cap.DemoFilesSource)
        assert isinstance(objects["edi"], cap.DropFolderSource)
    if "embeddings" in objects:
        assert isinstance(objects["embeddings"], cap.EmbeddingProducer)
    for sink in ("postgres", "qdrant"):
        if sink in objects:
            assert isinstance(objects[sink], cap.EmbeddingStore)
    if "qdrant" in objects:
        assert isinstance(objects["qdrant"], cap.SingleProcessSink)
    assert objects, "no first-party plugin installed"


def test_no_source_relies_on_the_old_demo_module_convention() -> None:
    """A connector package's `demo` module with `start_fake_vendor` used to be found by
    its name; now the connector itself must be a `FakeVendorSource`."""
    from apex_platform.plugins import build_registry

    for name, source in build_registry("all").sources.items():
        package = type(source).__module__.split(".")[0]
        try:
            demo = importlib.import_module(f"{package}.demo")
        except ImportError:
            continue
        if hasattr(demo, "start_fake_vendor"):
            assert isinstance(source, cap.FakeVendorSource), f"source {name} has a fake vendor it does not declare"
