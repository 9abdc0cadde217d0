"""`apex-platform new`: every mode of connector, a sink and an enricher are generated,
installed (into a folder of their own, never into the test environment), pass their own
tests (the conformance suite included) and lint, and `apex-platform plugins list` finds
them; a bad NAME and an existing folder are refused with a message that says what to do."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from support.procs import CLI
from typer.testing import CliRunner

from apex_platform.cli import app

BIN = Path(sys.executable).parent
#: (command, NAME) of every plugin generated: five connector modes, a sink, an enricher
PLUGINS = [
    (["connector", "--mode", "webhook"], "gen_hooks"),
    # what fits on a line depends on NAME: one long name (the generator formats its output)
    (["connector", "--mode", "poll"], "gen_poll_of_a_vendor_with_a_long_name"),
    (["connector", "--mode", "stream"], "gen_feed"),
    (["connector", "--mode", "batch"], "gen_files"),
    (["connector", "--mode", "push"], "gen_push"),
    (["sink"], "gen_store"),
    (["enricher"], "gen_tags"),
]
#: kept between runs (ignored by git): core and its dependencies are checked once, not every run
MYPY_CACHE = Path(__file__).parents[1] / ".mypy_cache" / "scaffold"
FOLDERS = {"connector": "apex-connector-{}", "sink": "apex-sink-{}", "enricher": "apex-enricher-{}"}


def folder(command: list[str], name: str) -> str:
    return FOLDERS[command[0]].format(name)


def child_env(site: Path) -> dict[str, str]:
    return {
        "PATH": f"{BIN}:/usr/bin:/bin",
        "HOME": os.environ.get("HOME", "/root"),
        "PYTHONPATH": str(site),
        "APEX_PYTEST_HARD_EXIT": "0",
        # the session's payload guard log: a violation in a child fails this session too
        **{k: v for k, v in os.environ.items() if k == "APEX_PAYLOAD_GUARD_FILE"},
    }


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(folder of the generated distributions, the folder they are installed into)."""
    root = tmp_path_factory.mktemp("scaffold")
    out, site = root / "out", root / "site"
    for command, name in PLUGINS:
        result = CliRunner().invoke(app, ["new", command[0], name, *command[1:], "--dir", str(out)])
        assert result.exit_code == 0, result.output
        assert f"created {out / folder(command, name)}" in result.output.replace("\n", "")
    # one pip call for all seven; hatchling from the test environment when it has it
    isolation = ["--no-build-isolation"] if importlib.util.find_spec("hatchling") else []
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", *isolation, "--target", str(site)]
        + [str(out / folder(c, n)) for c, n in PLUGINS],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    return out, site


def in_pairs(jobs: dict[str, Callable[[], subprocess.CompletedProcess[str]]]) -> dict[str, Any]:
    """Run the jobs two at a time (the machine has two cores); name → result."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(job) for name, job in jobs.items()}
        return {name: future.result() for name, future in futures.items()}


@pytest.fixture(scope="module")
def own_tests(generated: tuple[Path, Path]) -> dict[str, Any]:
    """Each generated package's own tests, run by pytest in its folder (its own
    configuration) against the installed copy: name → the finished process."""
    out, site = generated

    def job(package: Path) -> Callable[[], subprocess.CompletedProcess[str]]:
        return lambda: subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
            cwd=package,
            env=child_env(site),
            capture_output=True,
            text=True,
            timeout=300,
        )

    return in_pairs({name: job(out / folder(command, name)) for command, name in PLUGINS})


@pytest.mark.parametrize(("command", "name"), PLUGINS, ids=[n for _, n in PLUGINS])
def test_its_own_tests_pass_against_the_installed_copy(
    generated: tuple[Path, Path], own_tests: dict[str, Any], command: list[str], name: str
) -> None:
    result = own_tests[name]
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout
    assert " failed" not in result.stdout
    if command[0] == "connector":  # the conformance suite ran, not only the package's own tests
        assert (generated[0] / folder(command, name) / "tests" / "test_conformance.py").is_file()


def test_every_file_passes_ruff_and_mypy(generated: tuple[Path, Path]) -> None:
    out, site = generated
    for args in (["check", str(out)], ["format", "--check", str(out)]):
        lint = subprocess.run([str(BIN / "ruff"), *args], capture_output=True, text=True, timeout=120)
        assert lint.returncode == 0, lint.stdout[-3000:] + lint.stderr[-2000:]

    def job(package: Path) -> Callable[[], subprocess.CompletedProcess[str]]:
        return lambda: subprocess.run(
            [str(BIN / "mypy"), "--cache-dir", str(MYPY_CACHE)],  # one cache: core is checked once
            cwd=package,  # its own configuration: strict, src and tests
            env=child_env(site),
            capture_output=True,
            text=True,
            timeout=300,
        )

    (first_command, first), *rest = PLUGINS
    results = {first: job(out / folder(first_command, first))()}  # fills the cache alone
    results |= in_pairs({name: job(out / folder(command, name)) for command, name in rest})
    failed = {name: r.stdout[-2000:] for name, r in results.items() if r.returncode != 0}
    assert not failed, failed


def test_plugins_list_shows_them_all(generated: tuple[Path, Path]) -> None:
    _, site = generated
    names = ",".join(name for _, name in PLUGINS)
    result = subprocess.run(
        [CLI, "plugins", "list", "--json", "--plugins", names],
        env=child_env(site),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    doc = json.loads(result.stdout)
    assert doc["problems"] == []
    sources = {s["name"]: (s["mode"], s["distribution"]) for s in doc["sources"]}
    assert sources == {
        "gen_hooks": ("webhook", "apex-connector-gen_hooks"),
        "gen_poll_of_a_vendor_with_a_long_name": ("poll", "apex-connector-gen_poll_of_a_vendor_with_a_long_name"),
        "gen_feed": ("stream", "apex-connector-gen_feed"),
        "gen_files": ("batch", "apex-connector-gen_files"),
        "gen_push": ("push", "apex-connector-gen_push"),
    }
    assert [(s["name"], s["distribution"]) for s in doc["sinks"]] == [("gen_store", "apex-sink-gen_store")]
    assert [(e["name"], e["distribution"]) for e in doc["enrichers"]] == [("gen_tags", "apex-enricher-gen_tags")]


@pytest.mark.parametrize(
    ("name", "phrase"),
    [
        ("Acme", "is not a lowercase identifier"),
        ("acme-tms", "try 'acme_tms'"),
        ("9lives", "is not a lowercase identifier"),
        ("", "NAME is empty"),
        ("a" * 41, "at most 40"),
        ("acme__tms", "doubled underscore"),
    ],
)
def test_a_bad_name_is_refused_clearly(tmp_path: Path, name: str, phrase: str) -> None:
    result = CliRunner().invoke(app, ["new", "connector", name, "--dir", str(tmp_path)])
    assert result.exit_code == 2
    assert phrase in " ".join(result.output.split())
    assert list(tmp_path.iterdir()) == [], "nothing is written"


def test_an_existing_folder_is_refused_unless_forced(tmp_path: Path) -> None:
    target = tmp_path / "apex-sink-kept"
    target.mkdir()
    (target / "mine.txt").write_text("the author's", encoding="utf-8")
    refused = CliRunner().invoke(app, ["new", "sink", "kept", "--dir", str(tmp_path)])
    assert refused.exit_code == 1
    assert "already exists" in refused.output
    assert "--force" in refused.output
    assert sorted(p.name for p in target.iterdir()) == ["mine.txt"]

    forced = CliRunner().invoke(app, ["new", "sink", "kept", "--dir", str(tmp_path), "--force"])
    assert forced.exit_code == 0, forced.output
    assert (target / "src" / "apex_sink_kept" / "sink.py").is_file()
    assert (target / "mine.txt").read_text(encoding="utf-8") == "the author's"


def test_the_templates_ship_inside_the_package() -> None:
    import apex_platform
    from apex_platform.scaffold import template_files

    root = Path(apex_platform.__file__).parent / "templates"
    assert (root / "connector" / "common" / "pyproject.toml.tmpl").is_file()
    assert "pyproject.toml" in template_files("sink", None)
