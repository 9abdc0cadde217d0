"""Apex's conformance suite for sources, run against this connector as installed."""

from __future__ import annotations

from apex_platform.testing.conformance import SourceConformance


class TestConformance(SourceConformance):
    source = "weather"
