"""The example connector outside the monorepo's package list (examples/apex-connector-weather),
installed from its path the way an outsider installs theirs, is found through its entry
point exactly as a first-party connector is: `apex-platform plugins list` shows it, its own
tests pass against the installed copy (its conformance test among them), and so does
`pytest --apex-conformance weather`.

Nothing is installed into the test environment: the build goes to a temporary folder
(`pip install --no-deps --target`) that child processes see through PYTHONPATH.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from unittest.mock import MagicMock

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from support.pip_target import APEX, env_with, pip_install_target, run

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "apex-connector-weather"

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("weather-site")
    pip_install_target(EXAMPLE, target)
    return target


def test_the_example_is_not_a_monorepo_package(monkeypatch: pytest.MonkeyPatch) -> None:
    """It must prove discovery for outsiders: no nox session, no workspace member, not in the
    test environment."""
    monkeypatch.setitem(sys.modules, "nox", MagicMock())  # the noxfile's functions, without nox
    spec = importlib.util.spec_from_file_location("apex_noxfile", ROOT / "noxfile.py")
    assert spec is not None
    assert spec.loader is not None
    noxfile = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(noxfile)

    assert ROOT / "connectors-crm" in noxfile.packages()  # the function does find packages
    assert EXAMPLE not in noxfile.packages()
    assert str(EXAMPLE / "tests") not in noxfile.test_paths()
    assert "examples" not in (ROOT / "pyproject.toml").read_text()
    done = run([sys.executable, "-c", "import apex_connector_weather"], env=env_with(None))
    assert done.returncode != 0, "apex_connector_weather is importable in the test environment itself"


def test_plugins_list_discovers_the_installed_example(site: Path) -> None:
    done = run([APEX, "plugins", "list", "--json", "--plugins", "weather"], env=env_with(site))
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["problems"] == []
    (source,) = [s for s in doc["sources"] if s["name"] == "weather"]
    assert source == {
        "name": "weather",
        "mode": "poll",
        "priority": "P2",
        "plugin": "weather",
        "distribution": "apex-connector-weather",
        "version": "0.1.0",
    }
    (plugin,) = [p for p in doc["plugins"] if p["name"] == "weather"]
    assert plugin["module"] == "apex_connector_weather.plugin"
    # the copy that answered is the installed one
    where = run([sys.executable, "-c", "import apex_connector_weather as m; print(m.__file__)"], env=env_with(site))
    assert where.stdout.strip().startswith(str(site)), where


def test_the_readme_settings_table_is_generated(site: Path) -> None:
    """The README's table is `apex-platform plugins settings weather --markdown` of the copy installed."""
    done = run([APEX, "plugins", "settings", "weather", "--markdown"], env=env_with(site))
    assert done.returncode == 0, done.stderr
    readme = (EXAMPLE / "README.md").read_text()
    table = readme.split("<!-- apex-settings:start -->\n", 1)[1].split("<!-- apex-settings:end -->", 1)[0]
    assert table.strip() == done.stdout.strip(), (
        "regenerate the table: apex-platform plugins settings weather --markdown"
    )


def test_without_the_install_it_is_missing(tmp_path: Path) -> None:
    done = run([APEX, "plugins", "list", "--json", "--plugins", "weather"], env=env_with(None))
    doc = json.loads(done.stdout)
    assert "weather" not in {s["name"] for s in doc["sources"]}
    assert any("weather" in problem for problem in doc["problems"]), doc["problems"]


def test_its_own_tests_pass_against_the_installed_copy(site: Path) -> None:
    # its own pytest configuration (the example's pyproject.toml), not the monorepo's
    done = run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-v", str(EXAMPLE / "tests")],
        env=env_with(site),
        cwd=EXAMPLE,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    outcomes = dict(re.findall(r"^tests/(\S+) (PASSED|FAILED|SKIPPED|ERROR|XFAIL|XPASS)", done.stdout, re.MULTILINE))
    own = {test: outcome for test, outcome in outcomes.items() if not test.startswith("test_conformance.py")}
    assert len(own) >= 20, done.stdout[-3000:]
    assert set(own.values()) == {"PASSED"}, {t: o for t, o in own.items() if o != "PASSED"}
    conformance = {t.rsplit("::", 1)[1]: o for t, o in outcomes.items() if t.startswith("test_conformance.py")}
    assert {c: conformance.get(c) for c in POLL_CHECKS} == dict.fromkeys(POLL_CHECKS, "PASSED"), conformance


#: the conformance suite's checks that apply to a poll source (the others are other modes')
POLL_CHECKS = (
    "test_declares_the_contract",
    "test_settings_are_documented",
    "test_secrets_are_hidden",
    "test_malformed_input_gives_payload_errors",
    "test_cursor_survives_a_restart",
    "test_records_round_trip_through_temporal",
)


def test_the_conformance_plugin_passes_it(site: Path, tmp_path: Path) -> None:
    """`pytest --apex-conformance weather` (core's pytest plugin), from an empty folder."""
    done = run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-v", "--apex-conformance", "weather"],
        env=env_with(site),
        cwd=tmp_path,
    )
    assert "unrecognized arguments: --apex-conformance" not in done.stderr, (
        "core has no `pytest --apex-conformance NAME` (testing/conformance_plugin.py, engineer D's part)"
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    outcomes = dict(re.findall(r"::(test_\w+) (PASSED|FAILED|SKIPPED|ERROR)", done.stdout))
    assert {c: outcomes.get(c) for c in POLL_CHECKS} == dict.fromkeys(POLL_CHECKS, "PASSED"), done.stdout[-3000:]
