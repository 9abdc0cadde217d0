"""Every plugin's settings, read from its `settings_model`: the rows behind
`apex-platform plugins settings` and the settings tables of the packages' READMEs.

A row is one environment variable: the plugin object that reads it, the variable (prefix
included), its type, its default, whether it is a secret and the field's description. A
secret's default is never shown ("(secret)", or "(unset)" when there is none): the rows
are printed, rendered into READMEs and served as JSON.
"""

from __future__ import annotations

import enum
import json
import re
import types
import typing
from collections.abc import Iterable
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

from pydantic import AliasChoices, SecretBytes, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from apex_platform.capabilities import Configurable

if TYPE_CHECKING:
    from pydantic_settings import BaseSettings

    from apex_platform.plugins import Registry

#: the markers around a generated settings table in a README
START_MARKER = "<!-- apex-settings:start -->"
END_MARKER = "<!-- apex-settings:end -->"

SECRET_DEFAULT = "(secret)"  # noqa: S105 - what is shown instead of a secret's default
REQUIRED = "(required)"
UNSET = "(unset)"

_ROW_KEYS = ("plugin", "kind", "variable", "type", "default", "secret", "required", "description")


def settings_rows(registry: Registry, name: str | None = None) -> list[dict[str, Any]]:
    """One row per setting of every installed plugin object with a `settings_model`
    (sources, then enrichers, then sinks, each sorted by name; fields in declaration
    order). `name` keeps the objects of that name, or those the plugin of that
    (entry-point) name registered."""
    rows: list[dict[str, Any]] = []
    for kind, objects in (("source", registry.sources), ("enricher", registry.enrichers), ("sink", registry.sinks)):
        for obj_name, obj in sorted(objects.items()):
            if name is not None and name != obj_name:
                owner = registry.owner_of(kind, obj_name)
                if owner is None or owner.name != name:
                    continue
            if not isinstance(obj, Configurable) or obj.settings_model is None:
                continue
            rows += model_rows(obj.settings_model, plugin=obj_name, kind=kind)
    return rows


def model_rows(model: type[BaseSettings], *, plugin: str, kind: str) -> list[dict[str, Any]]:
    """The rows of one settings class."""
    prefix = str(model.model_config.get("env_prefix") or "")
    rows = []
    for field_name, field in model.model_fields.items():
        secret = is_secret(field)
        required = field.is_required()
        rows.append(
            {
                "plugin": plugin,
                "kind": kind,
                "variable": env_name(field_name, field, prefix),
                "type": type_name(field.annotation),
                "default": REQUIRED if required else default_text(field, secret=secret),
                "secret": secret,
                "required": required,
                "description": " ".join((field.description or "").split()),
            }
        )
    return rows


def env_name(field_name: str, field: FieldInfo, prefix: str) -> str:
    """The environment variable pydantic-settings reads (an alias is taken as it is)."""
    alias = field.validation_alias if field.validation_alias is not None else field.alias
    if isinstance(alias, str):
        return alias.upper()
    if isinstance(alias, AliasChoices):  # its first plain name
        for choice in alias.choices:
            if isinstance(choice, str):
                return choice.upper()
    return f"{prefix}{field_name}".upper()


def is_secret(field: FieldInfo) -> bool:
    """A `SecretStr`/`SecretBytes` field (also inside `X | None`, lists …), or one marked
    with ``json_schema_extra={"secret": True}``."""
    extra = field.json_schema_extra
    if isinstance(extra, dict) and extra.get("secret") is True:
        return True
    return _mentions_secret(field.annotation)


def _mentions_secret(annotation: Any) -> bool:
    if isinstance(annotation, type) and issubclass(annotation, SecretStr | SecretBytes):
        return True
    return any(_mentions_secret(arg) for arg in typing.get_args(annotation))


def type_name(annotation: Any) -> str:
    """A short, stable spelling of a field's type: `int`, `SecretStr | None`, `list[str]`,
    `'a' | 'b'` for a Literal."""
    if annotation is None or annotation is type(None):
        return "None"
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return " | ".join(repr(a.value if isinstance(a, enum.Enum) else a) for a in args)
    if origin is typing.Annotated:
        return type_name(args[0])
    if origin is typing.Union or origin is types.UnionType:
        return " | ".join(type_name(a) for a in args)
    if origin is not None:
        base = getattr(origin, "__name__", str(origin))
        return f"{base}[{', '.join(type_name(a) for a in args)}]" if args else base
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def default_text(field: FieldInfo, *, secret: bool = False) -> str:
    """The default as one would write it in the environment; a secret's is "(secret)"
    unless there is none ("(unset)" says nothing about a value)."""
    if field.default is PydanticUndefined and field.default_factory is None:
        return UNSET
    value = field.get_default(call_default_factory=True, validated_data={})
    if secret:
        return UNSET if value is None else SECRET_DEFAULT
    return value_text(value)


def value_text(value: Any) -> str:
    if value is None:
        return UNSET
    if isinstance(value, SecretStr | SecretBytes):
        return SECRET_DEFAULT
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        return value_text(value.value)
    if isinstance(value, str):
        return value if value else '""'
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, frozenset | set):
        value = sorted(value)
    try:
        return json.dumps(value, default=str)
    except (TypeError, ValueError):
        return str(value)


def _cell(text: str, *, code: bool = False) -> str:
    text = text.replace("|", "\\|")
    if code and text:
        return f"`{text}`"
    return text


def render_markdown(rows: Iterable[dict[str, Any]]) -> str:
    """A Markdown table of the rows; a "plugin" column only when they span several plugins."""
    rows = list(rows)
    several = len({row["plugin"] for row in rows}) > 1
    head = (["plugin"] if several else []) + ["variable", "type", "default", "secret", "description"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        default = row["default"]
        marker = default in (SECRET_DEFAULT, REQUIRED, UNSET)
        cells = ([_cell(row["plugin"])] if several else []) + [
            _cell(row["variable"], code=True),
            _cell(row["type"], code=True),
            _cell(default, code=not marker),
            "yes" if row["secret"] else "",
            _cell(row["description"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def replace_table(text: str, table: str, *, where: str = "the file") -> str:
    """`text` with the block between the markers replaced by `table`."""
    pattern = re.compile(re.escape(START_MARKER) + r".*?" + re.escape(END_MARKER), re.DOTALL)
    if not pattern.search(text):
        raise ValueError(f"{where} has no {START_MARKER} … {END_MARKER} block to write the settings table into")
    return pattern.sub(lambda _: f"{START_MARKER}\n{table}{END_MARKER}", text, count=1)


def table_in(text: str) -> str | None:
    """The table between the markers of `text`, or None without markers."""
    start, end = text.find(START_MARKER), text.find(END_MARKER)
    if start < 0 or end < start:
        return None
    return text[start + len(START_MARKER) : end].lstrip("\n")
