"""pytest plugin: `pytest --apex-conformance NAME` runs the conformance suite against the
installed plugin NAME (a source, a sink or an enricher), with no test file to write.

Registered through the `apex-conformance` `pytest11` entry point of apex-platform, so
every project that installs apex-platform[testing] has the option. Without it the
plugin does nothing. With it, pytest collects only the suites of the names given
(`apex_platform.testing.conformance.runner`), unless paths are given as well.

What only the author knows comes from the plugin itself: a source's
`conformance_samples()`, an enricher's `conformance_records()` and a sink's
`conformance_sink()`. See docs/plugins.md, "Conformance suites".
"""

from __future__ import annotations

from pathlib import Path

import pytest

#: the names given with --apex-conformance, read by the runner module when it is collected
TARGETS: list[str] = []


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("apex", "Apex")
    group.addoption(
        "--apex-conformance",
        action="append",
        default=[],
        metavar="NAME",
        help="run the Apex conformance suite against the installed source, sink or enricher NAME (repeatable)",
    )


# last: the other plugins' pytest_configure has run when a usage error stops the session
# here, so their pytest_unconfigure (always called) undoes only what they did
@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    names = [name for value in config.getoption("apex_conformance", default=[]) or [] for name in value.split(",")]
    names = [name.strip() for name in names if name.strip()]
    if not names:
        return
    _check_installed(names)
    TARGETS[:] = names
    # the runner's path, without importing it: it makes its classes from TARGETS on import
    suite = str(Path(__file__).parent / "conformance" / "runner.py")
    explicit = config.args_source == pytest.Config.ArgsSource.ARGS
    config.args = [*config.args, suite] if explicit else [suite]


def _check_installed(names: list[str]) -> None:
    """A usage error, before collection, for a name no installed plugin registers."""
    from apex_platform.plugins import build_registry
    from apex_platform.testing.conformance.samples import plugin_modules

    registry = build_registry(extra_module_paths=plugin_modules())
    known = {*registry.sources, *registry.enrichers, *registry.sinks}
    for name in names:
        if name not in known:
            problems = "; ".join(registry.problems)
            raise pytest.UsageError(
                f"--apex-conformance {name}: no installed source, sink or enricher has that name "
                f"(installed: {', '.join(sorted(known)) or 'none'})"
                + (f"; plugin problems: {problems}" if problems else "")
            )
