"""The settings tables of the first-party READMEs are generated from each plugin's
`settings_model` (apex_platform.plugin_settings) and must be up to date; every setting
has a description, and no secret's value is ever shown."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from apex_platform import plugin_settings
from apex_platform.plugins import PluginInfo, Registry, build_registry

ROOT = Path(__file__).resolve().parents[1]


def _readme(info: PluginInfo) -> Path:
    module = importlib.import_module(info.module)
    return Path(str(module.__file__)).resolve().parents[2] / "README.md"


def _first_party() -> tuple[Registry, list[PluginInfo]]:
    """The plugins whose package is one of this repository's (connectors-*/, plugins/*/)."""
    registry = build_registry("all")
    infos = []
    for info in registry.plugins:
        if info.error is not None:
            continue
        package = _readme(info).parent
        if (package.parent == ROOT and package.name.startswith("connectors-")) or package.parent == ROOT / "plugins":
            infos.append(info)
    return registry, infos


REGISTRY, FIRST_PARTY = _first_party()


def test_first_party_plugins_are_installed() -> None:
    assert len(FIRST_PARTY) >= 15, [p.name for p in FIRST_PARTY]


@pytest.mark.parametrize("info", FIRST_PARTY, ids=lambda p: p.name)
def test_readme_settings_table_is_generated_and_current(info: PluginInfo) -> None:
    readme = _readme(info)
    try:
        shown = readme.relative_to(ROOT)
    except ValueError:
        shown = readme
    fix = f"apex-platform plugins settings {info.name} --markdown --write {shown}"
    rows = plugin_settings.settings_rows(REGISTRY, info.name)
    assert rows, f"{info.name} has no settings_model: set it on the object its plugin registers"
    current = plugin_settings.table_in(readme.read_text(encoding="utf-8"))
    assert current is not None, (
        f"{shown} has no {plugin_settings.START_MARKER} … {plugin_settings.END_MARKER} block: "
        f"add the markers under its Settings heading, then run `{fix}`"
    )
    assert current == plugin_settings.render_markdown(rows), f"{shown}: the settings table is out of date; run `{fix}`"


@pytest.mark.parametrize("info", FIRST_PARTY, ids=lambda p: p.name)
def test_every_first_party_setting_has_a_description(info: PluginInfo) -> None:
    missing = [r["variable"] for r in plugin_settings.settings_rows(REGISTRY, info.name) if not r["description"]]
    assert not missing, f"give these fields of {info.name}'s settings_model a Field(description=...): {missing}"


def test_secrets_are_flagged_and_their_values_never_shown() -> None:
    class AcmeSettings(BaseSettings):
        model_config = SettingsConfigDict(env_prefix="APEX_ACME_")

        token: SecretStr = Field(default=SecretStr("hunter2-default"), description="API token")
        keys: dict[str, SecretStr] = Field(default_factory=dict, description="Keys per account")
        marked: str = Field(default="plain-but-secret", json_schema_extra={"secret": True}, description="Marked")
        optional_secret: SecretStr | None = Field(default=None, description="Unset by default")
        url: str = Field(default="https://api.acme.test", description="Base URL")
        needed: int = Field(description="Must be set")
        aliased: str = Field(default="x", validation_alias="ACME_LEGACY_NAME", description="Old name")

    rows = {r["variable"]: r for r in plugin_settings.model_rows(AcmeSettings, plugin="acme", kind="source")}
    assert list(rows) == [
        "APEX_ACME_TOKEN",
        "APEX_ACME_KEYS",
        "APEX_ACME_MARKED",
        "APEX_ACME_OPTIONAL_SECRET",
        "APEX_ACME_URL",
        "APEX_ACME_NEEDED",
        "ACME_LEGACY_NAME",
    ]
    assert [rows[v]["secret"] for v in rows] == [True, True, True, True, False, False, False]
    assert rows["APEX_ACME_TOKEN"]["default"] == "(secret)"
    assert rows["APEX_ACME_KEYS"]["default"] == "(secret)"
    assert rows["APEX_ACME_MARKED"]["default"] == "(secret)"
    assert rows["APEX_ACME_OPTIONAL_SECRET"]["default"] == "(unset)"
    assert rows["APEX_ACME_URL"]["default"] == "https://api.acme.test"
    assert rows["APEX_ACME_NEEDED"]["default"] == "(required)"
    assert rows["APEX_ACME_TOKEN"]["type"] == "SecretStr"
    assert rows["APEX_ACME_OPTIONAL_SECRET"]["type"] == "SecretStr | None"
    assert rows["APEX_ACME_KEYS"]["type"] == "dict[str, SecretStr]"
    rendered = plugin_settings.render_markdown(rows.values()) + json.dumps(list(rows.values()))
    assert "hunter2" not in rendered
    assert "plain-but-secret" not in rendered


def test_render_and_replace_between_markers() -> None:
    rows: list[dict[str, Any]] = [
        {
            "plugin": "a",
            "variable": "APEX_A_X",
            "type": "int | None",
            "default": "1",
            "secret": False,
            "description": "x|y",
        }
    ]
    table = plugin_settings.render_markdown(rows)
    assert table.splitlines()[2] == "| `APEX_A_X` | `int \\| None` | `1` |  | x\\|y |"
    several = plugin_settings.render_markdown([*rows, {**rows[0], "plugin": "b"}])
    assert several.startswith("| plugin | variable")
    text = f"# A\n\n{plugin_settings.START_MARKER}\nold\n{plugin_settings.END_MARKER}\n\nafter\n"
    replaced = plugin_settings.replace_table(text, table)
    assert plugin_settings.table_in(replaced) == table
    assert replaced.endswith("\n\nafter\n")
    with pytest.raises(ValueError, match="no <!-- apex-settings:start -->"):
        plugin_settings.replace_table("# no markers\n", table, where="README.md")


def test_the_command_prints_writes_and_names_unknown_plugins(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from apex_platform.cli import app
    from apex_platform.errors import PluginError

    runner = CliRunner()
    markdown = runner.invoke(app, ["plugins", "settings", "postgres", "--markdown"], catch_exceptions=False).stdout
    assert markdown == plugin_settings.render_markdown(plugin_settings.settings_rows(REGISTRY, "postgres"))

    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{plugin_settings.START_MARKER}\n{plugin_settings.END_MARKER}\n")
    written = runner.invoke(app, ["plugins", "settings", "postgres", "--write", str(readme)], catch_exceptions=False)
    assert written.exit_code == 0
    assert plugin_settings.table_in(readme.read_text()) == markdown

    doc = json.loads(runner.invoke(app, ["plugins", "settings", "frontapp", "--json"], catch_exceptions=False).stdout)
    secret = next(r for r in doc["settings"] if r["variable"] == "APEX_FRONTAPP_SIGNING_SECRET")
    assert secret["secret"] is True
    assert secret["default"] == "(unset)"
    assert doc["problems"] == []

    unknown = runner.invoke(app, ["plugins", "settings", "nosuch"])
    assert isinstance(unknown.exception, PluginError)
    assert "no plugin named 'nosuch'" in str(unknown.exception)
