"""The plugin registers the connector, and its settings are documented and keep secrets hidden."""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from apex_connector_weather import plugin
from apex_connector_weather.connector import WeatherConnector
from apex_connector_weather.settings import WeatherSettings
from apex_platform.contracts import SourceConnector
from apex_platform.plugin_settings import model_rows, render_markdown, table_in


def registered() -> list[Any]:
    found: list[Any] = []
    plugin.apex_register_sources(found.append)
    return found


def test_the_plugin_registers_the_connector_without_settings() -> None:
    (connector,) = registered()  # no APEX_WEATHER_* variable is needed to register
    assert isinstance(connector, WeatherConnector)
    assert isinstance(connector, SourceConnector)
    assert (connector.name, connector.mode) == ("weather", "poll")


def test_the_entry_point_names_the_plugin_module() -> None:
    (found,) = [ep for ep in entry_points(group="apex.plugins") if ep.name == "weather"]
    assert found.value == "apex_connector_weather.plugin"


def test_settings_are_declared_documented_and_secrets_hidden() -> None:
    model = WeatherConnector.settings_model
    assert model is not None, "set settings_model: `apex-platform plugins settings` documents it"
    assert model.model_config.get("env_prefix") == "APEX_WEATHER_"
    for name, field in model.model_fields.items():
        assert field.description, f"APEX_WEATHER_{name.upper()} has no description"
        if any(word in name for word in ("secret", "token", "password", "key")):
            assert SecretStr in _types(field.annotation), f"APEX_WEATHER_{name.upper()} must be a SecretStr"


def _types(annotation: Any) -> set[Any]:
    args = getattr(annotation, "__args__", ())
    origin = getattr(annotation, "__origin__", None)
    return {annotation, origin, *(t for arg in args for t in _types(arg))}


def test_the_readme_settings_table_is_current() -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    expected = render_markdown(model_rows(WeatherSettings, plugin="weather", kind="source"))
    assert table_in(readme) == expected, "run: apex-platform plugins settings weather --markdown --write README.md"
