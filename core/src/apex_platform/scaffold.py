"""`apex-platform new connector|sink|enricher NAME`: a complete plugin distribution,
rendered from the templates shipped inside this package (`apex_platform/templates/`).

A template is a folder of files whose names end in `.tmpl`; `{{name}}`-style tokens in
paths and contents are replaced by plain string substitution (no template engine, so a
template is readable as the code it becomes). A connector is rendered from
`templates/connector/common/` with `templates/connector/<mode>/` laid over it (a file of
the mode replaces the common one of the same path); sinks and enrichers from their own
folder. What comes out is a distribution like a first-party one: pyproject with the
`apex.plugins` entry point and a dependency range on this core's version, settings
class, plugin module, the code, tests that pass as generated, README and py.typed.
"""

from __future__ import annotations

import keyword
import re
import shutil
import subprocess
import sys
import types
from dataclasses import dataclass
from enum import StrEnum
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Annotated

import typer

from apex_platform.errors import ApexError

TEMPLATE_SUFFIX = ".tmpl"
#: where the README's settings table goes (between `plugin_settings`' markers)
SETTINGS_TABLE = "{{settings_table}}"
#: a token of the templates; one left after rendering is a bug of the template
_TOKEN = re.compile(r"\{\{[A-Za-z_]+\}\}")
NAME_RULE = re.compile(r"^[a-z][a-z0-9_]*$")
#: source names go into record keys (64 characters at most) and environment prefixes
MAX_NAME_CHARS = 40


class Mode(StrEnum):
    """How a source's data arrives (`apex_platform.models.SourceMode`)."""

    webhook = "webhook"
    poll = "poll"
    stream = "stream"
    batch = "batch"
    push = "push"


class ScaffoldError(ApexError):
    """A plugin cannot be generated as asked; the message says what to change."""


#: what each kind of plugin is called as a distribution and as a package
KINDS = {"connector": "apex-connector-{name}", "sink": "apex-sink-{name}", "enricher": "apex-enricher-{name}"}

#: dependencies of a generated connector beyond core and pydantic, by mode: HTTP for the
#: modes that call the vendor's API, and the fake vendor server's ASGI stack
_MODE_DEPENDENCIES = {
    Mode.webhook: [],
    Mode.poll: ["httpx>=0.27", "litestar>=2.13,<3", "uvicorn>=0.30"],
    Mode.stream: ["httpx>=0.27", "litestar>=2.13,<3", "uvicorn>=0.30"],
    Mode.batch: [],
    Mode.push: [],
}


#: the template folders a connector of each mode is rendered from, later ones laid over
#: earlier ones: what every connector has, the vendor API client of the modes that call
#: one, the mode's own files
_LAYERS = {
    Mode.webhook: ("common", "webhook"),
    Mode.poll: ("common", "http", "poll"),
    Mode.stream: ("common", "http", "stream"),
    Mode.batch: ("common", "batch"),
    Mode.push: ("common", "push"),
}


def check_name(name: str) -> str:
    """`name` if it can name a plugin, else `ScaffoldError` saying why and what would do.

    The name becomes the source (or sink, enricher) name, the Python package
    `apex_<kind>_<name>`, the entry point and the settings prefix `APEX_<NAME>_`, so it is
    a lowercase identifier: a letter, then letters, digits or underscores."""
    if not name:
        raise ScaffoldError("NAME is empty: give a lowercase identifier such as 'acme_tms'")
    if len(name) > MAX_NAME_CHARS:
        raise ScaffoldError(f"NAME {name!r} is {len(name)} characters long; at most {MAX_NAME_CHARS} are allowed")
    if not NAME_RULE.match(name):
        hint = re.sub(r"[^a-z0-9_]+", "_", name.lower()).strip("_")
        hint = hint if hint and hint[0].isalpha() else f"x_{hint}".rstrip("_")
        raise ScaffoldError(
            f"NAME {name!r} is not a lowercase identifier (a letter, then lowercase letters, digits or "
            f"underscores; it becomes the package apex_…_{{name}} and the prefix APEX_{{NAME}}_): try {hint!r}"
        )
    if keyword.iskeyword(name) or name.endswith("_") or "__" in name:
        raise ScaffoldError(f"NAME {name!r}: no Python keyword, no trailing or doubled underscore")
    return name


def core_requirement(version: str) -> str:
    """The range of apex-platform versions a generated plugin supports: this version up to
    the next breaking one (the next minor while the major version is 0)."""
    match = re.match(r"^(\d+)\.(\d+)", version)
    major, minor = (int(match.group(1)), int(match.group(2))) if match else (0, 1)
    if major == 0:
        return f">={major}.{minor},<{major}.{minor + 1}"
    return f">={major}.{minor},<{major + 1}"


def plugin_api_range() -> str:
    """What a generated plugin module declares as `apex_plugin_api`: this core's major version."""
    from apex_platform import hookspecs

    version = str(getattr(hookspecs, "PLUGIN_API_VERSION", "1.0"))
    major = int(version.split(".")[0])
    return f">={major},<{major + 1}"


def tokens(kind: str, name: str, mode: Mode | None) -> dict[str, str]:
    """Every token of the templates and its value for this plugin."""
    from apex_platform import __version__

    parts = name.split("_")
    requirement = core_requirement(__version__)
    dependencies = ["pydantic>=2.7,<3", "pydantic-settings>=2.3,<3", *(_MODE_DEPENDENCIES[mode] if mode else [])]
    return {
        "{{name}}": name,
        "{{Name}}": "".join(part.capitalize() for part in parts),
        "{{NAME}}": name.upper(),
        "{{slug}}": name.replace("_", "-"),
        "{{Header}}": "-".join(part.capitalize() for part in parts),
        "{{Title}}": " ".join(part.capitalize() for part in parts),
        "{{mode}}": str(mode or ""),
        "{{dist}}": KINDS[kind].format(name=name),
        "{{core_requirement}}": f"apex-platform{requirement}",
        "{{testing_requirement}}": f"apex-platform[testing]{requirement}",
        "{{dependencies}}": "".join(f'\n  "{dep}",' for dep in dependencies),
        "{{plugin_api}}": plugin_api_range(),
        "{{core_version}}": __version__,
    }


def _substitute(text: str, values: dict[str, str]) -> str:
    for token, value in values.items():
        text = text.replace(token, value)
    return text


def _walk(folder: Traversable, prefix: str = "") -> dict[str, Traversable]:
    out: dict[str, Traversable] = {}
    for entry in folder.iterdir():
        relative = f"{prefix}{entry.name}"
        if entry.is_dir():
            out.update(_walk(entry, relative + "/"))
        elif entry.name.endswith(TEMPLATE_SUFFIX):
            out[relative.removesuffix(TEMPLATE_SUFFIX)] = entry
    return out


def template_root() -> Traversable:
    """The templates folder inside the installed package (it ships in the wheel)."""
    return files("apex_platform").joinpath("templates")


def template_files(kind: str, mode: Mode | None) -> dict[str, Traversable]:
    """Relative path (tokens unreplaced) → template file, for one kind (and mode)."""
    root = template_root().joinpath(kind)
    if kind != "connector":
        return _walk(root)
    if mode is None:
        raise ScaffoldError("a connector needs a mode: --mode webhook|poll|stream|batch|push")
    found: dict[str, Traversable] = {}
    for layer in _LAYERS[mode]:
        found.update(_walk(root.joinpath(layer)))
    return found


@dataclass(frozen=True)
class Generated:
    """What `generate` wrote."""

    path: Path
    files: tuple[str, ...]


def render(kind: str, name: str, mode: Mode | None = None) -> dict[str, str]:
    """Relative path → text of every file of the plugin (nothing written)."""
    if kind not in KINDS:
        raise ScaffoldError(f"unknown kind {kind!r}: one of {', '.join(KINDS)}")
    values = tokens(kind, check_name(name), mode)
    out: dict[str, str] = {}
    for relative, template in sorted(template_files(kind, mode).items()):
        out[_substitute(relative, values)] = _substitute(template.read_text(encoding="utf-8"), values)
    package = f"src/apex_{kind}_{name}"
    table = settings_table(out[f"{package}/settings.py"], plugin=name, kind="source" if kind == "connector" else kind)
    out["README.md"] = out["README.md"].replace(SETTINGS_TABLE, table)
    for path, text in out.items():
        left = _TOKEN.search(path) or _TOKEN.search(text)
        if left:  # a template bug, never the user's
            raise ScaffoldError(f"template of {kind} {path}: unknown token {left.group(0)}")
    return out


def settings_table(source: str, *, plugin: str, kind: str) -> str:
    """The README's settings table of a generated settings module, as `apex-platform plugins
    settings NAME --markdown` renders it (`plugin_settings`), from the module's source: it
    is run as a module of its own (it imports only pydantic and apex_platform)."""
    from pydantic_settings import BaseSettings

    from apex_platform.plugin_settings import model_rows, render_markdown

    module = types.ModuleType(f"_apex_scaffold_settings_{plugin}")
    sys.modules[module.__name__] = module  # pydantic resolves the annotations through it
    try:
        exec(compile(source, f"<{plugin} settings>", "exec"), module.__dict__)  # noqa: S102 - our own template
        (model,) = [
            value
            for value in vars(module).values()
            if isinstance(value, type) and issubclass(value, BaseSettings) and value.__module__ == module.__name__
        ]
        return render_markdown(model_rows(model, plugin=plugin, kind=kind))
    finally:
        del sys.modules[module.__name__]


def generate(
    kind: str, name: str, *, mode: Mode | None = None, directory: Path = Path("."), force: bool = False
) -> Generated:
    """Write the plugin to `directory`/apex-<kind>-<name>/ and say what was written.

    An existing target is refused unless `force`, which writes the generated files over
    it (files it does not generate are left alone)."""
    rendered = render(kind, name, mode)
    target = Path(directory) / KINDS[kind].format(name=name)
    if target.exists() and not target.is_dir():
        raise ScaffoldError(f"{target} exists and is not a folder")
    if target.exists() and not force:
        raise ScaffoldError(
            f"{target} already exists: choose another --dir, remove it, or pass --force to write over it"
        )
    for relative, text in rendered.items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8", newline="\n")
    tidy(target)
    return Generated(target, tuple(rendered))


def tidy(target: Path) -> bool:
    """Format the generated files with ruff where it is installed (what fits on a line
    depends on the length of NAME); whether it ran. The output is correct code without it."""
    ruff = shutil.which("ruff") or shutil.which("ruff", path=str(Path(sys.executable).parent))
    if ruff is None:
        return False
    for args in (["check", "--fix-only", "--select", "I", "--quiet", "."], ["format", "--quiet", "."]):
        try:
            subprocess.run([ruff, *args], cwd=target, capture_output=True, timeout=120, check=False)
        except (OSError, subprocess.SubprocessError):
            return False
    return True


new_app = typer.Typer(
    help="Generate a new plugin distribution (connector, sink, enricher) from Apex's templates.",
    no_args_is_help=True,
)

NameArg = Annotated[
    str, typer.Argument(metavar="NAME", help="Lowercase identifier: the plugin's name, package and settings prefix")
]
DirOpt = Annotated[Path, typer.Option("--dir", metavar="PATH", help="Folder to create the distribution in")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Write over an existing target folder")]


def _run(kind: str, name: str, mode: Mode | None, directory: Path, force: bool) -> None:
    from rich.console import Console
    from rich.markup import escape

    try:
        check_name(name)
    except ScaffoldError as exc:
        raise typer.BadParameter(str(exc), param_hint="NAME") from None
    try:
        made = generate(kind, name, mode=mode, directory=directory, force=force)
    except ScaffoldError as exc:
        Console(stderr=True).print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(1) from None
    what = f"{mode} connector" if mode else kind
    console = Console(highlight=False)
    console.print(f"created {made.path}/ ({what} {name!r}, {len(made.files)} files)", markup=False)
    console.print(
        f"next:\n  pip install -e '{made.path}[testing]'\n  pytest {made.path}/tests\n  apex-platform plugins list",
        markup=False,  # "[testing]" is not rich markup
    )


@new_app.command("connector")
def new_connector(
    name: NameArg,
    mode: Annotated[Mode, typer.Option("--mode", help="How the source's data arrives")] = Mode.webhook,
    directory: DirOpt = Path("."),
    force: ForceOpt = False,
) -> None:
    """Generate apex-connector-NAME/: a source connector of that mode, with tests that pass.

    Settings, plugin module and entry point, connector, fake vendor, tests, README."""
    _run("connector", name, mode, directory, force)


@new_app.command("sink")
def new_sink(name: NameArg, directory: DirOpt = Path("."), force: ForceOpt = False) -> None:
    """Generate apex-sink-NAME/: a sink that keeps the Sink contract, with tests that pass.

    The write rule, read, conditional restore, tombstones, permanent vs transient errors,
    over a SQLite store to replace with yours."""
    _run("sink", name, None, directory, force)


@new_app.command("enricher")
def new_enricher(name: NameArg, directory: DirOpt = Path("."), force: ForceOpt = False) -> None:
    """Generate apex-enricher-NAME/: an idempotent enricher, with tests that pass."""
    _run("enricher", name, None, directory, force)
