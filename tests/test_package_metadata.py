"""Every distribution's pyproject.toml agrees with the others and with constraints.txt.

One version scheme (every distribution released together at core's version, see
docs/releasing.md), each plugin's `apex-platform` range admits that version, the same
third-party dependency is asked for in ranges that one pinned version satisfies (the
pin of constraints.txt), and every package carries what an index and a type checker
need: README as readme, the license and its text, requires-python, py.typed, and its
entry point in `apex.plugins` naming a module of its own."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).parents[1]


def distribution_folders() -> list[Path]:
    """The distributions `nox -s build` builds and publishes (noxfile.packages())."""
    found = [ROOT / "core"]
    found += sorted(p.parent for p in ROOT.glob("plugins/*/pyproject.toml"))
    found += sorted(p.parent for p in ROOT.glob("connectors-*/pyproject.toml"))
    return found


FOLDERS = distribution_folders()
#: connectors built outside the package list (the tutorial's example): they must install
#: against this core too
EXAMPLES = sorted(p.parent for p in ROOT.glob("examples/*/pyproject.toml"))


def pyproject(folder: Path) -> dict[str, Any]:
    return tomllib.loads((folder / "pyproject.toml").read_text())


def project(folder: Path) -> dict[str, Any]:
    data: dict[str, Any] = pyproject(folder)["project"]
    return data


CORE = project(ROOT / "core")
CORE_VERSION = Version(CORE["version"])


def requirements(folder: Path, *, extras: bool = True) -> list[tuple[str, Requirement]]:
    """(where, requirement) of the dependencies and, with `extras`, of every extra."""
    proj = project(folder)
    out = [("dependencies", Requirement(r)) for r in proj.get("dependencies", [])]
    if extras:
        for extra, reqs in proj.get("optional-dependencies", {}).items():
            out += [(f"[{extra}]", Requirement(r)) for r in reqs]
    return out


def pins() -> dict[str, Version]:
    """constraints.txt as {canonical name: pinned version}."""
    out: dict[str, Version] = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not a pin (name==version)"
            out[canonicalize_name(name)] = Version(version)
    return out


#: extras that no nox session installs, so no pin covers what they ask for (heavy or
#: optional; their ranges are still checked against a pin where there is one)
UNINSTALLED_EXTRAS = {
    ("apex-enricher-embeddings", "[local]"),  # sentence-transformers needs torch
}


def test_every_distribution_is_seen() -> None:
    names = [project(f)["name"] for f in FOLDERS]
    assert len(names) >= 16, names  # the globs see the packages (16 when this was written)
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda f: f.name)
def test_one_version_for_every_distribution(folder: Path) -> None:
    version = project(folder)["version"]
    assert str(Version(version)) == version, f"{folder.name}: {version!r} is not in PEP 440 normal form"
    assert Version(version) == CORE_VERSION, (
        f"{folder.name} is at {version}, core at {CORE_VERSION}: every distribution is released together "
        "(docs/releasing.md, 'Version bump')"
    )


@pytest.mark.parametrize("folder", FOLDERS[1:] + EXAMPLES, ids=lambda f: f.name)
def test_each_plugin_admits_this_core(folder: Path) -> None:
    platform = [(where, r) for where, r in requirements(folder) if r.name == "apex-platform"]
    assert [w for w, _ in platform if w == "dependencies"], f"{folder.name} does not depend on apex-platform"
    for where, req in platform:
        assert req.specifier.contains(CORE_VERSION, prereleases=True), (
            f"{folder.name} {where}: {req} excludes apex-platform {CORE_VERSION}"
        )


def test_first_party_plugins_ask_for_core_alike() -> None:
    ranges = {str(r.specifier) for f in FOLDERS[1:] for where, r in requirements(f) if r.name == "apex-platform"}
    assert len(ranges) == 1, f"first-party plugins ask for apex-platform in different ranges: {sorted(ranges)}"


def test_shared_third_party_ranges_meet_in_the_pin() -> None:
    """A dependency asked for by several packages (httpx, pydantic, …): the pinned version
    lies in every range, so one environment holds all of them; and everything a nox
    session installs is pinned."""
    pinned = pins()
    problems: list[str] = []
    by_name: dict[str, list[str]] = {}
    for folder in [*FOLDERS, *EXAMPLES]:
        name = project(folder)["name"]
        for where, req in requirements(folder):
            dep = canonicalize_name(req.name)
            if dep.startswith("apex-"):
                continue
            by_name.setdefault(dep, []).append(f"{name} {where}: {req.specifier or 'any'}")
            pin = pinned.get(dep)
            if pin is None:
                if (name, where) not in UNINSTALLED_EXTRAS and folder not in EXAMPLES:
                    problems.append(f"{name} {where}: {req} has no pin in constraints.txt")
            elif not req.specifier.contains(pin, prereleases=True):
                problems.append(f"{name} {where}: {req} excludes the pinned {dep}=={pin}")
    assert not problems, "\n".join(problems)
    shared = {dep for dep, users in by_name.items() if len({u.split()[0] for u in users}) > 1}
    # the common ones are there: this test is looking at the right files
    assert {"httpx", "pydantic", "pydantic-settings", "tenacity"} <= shared


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda f: f.name)
def test_build_backend_is_pinned_and_admitted(folder: Path) -> None:
    system = pyproject(folder)["build-system"]
    assert system["build-backend"] == "hatchling.build"
    (req,) = (Requirement(r) for r in system["requires"])
    assert req.name == "hatchling"
    assert req.specifier.contains(pins()["hatchling"]), f"{folder.name}: {req} excludes the pinned hatchling"


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda f: f.name)
def test_index_metadata(folder: Path) -> None:
    proj = project(folder)
    assert proj["readme"] == "README.md"
    assert (folder / "README.md").is_file()
    assert proj["description"]
    assert "\n" not in proj["description"]
    assert proj["license"] == CORE["license"] == "Apache-2.0"
    text = (folder / "LICENSE").read_text()
    assert text == (ROOT / "LICENSE").read_text(), f"{folder.name}/LICENSE differs from the root LICENSE"
    assert "Apache License" in text
    assert "Version 2.0" in text
    assert proj["requires-python"] == CORE["requires-python"] == project(ROOT)["requires-python"]
    classifiers = proj["classifiers"]
    assert "Typing :: Typed" in classifiers
    assert not [c for c in classifiers if c.startswith("License ::")], "the license is the SPDX expression only"
    # every "Python :: 3.X" classifier is admitted by requires-python
    python = SpecifierSet(proj["requires-python"])
    for c in classifiers:
        if c.startswith("Programming Language :: Python :: 3."):
            assert python.contains(c.rsplit(" ", 1)[1] + ".0"), c


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda f: f.name)
def test_import_package_typed_and_its_entry_points_its_own(folder: Path) -> None:
    proj = project(folder)
    (package_dir,) = pyproject(folder)["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    package = Path(package_dir).name
    assert package == proj["name"].replace("-", "_"), f"{folder.name}: import name {package} is not the dist name"
    assert (folder / package_dir / "py.typed").is_file(), f"{folder.name}: no py.typed in {package_dir}"
    groups = proj.get("entry-points", {})
    if folder.name == "core":
        assert "apex.plugins" not in groups  # core's built-ins are not found through entry points
        modules = list(groups["pytest11"].values())
    else:
        prefix = {"plugins": ("apex-sink-", "apex-enricher-")}.get(folder.parent.name, ("apex-connector-",))
        assert proj["name"].startswith(prefix), proj["name"]
        plugins = groups["apex.plugins"]
        assert len(plugins) == 1, plugins
        modules = list(plugins.values())
    for module in modules:
        assert module.split(".")[0] == package, f"{folder.name}: entry point {module} is not in {package}"
        path = folder / Path(package_dir).parent / Path(*module.split("."))
        assert path.with_suffix(".py").is_file() or (path / "__init__.py").is_file(), f"{module}: no such module"
