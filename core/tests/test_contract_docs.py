"""The plugin contract is documented whole: every hook with its argument names (taken
from the specs, as datasette takes them from `spec.argnames`), every protocol of
`contracts`, `capabilities` and `reconcile` with each of its members, in docs/plugins.md;
and core reads no attribute of a plugin object that no protocol declares."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path
from types import ModuleType

import pytest

from apex_platform import capabilities, contracts, hookspecs, reconcile
from apex_platform.plugins import make_plugin_manager

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "plugins.md"
CORE = ROOT / "core" / "src" / "apex_platform"
MODULES: tuple[ModuleType, ...] = (contracts, capabilities, reconcile)


def _protocols(module: ModuleType) -> list[type]:
    return [
        cls
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if cls.__module__ == module.__name__ and getattr(cls, "_is_protocol", False)
    ]


def _own_members(cls: type) -> list[str]:
    """What the protocol itself declares (inherited members belong to the parent's section)."""
    names = set(inspect.get_annotations(cls))
    names |= {k for k, v in cls.__dict__.items() if callable(v) or isinstance(v, property)}
    return sorted(n for n in names if not n.startswith("_"))


def _section(docs: str, name: str) -> str | None:
    """The text under the heading that names `name` in backticks, to the next heading of
    the same or a higher level."""
    lines = docs.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^(#+) ", line)
        if m and f"`{name}`" in line:
            level = len(m.group(1))
            end = next(
                (j for j in range(i + 1, len(lines)) if re.match(rf"^#{{1,{level}}} ", lines[j])),
                len(lines),
            )
            return "\n".join(lines[i:end])
    return None


def test_every_hook_is_documented_with_its_argument_names() -> None:
    docs = DOCS.read_text()
    pm = make_plugin_manager()
    hooks = sorted(n for n in dir(hookspecs) if n.startswith("apex_"))
    assert hooks, "no hook specs found"
    missing = []
    for name in hooks:
        spec = getattr(pm.hook, name).spec
        assert spec is not None, name
        assert "Called" in (spec.function.__doc__ or ""), f"the spec of {name} does not say who calls it and when"
        signature = f"`{name}({', '.join(spec.argnames)})`"
        if signature not in docs:
            missing.append(signature)
    assert not missing, f"docs/plugins.md does not document the hooks {missing}: add a heading for each"


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_every_protocol_and_member_is_documented(module: ModuleType) -> None:
    docs = DOCS.read_text()
    protocols = _protocols(module)
    assert protocols, f"no protocols found in {module.__name__}"
    problems = []
    for cls in protocols:
        where = f"{module.__name__}.{cls.__name__}"
        if not (cls.__doc__ or "").strip():
            problems.append(f"{where} has no docstring")
        section = _section(docs, cls.__name__)
        if section is None:
            problems.append(f"{where} is not documented: add a heading '### `{cls.__name__}`' to docs/plugins.md")
            continue
        for member in _own_members(cls):
            if not re.search(rf"`(?:async )?{re.escape(member)}[`(\s]", section):
                problems.append(f"{where}.{member} is not documented under the heading `{cls.__name__}`")
    assert not problems, "\n".join(problems)


def test_every_capability_has_an_example() -> None:
    missing = [c.__name__ for c in _protocols(capabilities) if "Example::" not in (c.__doc__ or "")]
    assert not missing, f"capabilities without an example in their docstring: {missing}"


def test_the_section_finder_sees_a_missing_member() -> None:
    """The check above can fail: a section that lacks a member is reported."""
    docs = "### `Thing`\n\n`alpha` does a.\n\n### `Other`\n\n`beta`\n"
    section = _section(docs, "Thing")
    assert section is not None
    assert re.search(r"`alpha[`(\s]", section)
    assert not re.search(r"`beta[`(\s]", section)
    assert _section(docs, "Missing") is None


#: attributes core reads with getattr/hasattr by a literal name that are not capabilities
#: of plugin objects (each with why)
NOT_CAPABILITIES = {
    "response": "botocore's ClientError (blobs)",
    "show": "click's exceptions (cli)",
    "hidden": "click parameters (cli_docs)",
    "is_flag": "click parameters (cli_docs)",
    "__name__": "names of plugins and types",
    "__code__": "the code of hook implementations (plugins)",
    "name": "the name an offered object or a coordinator gives itself, read before it is checked",
    "EFTYPE": "an errno constant some platforms lack (safefiles)",
    "PLUGIN_API_VERSION": "the scaffold's template values",
}


def _literal_attribute_reads(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "hasattr")
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
        ):
            found.append((node.lineno, node.args[1].value))
    return found


def test_core_reads_no_undeclared_capability() -> None:
    """A capability read with a bare getattr is one nobody declared or documented."""
    offenders = []
    for path in sorted(CORE.rglob("*.py")):
        relative = path.relative_to(CORE)
        if relative.parts[0] in ("testing", "templates"):
            continue
        for line, attribute in _literal_attribute_reads(path):
            if attribute not in NOT_CAPABILITIES:
                offenders.append(f"{relative}:{line} reads {attribute!r}")
    assert not offenders, (
        "core reads attributes of plugin objects by name; declare each as a protocol in "
        "apex_platform/capabilities.py, document it in docs/plugins.md and use isinstance:\n" + "\n".join(offenders)
    )


def test_the_attribute_scan_finds_a_getattr(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text('def f(c):\n    return getattr(c, "batch_webhooks", False) or hasattr(c, "inbox")\n')
    assert _literal_attribute_reads(sample) == [(2, "batch_webhooks"), (2, "inbox")]
