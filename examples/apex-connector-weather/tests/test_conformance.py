"""Apex's conformance suite for sources, run against the installed connector with the
samples it ships (`WeatherConnector.conformance_samples()`, in `conformance.py`)."""

from __future__ import annotations

from apex_platform.testing.conformance import SourceConformance


class TestConformance(SourceConformance):
    source = "weather"
